//! Headers added to, and removed from, every response the client gets (R-TLS-3).

use http::header::{HeaderValue, CACHE_CONTROL, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS};

use crate::headers::{HeaderEdit, PHR_NEUTRALISED};

/// HSTS for a year, subdomains included (R-TLS-3).
pub const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// `Server`, and the headers that advertise the upstream's software or point into its
/// debugging tools (all `x-`, so most names are passed after one byte); never
/// passed on. Symfony's profiler token and link name a page holding the whole request —
/// headers, bearer token, body — wherever a profiler was left on; IIS's `X-SourceFiles` holds
/// the server's file path.
const BANNERS: &[&str] = &[
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-generator",
    "x-debug-token",
    "x-debug-token-link",
    "x-sourcefiles",
];

/// Apply the hardening rules. An upstream's `PHR-Neutralised` goes too: only the gateway says
/// what it changed (R-WAF-4).
pub fn harden(response: &mut impl HeaderEdit) {
    response.strip(|name| match name.as_bytes().first() {
        Some(b'x') => BANNERS.contains(&name),
        Some(b's') => name == "server",
        _ => name == PHR_NEUTRALISED.as_str(),
    });
    response.set(STRICT_TRANSPORT_SECURITY, HSTS);
    response.set(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
}

/// A response to a verified caller holds that person's data: no cache may keep it (a browser's
/// disk cache on a shared device, a TLS-intercepting proxy). An upstream's `Cache-Control` that
/// says `no-store` stays as it is; any other, or none, becomes `no-store`.
pub fn forbid_storing(response: &mut impl HeaderEdit) {
    let no_store = response
        .headers()
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|directive| directive.trim().eq_ignore_ascii_case("no-store"));
    if !no_store {
        response.set(CACHE_CONTROL, NO_STORE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::SERVER;

    #[test]
    fn adds_hsts_and_nosniff_and_removes_banners_r_tls_3() {
        let mut h = http::HeaderMap::new();
        h.insert(SERVER, HeaderValue::from_static("nginx/1.2"));
        h.insert("x-powered-by", HeaderValue::from_static("PHP"));
        h.insert(
            "x-debug-token-link",
            HeaderValue::from_static("/_profiler/12ab"),
        );
        h.insert("x-generator", HeaderValue::from_static("Drupal 7"));
        h.insert("phr-neutralised", HeaderValue::from_static("note.text"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=0"),
        );
        harden(&mut h);
        assert_eq!(h.get(STRICT_TRANSPORT_SECURITY), Some(&HSTS));
        assert_eq!(h.get(X_CONTENT_TYPE_OPTIONS), Some(&NOSNIFF));
        assert!(h.get(SERVER).is_none());
        assert!(h.get("x-powered-by").is_none());
        assert!(h.get("x-debug-token-link").is_none());
        assert!(h.get("x-generator").is_none());
        // An upstream cannot claim the gateway changed something (R-WAF-4).
        assert!(h.get("phr-neutralised").is_none());
        assert_eq!(h.get("content-type").unwrap(), "application/json");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn a_verified_callers_data_is_never_stored() {
        for upstream in [
            None,
            Some("public, max-age=3600"),
            Some("private"),
            Some("no-cache"),
        ] {
            let mut h = http::HeaderMap::new();
            if let Some(v) = upstream {
                h.insert(CACHE_CONTROL, HeaderValue::from_static(v));
            }
            forbid_storing(&mut h);
            assert_eq!(h.get_all(CACHE_CONTROL).iter().count(), 1);
            assert_eq!(h[CACHE_CONTROL], "no-store", "{upstream:?}");
        }
        let mut h = http::HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("private, No-Store"));
        forbid_storing(&mut h);
        assert_eq!(h[CACHE_CONTROL], "private, No-Store");
    }
}
