//! What the upstream receives: hop-by-hop headers removed, client-supplied forwarding headers
//! replaced by the gateway's own, and the gateway's request id; and, on the way back, the
//! upstream's own address in `Location` replaced by the one the client used.
//!
//! A client must not be able to tell the backend where it connects from, or that it came
//! through a trusted proxy: every header the backend could take for the gateway's word is
//! written by the gateway alone.

use std::net::IpAddr;

use std::fmt::Write as _;

use http::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LOCATION, HOST, LINK, LOCATION,
};
use http::HeaderMap;

use crate::headers::{as_cgi_reads, HeaderEdit, X_REQUEST_ID};
use crate::identity::{IdentityHeaders, Principal};

/// Every header with this prefix is the gateway's to set (R-AUTH-1): a client can never
/// pass itself off as verified.
const IDENTITY_PREFIX: &str = "x-phr-";

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the obsolete ones clients still send.
/// `Transfer-Encoding` is not here: the framing is already checked and the proxy re-frames it.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "http2-settings",
];

/// Headers only the gateway may set: forwarding, its request id, and what it changed. Besides
/// the standard and common forwarding names, the ones frameworks and platforms read in their
/// place: a scheme (`X-Forwarded-Scheme`, `X-Forwarded-Ssl: on`, `Front-End-Https`,
/// `X-Url-Scheme`: Rack, Rails and IIS take the request for https or http by them), a host
/// (`X-Original-Host`, `X-Host`, `X-HTTP-Host-Override`: links and password-reset mails
/// built from it), a client address (`Client-IP`, `X-Cluster-Client-IP`, CDN and load
/// balancer names: address limits and logs).
const GATEWAY_OWNED: &[&str] = &[
    "forwarded",
    "forwarded-for",
    "front-end-https",
    "true-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "phr-neutralised",
];

/// The gateway's own `x-` names, without the prefix: most names a client sends are not
/// `x-`, so each is compared with the short list above only. Every `x-forwarded*` name is the
/// gateway's as well (checked apart: a prefix).
const GATEWAY_OWNED_X: &[&str] = &[
    "url-scheme",
    "original-host",
    "host",
    "http-host-override",
    "real-ip",
    "client-ip",
    "cluster-client-ip",
    "originating-ip",
    "request-id",
];

/// The names authenticating proxies and platforms set to tell the application who the user is,
/// or which client certificate was verified, by the start of the name; `x-` ones without it,
/// by their next letter. A backend written for one of them trusts the header as it comes;
/// through the gateway a client could set it and be anyone (R-AUTH-1): the gateway's verified
/// identity goes in its own identity headers only. Sources: oauth2-proxy and nginx
/// `auth_request` (`auth-request-`), Authelia and Apache (`remote-`), Grafana's and Gitea's
/// auth proxy (`webauth-`), Kong and APISIX (`authenticated-`, `consumer-`,
/// `credential-identifier`, `anonymous-consumer`, `userinfo`), Azure App Service
/// (`ms-client-principal`, `ms-token-`), Google IAP (`goog-`), AWS ALB (`amzn-oidc-`),
/// Pomerium, and the client certificate a TLS terminator passes on (nginx `ssl-`, `client-cert`,
/// `client-verify`, `client-dn`, `client-s-dn`, Azure's `arr-clientcert`).
fn asserts_identity_x(rest: &str) -> bool {
    let prefixes: &[&str] = match rest.as_bytes().first() {
        Some(b'a') => &[
            "auth-request-",
            "authenticated-",
            "anonymous-consumer",
            "amzn-oidc-",
            "arr-clientcert",
        ],
        Some(b'c') => &[
            "consumer-",
            "credential-identifier",
            "client-cert",
            "client-verify",
            "client-dn",
            "client-s-dn",
        ],
        Some(b'g') => &["goog-authenticated-user-", "goog-iap-jwt-assertion"],
        Some(b'm') => &["ms-client-principal", "ms-token-"],
        Some(b'p') => &["pomerium-"],
        Some(b'r') => &["remote-"],
        Some(b's') => &["ssl-"],
        Some(b'u') => &["userinfo"],
        Some(b'w') => &["webauth-"],
        _ => return false,
    };
    prefixes.iter().any(|p| rest.starts_with(p))
}

/// The same for names without `x-`: Authelia's `Remote-User` family, nginx ingress's
/// `ssl-client-*`, Cloudflare Access, Apache's mod_auth_openidc (`OIDC_CLAIM_email`, read with
/// `-` for `_`), mod_auth_mellon and Shibboleth.
fn asserts_identity(name: &str) -> bool {
    let prefixes: &[&str] = match name.as_bytes().first() {
        Some(b'c') => &["cf-access-"],
        Some(b'm') => &["mellon-"],
        Some(b'o') => &["oidc-"],
        Some(b'r') => &["remote-"],
        Some(b's') => &["ssl-client-", "shib-"],
        _ => return false,
    };
    prefixes.iter().any(|p| name.starts_with(p))
}

/// Whether `name` (lower case, as a CGI server reads it) is one only the gateway may set.
fn is_gateway_owned(name: &str) -> bool {
    match name.strip_prefix("x-") {
        Some(rest) => {
            rest.starts_with("forwarded")
                || GATEWAY_OWNED_X.contains(&rest)
                || asserts_identity_x(rest)
        }
        None => GATEWAY_OWNED.contains(&name) || asserts_identity(name),
    }
}

/// What the gateway knows about the request, to tell the upstream.
pub struct Forwarding<'a> {
    /// The client's address as the gateway saw it.
    pub client_ip: Option<IpAddr>,
    /// The authority the client asked for (`Host` or `:authority`).
    pub host: Option<&'a str>,
    /// The gateway's request id.
    pub request_id: &'a HeaderValue,
    /// `Host` to send when the client sent none (h2 clients send `:authority` only).
    pub default_host: &'a str,
    /// The names of the identity headers: removed from what the client sent, then set from the
    /// verified principal.
    pub identity_headers: &'a IdentityHeaders,
    /// The verified caller, if the route needed one.
    pub principal: Option<&'a Principal>,
    /// The header a request states its purpose of use in (`[access] purpose_header`).
    pub purpose_header: &'a HeaderName,
}

/// Rewrite the upstream request's headers.
pub fn rewrite_request(request: &mut impl HeaderEdit, fwd: &Forwarding<'_>) {
    // Headers named in `Connection` are hop-by-hop too. Rare, so the list is only built when
    // there is a `Connection` header at all.
    let named_in_connection: Vec<String> = if request.headers().contains_key(CONNECTION) {
        request
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty() && t != "host")
            .collect()
    } else {
        Vec::new()
    };
    let identity = fwd.identity_headers.names();
    // An anonymous route verified no token: a bearer token the client attached anyway (an
    // app's client adds it to every call) would reach the backend unverified — expired,
    // revoked at logout, another person's — and a backend that honours it would act as that
    // user. Other schemes pass (a token endpoint behind an anonymous route authenticates its
    // clients with `Basic`).
    let unverified_bearer = fwd.principal.is_none()
        && request
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .any(|v| is_bearer(v.as_bytes()));
    let purpose = as_cgi_reads(fwd.purpose_header.as_str());
    request.strip(|name| {
        if unverified_bearer && name == AUTHORIZATION.as_str() {
            return true;
        }
        // A client's `X_PHR_Subject` or `X_Forwarded_For` would stand beside, or in place of,
        // the gateway's own at a CGI, WSGI or Rack server (Puma's CVE-2024-45614), so each
        // name is compared as such a server reads it.
        let as_sent = name;
        let name = &*as_cgi_reads(name);
        // The purpose header is checked as its exact name (R-AZ-2); `PHR_Purpose` beside it
        // would give such a server a purpose no one checked.
        (name == purpose && as_sent != fwd.purpose_header.as_str())
            || HOP_BY_HOP.contains(&name)
            || is_gateway_owned(name)
            // Every `x-phr-*` and every configured identity name, verified or not (R-AUTH-1):
            // the verified ones are set below.
            || name.starts_with(IDENTITY_PREFIX)
            || identity.iter().any(|n| n.eq_ignore_ascii_case(name))
            || named_in_connection.iter().any(|n| n == name)
    });
    if request.headers().get(HOST).is_none() {
        if let Ok(v) = HeaderValue::from_str(fwd.host.unwrap_or(fwd.default_host)) {
            request.set(HOST, v);
        }
    }
    // One buffer for the `Forwarded` value; X-Forwarded-For is the address inside it.
    let mut forwarded = String::with_capacity(96);
    if let Some(ip) = fwd.client_ip {
        let (open, close) = match ip {
            IpAddr::V4(_) => ("for=", ";"),
            IpAddr::V6(_) => ("for=\"[", "]\";"),
        };
        forwarded.push_str(open);
        let address = forwarded.len();
        let _ = write!(forwarded, "{ip}");
        if let Ok(v) = HeaderValue::from_str(&forwarded[address..]) {
            request.set(HeaderName::from_static("x-forwarded-for"), v);
        }
        forwarded.push_str(close);
    }
    forwarded.push_str("proto=https");
    if let Some(host) = fwd.host.filter(|h| is_plain_authority(h)) {
        if let Ok(v) = HeaderValue::from_str(host) {
            request.set(HeaderName::from_static("x-forwarded-host"), v);
        }
        let _ = write!(forwarded, ";host=\"{host}\"");
    }
    request.set(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        request.set(HeaderName::from_static("forwarded"), v);
    }
    request.set(X_REQUEST_ID, fwd.request_id.clone());
    set_identity(request, fwd.principal);
}

/// Whether an `Authorization` value is of the Bearer scheme: its first word, case aside
/// (RFC 9110 section 11.1), whatever blank follows it.
fn is_bearer(value: &[u8]) -> bool {
    value
        .trim_ascii_start()
        .split(|b| b.is_ascii_whitespace())
        .next()
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer"))
}

/// Set the verified identity headers (the client's own were stripped).
fn set_identity(request: &mut impl HeaderEdit, principal: Option<&Principal>) {
    if let Some(principal) = principal {
        for (name, value) in &principal.upstream_headers {
            request.set(name.clone(), value.clone());
        }
    }
}

/// An upstream's `Location` or `Content-Location` that names the upstream's own address (a
/// FHIR server answers a create with `Location: http://10.0.0.5:8081/fhir/Observation/1/…`
/// when that is its configured base) is rewritten to the address the client used, over
/// https, as nginx's `proxy_redirect default` does: a client that followed it would send its
/// bearer token in plaintext straight to the backend, past every check here. Without a
/// plain `public_host` to write, the header is removed instead. Other URLs pass unchanged.
pub fn public_locations(
    response: &mut HeaderMap,
    upstream_origins: &[String],
    public_host: Option<&str>,
) {
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(public) = response
            .get(&name)
            .and_then(|value| value.to_str().ok())
            .and_then(|url| public_url(url, upstream_origins, public_host))
        else {
            continue;
        };
        match public.and_then(|url| HeaderValue::try_from(url).ok()) {
            Some(value) => {
                response.insert(name, value);
            }
            None => {
                response.remove(name);
            }
        }
    }
    if response.contains_key(LINK) {
        public_links(response, upstream_origins, public_host);
    }
}

/// The same for each target of a `Link` (RFC 8288: `<url>; rel="next", <url>; rel="prev"`, the
/// pagination of many APIs, which clients follow as they follow `Location`). A value with an
/// internal target and no public address to write is removed whole.
fn public_links(response: &mut HeaderMap, upstream_origins: &[String], public_host: Option<&str>) {
    let mut rewritten = Vec::new();
    let mut changed = false;
    for value in response.get_all(LINK) {
        let Ok(text) = value.to_str() else {
            rewritten.push(Some(value.clone()));
            continue;
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut keep = true;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>').map(|c| open + c) else {
                break;
            };
            let target = &rest[open + 1..close];
            out.push_str(&rest[..=open]);
            match public_url(target, upstream_origins, public_host) {
                None => out.push_str(target),
                Some(Some(public)) => {
                    out.push_str(&public);
                    changed = true;
                }
                Some(None) => {
                    keep = false;
                    changed = true;
                }
            }
            rest = &rest[close..];
        }
        out.push_str(rest);
        rewritten.push(keep.then(|| HeaderValue::try_from(out).ok()).flatten());
    }
    if changed {
        response.remove(LINK);
        for value in rewritten.into_iter().flatten() {
            response.append(LINK, value);
        }
    }
}

/// A URL the upstream wrote, as the client must get it: `None` when it does not start with
/// the upstream's own origin (any case, the origin followed by its end, `/`, `?` or `#`),
/// `Some(None)` when it does and the request named no plain host to write instead,
/// `Some(Some(url))` the same URL at `https://` and that host.
fn public_url(
    url: &str,
    upstream_origins: &[String],
    public_host: Option<&str>,
) -> Option<Option<String>> {
    let rest = upstream_origins.iter().find_map(|origin| {
        let head = url.get(..origin.len())?;
        let rest = &url[origin.len()..];
        (head.eq_ignore_ascii_case(origin)
            && (rest.is_empty() || rest.starts_with(['/', '?', '#'])))
        .then_some(rest)
    })?;
    Some(public_host.filter(|h| is_plain_authority(h)).map(|host| {
        let slash = if rest.starts_with('/') { "" } else { "/" };
        format!("https://{host}{slash}{rest}")
    }))
}

/// An authority safe to repeat inside a quoted `Forwarded` value.
fn is_plain_authority(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn the_upstreams_own_location_is_rewritten_or_removed() {
        let origins = ["http://backend.internal:8080".to_owned()];
        let answer = |location: &'static str, host: Option<&str>| {
            let mut m = map(&[("location", location), ("content-location", location)]);
            public_locations(&mut m, &origins, host);
            let read = |n: &str| m.get(n).map(|v| v.to_str().unwrap_or_default().to_owned());
            assert_eq!(read("location"), read("content-location"));
            read("location")
        };
        let host = Some("phr.example.jp:8443");
        for (location, expected) in [
            (
                "http://backend.internal:8080/fhir/Observation/1/_history/1",
                Some("https://phr.example.jp:8443/fhir/Observation/1/_history/1"),
            ),
            (
                "http://Backend.Internal:8080",
                Some("https://phr.example.jp:8443/"),
            ),
            (
                "http://backend.internal:8080#top",
                Some("https://phr.example.jp:8443/#top"),
            ),
            (
                "http://backend.internal:80800/x",
                Some("http://backend.internal:80800/x"),
            ),
            (
                "http://backend.internal:8080.evil.example/x",
                Some("http://backend.internal:8080.evil.example/x"),
            ),
            (
                "https://backend.internal:8080/x",
                Some("https://backend.internal:8080/x"),
            ),
            ("/fhir/Observation/1", Some("/fhir/Observation/1")),
        ] {
            assert_eq!(answer(location, host).as_deref(), expected, "{location}");
        }
        // No public address to write: the internal one is not passed on either.
        for host in [None, Some("a b"), Some("x\"y")] {
            assert_eq!(
                answer("http://backend.internal:8080/x", host),
                None,
                "{host:?}"
            );
        }
    }

    /// `Link` targets (pagination) naming the upstream's own origin are made public too; other
    /// targets and the parameters pass as they came.
    #[test]
    fn the_upstreams_own_links_are_rewritten_or_removed() {
        let origins = ["http://backend.internal:8080".to_owned()];
        let links = |host: Option<&str>, values: &[&'static str]| {
            let mut m = HeaderMap::new();
            for v in values {
                m.append(LINK, HeaderValue::from_static(v));
            }
            public_locations(&mut m, &origins, host);
            m.get_all(LINK)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let host = Some("phr.example.jp");
        assert_eq!(
            links(
                host,
                &[
                    "<http://backend.internal:8080/api/readings?page=2>; rel=\"next\", <https://docs.example.jp/api>; rel=\"help\"",
                    "<HTTP://BACKEND.INTERNAL:8080/api/readings?page=9>; rel=\"last\"",
                ]
            ),
            [
                "<https://phr.example.jp/api/readings?page=2>; rel=\"next\", <https://docs.example.jp/api>; rel=\"help\"",
                "<https://phr.example.jp/api/readings?page=9>; rel=\"last\"",
            ]
        );
        let untouched =
            "<http://backend.internal:80800/x>; rel=\"next\", </relative>; rel=\"prev\"";
        assert_eq!(links(host, &[untouched]), [untouched]);
        // No public address to write: the value naming the internal one goes, the others stay.
        assert_eq!(
            links(
                None,
                &[
                    "<http://backend.internal:8080/x>; rel=\"next\"",
                    "<https://docs.example.jp/>; rel=\"help\""
                ]
            ),
            ["<https://docs.example.jp/>; rel=\"help\""]
        );
    }

    /// A bearer token on an anonymous route (no principal) was verified by no one: it never
    /// reaches the backend; other schemes do.
    #[test]
    fn an_unverified_bearer_token_never_reaches_the_upstream() {
        for value in [
            "Bearer abc.def.ghi",
            "bearer abc",
            "BEARER\tabc",
            " Bearer abc",
        ] {
            let mut m = map(&[("authorization", value)]);
            rewrite(&mut m, "192.0.2.7");
            assert!(m.get("authorization").is_none(), "{value}");
        }
        let mut m = map(&[("authorization", "Basic Y2xpZW50OnNlY3JldA==")]);
        rewrite(&mut m, "192.0.2.7");
        assert_eq!(m["authorization"], "Basic Y2xpZW50OnNlY3JldA==");
        let mut m = map(&[("authorization", "Basic x"), ("authorization", "Bearer y")]);
        rewrite(&mut m, "192.0.2.7");
        assert!(m.get("authorization").is_none());
    }

    /// Rewrite for no client address, with these identity header names.
    fn rewrite_naming(m: &mut HeaderMap, names: &IdentityHeaders) {
        rewrite_as(m, None, None, names);
    }

    fn rewrite(m: &mut HeaderMap, ip: &str) {
        rewrite_as(
            m,
            ip.parse().ok(),
            Some("phr.example.jp"),
            &IdentityHeaders::default(),
        );
    }

    /// Rewrite for an anonymous request (no principal) from `client_ip` naming `host`.
    fn rewrite_as(
        m: &mut HeaderMap,
        client_ip: Option<IpAddr>,
        host: Option<&str>,
        names: &IdentityHeaders,
    ) {
        rewrite_request(
            m,
            &Forwarding {
                client_ip,
                host,
                request_id: &HeaderValue::from_static("req-1"),
                default_host: "backend",
                identity_headers: names,
                principal: None,
                purpose_header: &HeaderName::from_static("phr-purpose"),
            },
        );
    }

    /// A client can never pass itself off as verified: every `x-phr-*` header and every
    /// configured identity header name it sends is removed, verified or not (R-AUTH-1).
    #[test]
    fn client_sent_identity_headers_never_reach_the_upstream() {
        let names = IdentityHeaders {
            subject: "x-user".into(),
            ..IdentityHeaders::default()
        };
        let mut m = map(&[
            ("x-user", "admin"),
            ("x-phr-subject", "admin"),
            ("x-phr-mfa", "true"),
            ("X-PHR-Anything", "1"),
            ("accept", "*/*"),
        ]);
        rewrite_naming(&mut m, &names);
        for gone in ["x-user", "x-phr-subject", "x-phr-mfa", "x-phr-anything"] {
            assert!(m.get(gone).is_none(), "{gone} passed through");
        }
        assert_eq!(m["accept"], "*/*");
    }

    /// The same names spelled with `_` for `-`, as CGI, WSGI and Rack servers read them
    /// (`HTTP_X_PHR_SUBJECT`), are removed too; other names with `_` pass.
    #[test]
    fn underscore_spellings_of_the_gateways_headers_never_reach_the_upstream() {
        let names = IdentityHeaders {
            subject: "x-user".into(),
            ..IdentityHeaders::default()
        };
        let mut m = map(&[
            ("x_user", "admin"),
            ("x_phr_subject", "admin"),
            ("x-phr_mfa", "true"),
            ("x_forwarded_for", "10.0.0.1"),
            ("x_real_ip", "10.0.0.1"),
            ("x_request_id", "client-chosen"),
            ("phr_neutralised", "nothing"),
            ("proxy_authorization", "Basic x"),
            ("client_trace", "kept"),
        ]);
        rewrite_naming(&mut m, &names);
        for gone in [
            "x_user",
            "x_phr_subject",
            "x-phr_mfa",
            "x_forwarded_for",
            "x_real_ip",
            "x_request_id",
            "phr_neutralised",
            "proxy_authorization",
        ] {
            assert!(m.get(gone).is_none(), "{gone} passed through");
        }
        assert_eq!(m["client_trace"], "kept");
    }

    /// The purpose of use is read from its exact name (R-AZ-2); another spelling a CGI, WSGI
    /// or Rack server reads as the same variable never reaches the upstream beside it.
    #[test]
    fn only_the_checked_spelling_of_the_purpose_header_reaches_the_upstream_r_az_2() {
        let mut m = map(&[
            ("phr-purpose", "self-management"),
            ("phr_purpose", "insurance"),
            ("PHR_PURPOSE", "research"),
            ("phr-purposes", "kept"),
        ]);
        rewrite(&mut m, "192.0.2.7");
        assert_eq!(m["phr-purpose"], "self-management");
        assert!(m.get("phr_purpose").is_none());
        assert_eq!(m["phr-purposes"], "kept");
        assert_eq!(m.len(), 8, "{m:?}");
    }

    #[test]
    fn spoofed_forwarding_headers_are_replaced() {
        let mut m = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("forwarded", "for=10.0.0.1"),
            ("x-real-ip", "10.0.0.1"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "http"),
            ("x-request-id", "client-chosen"),
            ("phr-neutralised", "nothing"),
            ("host", "phr.example.jp"),
        ]);
        rewrite(&mut m, "192.0.2.7");
        // Only the gateway says what it changed (R-WAF-4).
        assert!(m.get("phr-neutralised").is_none());
        assert_eq!(m.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(m["x-forwarded-for"], "192.0.2.7");
        assert_eq!(
            m["forwarded"],
            "for=192.0.2.7;proto=https;host=\"phr.example.jp\""
        );
        assert!(m.get("x-real-ip").is_none());
        assert_eq!(m["x-forwarded-host"], "phr.example.jp");
        assert_eq!(m["x-forwarded-proto"], "https");
        assert_eq!(m["x-request-id"], "req-1");
    }

    /// The names frameworks read in place of the standard ones, for the scheme, the host and
    /// the client's address, are the gateway's too: a client's never reaches the backend.
    #[test]
    fn what_frameworks_read_as_forwarding_never_comes_from_the_client() {
        let spoofed = [
            ("x-forwarded-scheme", "http"),
            ("x-forwarded-ssl", "off"),
            ("front-end-https", "off"),
            ("x-url-scheme", "http"),
            ("x-original-host", "evil.example"),
            ("x-host", "evil.example"),
            ("x-http-host-override", "evil.example"),
            ("x-forwarded", "for=10.0.0.1"),
            ("forwarded-for", "10.0.0.1"),
            ("client-ip", "10.0.0.1"),
            ("x-cluster-client-ip", "10.0.0.1"),
            ("cf-connecting-ip", "10.0.0.1"),
            ("fastly-client-ip", "10.0.0.1"),
            ("x-originating-ip", "10.0.0.1"),
            ("x-remote-ip", "10.0.0.1"),
            ("x-remote-addr", "10.0.0.1"),
            ("x_cluster_client_ip", "10.0.0.1"),
            ("accept", "application/fhir+json"),
        ];
        let mut m = map(&spoofed);
        rewrite(&mut m, "192.0.2.7");
        for (name, _) in &spoofed[..spoofed.len() - 1] {
            assert!(m.get(*name).is_none(), "{name} passed through");
        }
        assert_eq!(m["accept"], "application/fhir+json");
    }

    /// What authenticating proxies and platforms set to name the user or the client
    /// certificate they verified, and every `x-forwarded-*`, never comes from the client
    /// (R-AUTH-1); application headers that merely look alike pass.
    #[test]
    fn what_an_authenticating_proxy_asserts_never_comes_from_the_client_r_auth_1() {
        let asserted = [
            ("x-forwarded-user", "admin"),
            ("x-forwarded-email", "admin@example.jp"),
            ("x-forwarded-groups", "admins"),
            ("x-forwarded-access-token", "eyJ"),
            ("x-forwarded-client-cert", "Hash=1;Subject=\"CN=admin\""),
            ("x-forwarded-protocol", "http"),
            ("x-auth-request-user", "admin"),
            ("x-auth-request-email", "admin@example.jp"),
            ("remote-user", "admin"),
            ("remote-groups", "admins"),
            ("x-remote-user", "admin"),
            ("x-webauth-user", "admin"),
            ("x-authenticated-userid", "admin"),
            ("x-consumer-username", "admin"),
            ("x-userinfo", "eyJzdWIiOiJhZG1pbiJ9"),
            ("x-ms-client-principal-name", "admin"),
            ("x-ms-token-aad-id-token", "eyJ"),
            (
                "x-goog-authenticated-user-email",
                "accounts.google.com:admin@example.jp",
            ),
            ("x-goog-iap-jwt-assertion", "eyJ"),
            ("x-amzn-oidc-identity", "admin"),
            ("x-pomerium-claim-email", "admin@example.jp"),
            ("cf-access-authenticated-user-email", "admin@example.jp"),
            ("x-ssl-client-verify", "SUCCESS"),
            ("x-ssl-client-s-dn", "CN=admin"),
            ("ssl-client-verify", "SUCCESS"),
            ("x-client-cert", "-----BEGIN CERTIFICATE-----"),
            ("x-client-verify", "SUCCESS"),
            ("x-arr-clientcert", "MIIB"),
            ("oidc_claim_email", "admin@example.jp"),
            ("shib-identity-provider", "https://idp.example.jp"),
            ("mellon-nameid", "admin"),
            ("accept", "application/fhir+json"),
            ("x-user-agent-hint", "kept"),
            ("user-agent", "kept"),
            ("x-client-version", "kept"),
            ("x-consent-id", "kept"),
        ];
        let mut m = map(&asserted);
        rewrite(&mut m, "192.0.2.7");
        for (name, _) in &asserted[..asserted.len() - 5] {
            assert!(m.get(*name).is_none(), "{name} passed through");
        }
        for kept in [
            "accept",
            "x-user-agent-hint",
            "user-agent",
            "x-client-version",
            "x-consent-id",
        ] {
            assert!(m.get(kept).is_some(), "{kept} was removed");
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut m = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("accept", "application/fhir+json"),
        ]);
        rewrite(&mut m, "2001:db8::1");
        for gone in [
            "connection",
            "keep-alive",
            "x-secret-hop",
            "upgrade",
            "te",
            "proxy-authorization",
        ] {
            assert!(m.get(gone).is_none(), "{gone} was forwarded");
        }
        assert_eq!(m["accept"], "application/fhir+json");
        assert_eq!(
            m["forwarded"],
            "for=\"[2001:db8::1]\";proto=https;host=\"phr.example.jp\""
        );
        assert_eq!(m["host"], "phr.example.jp");
    }
}
