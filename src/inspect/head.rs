//! A request's head (R-WAF-1): the path whole and by segment, query pairs, cookies, the
//! `User-Agent` and the other header values, each normalised and run through the detectors.

use http::HeaderMap;

use super::normalise::{normalise, Normalised, Plus};
use super::{
    detect, normalised_hit, plain, value_hit, whole, Findings, Hit, Place, Target, Verdicts,
    SEEN_AGENTS, SEEN_FETCHED, SEEN_PAGES,
};

/// Headers whose values are not inspected: credentials the identity step verifies, and
/// content negotiation and framing that the protocol step checks.
const SKIPPED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "content-length",
    "transfer-encoding",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "host",
    "if-none-match",
    "if-match",
];

/// Whether a header names an uploaded file (`X-Filename`, `X_Filename`, `X-File-Name`, as
/// upload handlers read them).
fn names_a_file(name: &http::HeaderName) -> bool {
    let name = name.as_str();
    name.contains("filename") || name.contains("file-name") || name.contains("file_name")
}

/// A header's verdict. `Referer` and `Origin` name pages, never addresses a backend fetches:
/// an internal host there is not SSRF (a staff portal on `http://10.0.0.5/`).
pub(super) fn header_hit(name: &http::HeaderName, raw: &[u8]) -> Option<Hit> {
    // A plain `User-Agent` is still read whole: `visudo` or `chef-shell` is a command there,
    // where no client names itself so.
    if plain(raw) && name != http::header::USER_AGENT {
        return detect::plain_value(raw);
    }
    let fetched = !matches!(name.as_str(), "referer" | "origin");
    // One table per SSRF setting, so that a hit is a lookup by the borrowed value.
    let table = if fetched { &SEEN_FETCHED } else { &SEEN_PAGES };
    Verdicts::get_or(table, raw, || {
        let n = normalise(raw, Plus::Literal);
        detect::value_with(&n, fetched).or_else(|| detect::header_line(&n.folded))
    })
}

pub(super) fn inspect_head(target: &Target<'_>, found: &mut Findings) {
    // The whole path, for rules that need its slashes (`/.git/`, `/proc/...`). Plain paths
    // too: `/get/proc/interrupts` is letters and slashes only.
    if found.add(
        detect::path(&normalise(target.path.as_bytes(), Plus::Literal)),
        Place::Path,
        whole,
    ) {
        return;
    }
    for segment in target.path.split('/').filter(|s| !s.is_empty()) {
        if found.add(
            value_hit(segment.as_bytes(), Plus::Literal),
            Place::Path,
            whole,
        ) {
            return;
        }
    }
    if let Some(query) = target.query {
        let request = QueryRequest {
            method: target.method.as_str(),
            host: target
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .or(target.authority),
            headers: target.headers,
        };
        if pairs(query, Place::Query, Some(&request), found) {
            return;
        }
    }
    for value in target.headers.get_all(http::header::COOKIE) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for cookie in text.split(';') {
            let (name, value) = cookie.trim().split_once('=').unwrap_or((cookie.trim(), ""));
            let n = normalise(name.as_bytes(), Plus::Literal);
            let field = || name.to_owned();
            // A session id belongs in a cookie: only elsewhere is it fixation.
            let cookie_name_hit = detect::name(&n).filter(|h| h.rule != "session-110");
            if found.add(cookie_name_hit, Place::Cookie, field)
                || found.add(
                    value_hit(name.as_bytes(), Plus::Literal),
                    Place::Cookie,
                    field,
                )
                || found.add(
                    value_hit(value.as_bytes(), Plus::Literal),
                    Place::Cookie,
                    field,
                )
            {
                return;
            }
        }
    }
    for agent in target.headers.get_all(http::header::USER_AGENT) {
        let hit = Verdicts::get_or(&SEEN_AGENTS, agent.as_bytes(), || {
            detect::scanner(agent.as_bytes())
        });
        if found.add(hit, Place::Header, || "user-agent".to_owned()) {
            return;
        }
    }
    // `Content-Type` is one value (RFC 9110 section 8.3): given twice, the gateway reads the
    // body by the first while a backend may read it by the last, as another type
    // (`protocol-240`).
    let mut types = target.headers.get_all(http::header::CONTENT_TYPE).iter();
    if types.next().is_some() && types.next().is_some() {
        let twice = Hit {
            rule: "protocol-240",
            class: detect::Class::Protocol,
        };
        if found.add(Some(twice), Place::Header, || "content-type".to_owned()) {
            return;
        }
    }
    for (name, value) in target.headers {
        if found.add(
            detect::header(name.as_str(), value.as_bytes(), target.path),
            Place::Header,
            || name.as_str().to_owned(),
        ) {
            return;
        }
        if SKIPPED_HEADERS.contains(&name.as_str()) {
            if found.add(detect::lookup(value.as_bytes()), Place::Header, || {
                name.as_str().to_owned()
            }) {
                return;
            }
            continue;
        }
        let hit = if names_a_file(name) {
            // `X-Filename`: the name an upload is to be stored under.
            std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(detect::file_name)
                .or_else(|| header_hit(name, value.as_bytes()))
        } else {
            header_hit(name, value.as_bytes())
        };
        if found.add(hit, Place::Header, || name.as_str().to_owned()) {
            return;
        }
    }
}

/// What a query's own rules read of the request beyond its pairs.
pub(super) struct QueryRequest<'a> {
    /// The method: a `_method` naming another is an override.
    method: &'a str,
    /// The `Host`: a value naming another site is a remote include.
    host: Option<&'a str>,
    /// The request's headers, for the `Referer` a session id is judged by (read only then).
    headers: &'a HeaderMap,
}

/// `name=value&...` (a query, with its request, or an urlencoded form): names and values.
/// Returns whether the findings are full.
pub(super) fn pairs(
    text: &str,
    place: Place,
    query: Option<&QueryRequest<'_>>,
    found: &mut Findings,
) -> bool {
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let n = normalise(name.as_bytes(), Plus::Space);
        // The field as a backend reads it: the decoded name.
        let field = || n.decoded.to_string();
        // Normalised once, for every rule that reads the value; a plain one needs none.
        let v = (!plain(value.as_bytes())).then(|| normalise(value.as_bytes(), Plus::Space));
        let value_found = match &v {
            Some(v) => normalised_hit(v, Plus::Space),
            None => detect::plain_value(value.as_bytes()),
        };
        let override_hit = || {
            let folded = v
                .as_ref()
                .map_or_else(|| value.to_ascii_lowercase(), |v| v.folded.to_string());
            detect::method_override(&n.folded, &folded, query.map(|q| q.method))
        };
        // A session id in the query of a link followed within the site is the site's own
        // (CRS 943110): only one from elsewhere, or from nowhere, is a fixation.
        let name_hit = detect::name(&n).filter(|hit| {
            hit.rule != "session-110"
                || !query.is_some_and(|q| {
                    let referer = q.headers.get(http::header::REFERER);
                    detect::same_site_referer(referer.and_then(|r| r.to_str().ok()), q.host)
                })
        });
        if found.add(name_hit, place, field)
            || found.add(value_hit(name.as_bytes(), Plus::Space), place, field)
            || found.add(value_found, place, field)
            || (n.folded == "_method" && found.add(override_hit(), place, field))
        {
            return true;
        }
        if let Some(request) = query {
            if found.add(query_pair(&n.decoded, v.as_ref(), request), place, field) {
                return true;
            }
        }
    }
    false
}

/// The rules of a query pair alone (a form's fields may hold line breaks and addresses): a
/// malformed bracket name, a smuggled line, another site's bare address. A plain value
/// (`None`: no escape, no `:` or `/`) can hold neither of the latter.
fn query_pair(name: &str, value: Option<&Normalised>, request: &QueryRequest<'_>) -> Option<Hit> {
    detect::bracket_name(name).or_else(|| {
        let v = value?;
        detect::query_line(&v.decoded).or_else(|| {
            // Parameters whose value is an identifier that is a URL, often only a host, and
            // never fetched: FHIR's terminology operations name a code system so
            // (`CodeSystem/$lookup?system=http://loinc.org&code=…`), OAuth and OpenID
            // Connect an issuer or an audience (`iss=https://idp.example.jp` in an
            // authorisation response, RFC 9207; SMART's `aud`; RFC 8707's `resource`).
            const IDENTIFIERS: [&str; 6] =
                ["system", "iss", "issuer", "aud", "audience", "resource"];
            (!IDENTIFIERS.contains(&name))
                .then(|| detect::other_origin(&v.folded, request.host))
                .flatten()
        })
    })
}
