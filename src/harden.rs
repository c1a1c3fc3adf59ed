//! Headers added to, and removed from, every response the client gets (R-TLS-3).

use http::header::{HeaderValue, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS};

use crate::headers::{HeaderEdit, PHR_NEUTRALISED};

/// HSTS for a year, subdomains included (R-TLS-3).
pub const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// Headers that advertise the upstream's software; never passed on.
const BANNERS: &[&str] = &[
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
];

/// Apply the hardening rules. An upstream's `PHR-Neutralised` goes too: only the gateway says
/// what it changed (R-WAF-4).
pub fn harden(response: &mut impl HeaderEdit) {
    response.strip(|name| BANNERS.contains(&name) || name == PHR_NEUTRALISED.as_str());
    response.set(STRICT_TRANSPORT_SECURITY, HSTS);
    response.set(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
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
        // An upstream cannot claim the gateway changed something (R-WAF-4).
        assert!(h.get("phr-neutralised").is_none());
        assert_eq!(h.get("content-type").unwrap(), "application/json");
        assert_eq!(h.len(), 3);
    }
}
