//! The optional plain listener: it serves nothing but `308 Permanent Redirect` to https
//! (R-TLS-1: no plaintext listener except one that redirects).

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// Answers every request with a redirect to the same path over https.
pub struct RedirectToHttps {
    host: Option<String>,
    https_port: u16,
}

impl RedirectToHttps {
    /// `host`: the configured redirect host (may hold a port); `None` to use the request's.
    pub fn new(host: Option<String>, https_port: u16) -> Self {
        RedirectToHttps { host, https_port }
    }

    /// The `Location` for a request, or `None` when no safe host is known.
    pub fn location(&self, request_host: Option<&str>, path_and_query: &str) -> Option<String> {
        let host = match &self.host {
            Some(h) => h.clone(),
            None => {
                let host = request_host?;
                // Keep only the host part, and only if it is a plain name or address, so the
                // redirect cannot be pointed at a crafted target.
                let name = match host.rsplit_once(':') {
                    Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                    _ => host,
                };
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
                {
                    return None;
                }
                match self.https_port {
                    443 => name.to_owned(),
                    port => format!("{name}:{port}"),
                }
            }
        };
        let path = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            "/"
        };
        Some(format!("https://{host}{path}"))
    }
}

#[async_trait]
impl ServeHttp for RedirectToHttps {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let request = session.req_header();
        let host = request
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let path = request.uri.path_and_query().map_or("/", |p| p.as_str());
        let builder = Response::builder().header(http::header::CONTENT_LENGTH, "0");
        let response = match self.location(host, path) {
            Some(location) => builder
                .status(StatusCode::PERMANENT_REDIRECT)
                .header(http::header::LOCATION, location),
            None => builder.status(StatusCode::BAD_REQUEST),
        };
        response.body(Vec::new()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_to_same_path_on_https() {
        let r = RedirectToHttps::new(None, 8443);
        assert_eq!(
            r.location(Some("phr.example.jp:8080"), "/fhir/Patient/1?x=1")
                .as_deref(),
            Some("https://phr.example.jp:8443/fhir/Patient/1?x=1")
        );
        let r = RedirectToHttps::new(None, 443);
        assert_eq!(
            r.location(Some("phr.example.jp"), "/").as_deref(),
            Some("https://phr.example.jp/")
        );
    }

    #[test]
    fn configured_host_wins_and_crafted_hosts_are_refused() {
        let r = RedirectToHttps::new(Some("phr.example.jp".into()), 8443);
        assert_eq!(
            r.location(Some("evil.example"), "/a").as_deref(),
            Some("https://phr.example.jp/a")
        );
        let r = RedirectToHttps::new(None, 443);
        assert_eq!(r.location(Some("evil.example/@x"), "/a"), None);
        assert_eq!(r.location(None, "/a"), None);
    }
}
