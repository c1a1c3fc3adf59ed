//! Headers added to, and removed from, every response the client gets (R-TLS-3).

use http::header::{
    HeaderValue, CACHE_CONTROL, SET_COOKIE, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
};
use http::HeaderMap;

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

/// Every cookie the upstream sets is marked `Secure` (R-TLS-3). Behind the gateway a backend
/// speaks plain HTTP and often leaves the flag off; a browser then sends that cookie (a
/// session, usually) in the clear to `http://` the same host, where anyone on the path reads
/// it: on a first visit before HSTS is known, or to the plain listener's port. Every client of
/// the gateway speaks TLS, so the flag takes nothing from one. The value is otherwise passed
/// as it came: `HttpOnly` and `SameSite` change what the application's own pages may do.
pub fn secure_cookies(headers: &mut HeaderMap) {
    // Looked up first: `entry` may grow the map even when the name is absent.
    let all_secure = headers
        .get_all(SET_COOKIE)
        .iter()
        .all(|value| is_secure(value.as_bytes()));
    if all_secure {
        return;
    }
    let http::header::Entry::Occupied(mut cookies) = headers.entry(SET_COOKIE) else {
        return;
    };
    for value in cookies.iter_mut() {
        if is_secure(value.as_bytes()) {
            continue;
        }
        let kept = value.as_bytes().trim_ascii_end();
        let kept = kept.strip_suffix(b";").unwrap_or(kept).trim_ascii_end();
        let mut marked = Vec::with_capacity(kept.len() + SECURE.len());
        marked.extend_from_slice(kept);
        marked.extend_from_slice(SECURE);
        // The bytes of a valid value and an ASCII suffix: always valid.
        if let Ok(mut secure) = HeaderValue::from_bytes(&marked) {
            secure.set_sensitive(value.is_sensitive());
            *value = secure;
        }
    }
}

const SECURE: &[u8] = b"; Secure";

/// Whether a `Set-Cookie` value carries the `Secure` attribute. The attributes follow the
/// first `;` (a cookie's value holds none); a browser reads the name before any `=`, trimmed,
/// in any case (RFC 6265 section 5.2).
fn is_secure(set_cookie: &[u8]) -> bool {
    set_cookie.split(|b| *b == b';').skip(1).any(|attribute| {
        let name = attribute.split(|b| *b == b'=').next().unwrap_or_default();
        name.trim_ascii().eq_ignore_ascii_case(b"secure")
    })
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

    #[test]
    fn every_cookie_the_upstream_sets_is_marked_secure_r_tls_3() {
        for (upstream, sent) in [
            ("sid=abc", "sid=abc; Secure"),
            (
                "sid=abc; Path=/; HttpOnly; SameSite=Lax",
                "sid=abc; Path=/; HttpOnly; SameSite=Lax; Secure",
            ),
            ("sid=abc; Path=/;  ", "sid=abc; Path=/; Secure"),
            // Words that hold `secure` are not the attribute.
            ("secure=1; Path=/secure", "secure=1; Path=/secure; Secure"),
            ("sid=abc; Insecure", "sid=abc; Insecure; Secure"),
            ("sid=abc; SecureX", "sid=abc; SecureX; Secure"),
            // Already marked, in any spelling a browser reads: untouched.
            ("sid=abc; Secure", "sid=abc; Secure"),
            ("sid=abc;secure;HttpOnly", "sid=abc;secure;HttpOnly"),
            ("sid=abc; SECURE =1", "sid=abc; SECURE =1"),
            (
                "__Host-sid=abc; Path=/; Secure",
                "__Host-sid=abc; Path=/; Secure",
            ),
        ] {
            let mut h = http::HeaderMap::new();
            h.insert(SET_COOKIE, HeaderValue::from_static(upstream));
            secure_cookies(&mut h);
            assert_eq!(h[SET_COOKIE], sent, "{upstream}");
        }
        // Each cookie of a response is marked, in its order, and nothing else is touched.
        let mut h = http::HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("a=1"));
        h.append(SET_COOKIE, HeaderValue::from_static("b=2; Secure"));
        h.append(SET_COOKIE, HeaderValue::from_static("c=3; Max-Age=0"));
        h.insert(
            "content-type",
            HeaderValue::from_static("text/plain; secure"),
        );
        secure_cookies(&mut h);
        let cookies: Vec<_> = h.get_all(SET_COOKIE).iter().collect();
        assert_eq!(
            cookies,
            ["a=1; Secure", "b=2; Secure", "c=3; Max-Age=0; Secure"]
        );
        assert_eq!(h["content-type"], "text/plain; secure");
        let mut none = http::HeaderMap::new();
        secure_cookies(&mut none);
        assert!(none.is_empty());
    }
}
