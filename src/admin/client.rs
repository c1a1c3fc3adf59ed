//! The `phr-gateway admin ...` side: one HTTPS call to the admin listener with a client
//! certificate or an admin token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use rustls::pki_types::ServerName;

/// Why an admin call could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminClientError {
    /// The URL is not `https://host:port`.
    #[error("admin URL `{0}` must look like https://127.0.0.1:9443")]
    Url(String),
    /// A certificate, key or CA file could not be used.
    #[error("{0}")]
    Material(String),
    /// The connection or the call failed.
    #[error("admin call to {url} failed: {detail}")]
    Call {
        /// The listener.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

/// How long one call may take, connection to last byte, unless [`AdminClient::with_deadline`]
/// says otherwise: an admin call (status, reload, mode) answers in well under a second, and
/// an operator's command must end even when the listener stops answering — such as a
/// connection the listener closed after refusing the client's certificate, which a TLS 1.3
/// client only learns after it has sent its request.
pub const CALL_DEADLINE: Duration = Duration::from_secs(15);

/// How to reach and authenticate to the admin listener.
pub struct AdminClient {
    url: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
    token: Option<String>,
    deadline: Duration,
}

impl AdminClient {
    /// A client for `url`. `ca` verifies the listener's certificate (default: the system's
    /// roots); `identity` is a client certificate chain and key (PEM); `token` an admin token;
    /// `server_name` overrides the name checked in the listener's certificate.
    pub fn new(
        url: &str,
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
        token: Option<String>,
        server_name: Option<&str>,
    ) -> Result<Self, AdminClientError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| AdminClientError::Url(url.to_owned()))?;
        if uri.scheme_str() != Some("https") {
            return Err(AdminClientError::Url(url.to_owned()));
        }
        let host = uri
            .host()
            .ok_or_else(|| AdminClientError::Url(url.to_owned()))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(9443);
        let material = |e: &dyn std::fmt::Display| AdminClientError::Material(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                let chain = crate::tls::certificate::load_chain(path).map_err(|e| material(&e))?;
                roots.add_parsable_certificates(chain);
            }
            None => {
                let native = rustls_native_certs::load_native_certs().map_err(|e| material(&e))?;
                roots.add_parsable_certificates(native);
            }
        }
        let provider = Arc::new(crate::tls::provider::gateway_provider(false));
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| material(&e))?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((chain, key)) => {
                let chain = crate::tls::certificate::load_chain(chain).map_err(|e| material(&e))?;
                let key = crate::tls::certificate::load_key(key).map_err(|e| material(&e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| material(&e))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = server_name.unwrap_or(&host).to_owned();
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| AdminClientError::Material(format!("`{name}` is not a server name")))?;
        Ok(AdminClient {
            url: url.to_owned(),
            host,
            port,
            server_name,
            config: Arc::new(config),
            token,
            deadline: CALL_DEADLINE,
        })
    }

    /// The same client with another deadline for each call.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Make one call; returns the status and the body as text.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, String), AdminClientError> {
        let (status, _, text) = self.call_with_headers(method, path, body).await?;
        Ok((status, text))
    }

    /// Make one call; returns the status, the response's headers and the body as text.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, http::HeaderMap, String), AdminClientError> {
        tokio::time::timeout(self.deadline, self.call_once(method, path, body))
            .await
            .unwrap_or_else(|_| {
                Err(AdminClientError::Call {
                    url: self.url.clone(),
                    detail: format!("no answer within {:?}", self.deadline),
                })
            })
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, http::HeaderMap, String), AdminClientError> {
        let fail = |detail: String| AdminClientError::Call {
            url: self.url.clone(),
            detail,
        };
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| fail(format!("TLS: {e}")))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| fail(e.to_string()))?;
        tokio::spawn(connection);
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, format!("{}:{}", self.host, self.port));
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let payload = match body {
            Some(value) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| fail(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (head, body) = response.into_parts();
        let body = Limited::new(body, 16 * 1024 * 1024)
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        Ok((
            head.status,
            head.headers,
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that takes the connection and never answers (as one that closed a
    /// refused client's connection can look to a TLS 1.3 client): the call ends at its
    /// deadline with an error that says so, instead of waiting for ever.
    #[tokio::test]
    async fn a_listener_that_never_answers_ends_the_call_at_its_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let ca = crate::pki::DevCa::new("deadline test CA").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        let client = AdminClient::new(
            &format!("https://127.0.0.1:{port}"),
            Some(&ca_path),
            None,
            None,
            None,
        )
        .unwrap()
        .with_deadline(Duration::from_millis(300));
        let error = client.call(Method::GET, "/status", None).await.unwrap_err();
        assert!(
            error.to_string().contains("no answer within 300ms"),
            "{error}"
        );
        held.abort();
    }
}
