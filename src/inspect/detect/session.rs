//! Session fixation (`session-110`, CRS 943110 and 943120): a session id sent as a query
//! parameter is how a fixation is planted — the attacker's link carries the id they already
//! hold. The one case CRS lets through is a link followed within the site itself (a servlet
//! container rewriting URLs for a client without cookies): the browser then names the site's
//! own host in `Referer`, which a link planted elsewhere cannot make it do.

/// Whether `referer` names the same host as the request's `host` (ports aside, letters in any
/// case). No `Referer`, one that is not an absolute http(s) URL, or another host — a
/// subdomain too (`attacker.example.com` for `app.example.com`, `localhost.evil.com` for
/// `localhost`) — is not the site's own.
pub fn same_site_referer(referer: Option<&str>, host: Option<&str>) -> bool {
    let (Some(referer), Some(host)) = (referer, host) else {
        return false;
    };
    let Ok(referer) = referer.trim().parse::<http::Uri>() else {
        return false;
    };
    let Ok(host) = host.trim().parse::<http::uri::Authority>() else {
        return false;
    };
    let web = matches!(referer.scheme_str(), Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    web && referer
        .host()
        .is_some_and(|h| h.eq_ignore_ascii_case(host.host()))
}
