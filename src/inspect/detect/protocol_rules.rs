//! The protocol rules on request headers and names (`protocol-*`, `scanner-100`): method
//! overrides, headers a PHR API cannot inspect through, charsets, ranges, media types,
//! cache directives, Fetch metadata, PHP-style bracket names, and scanners' user agents.

use super::*;

/// A query parameter name a PHP-style parser reads otherwise than it is written (`protocol-210`,
/// CRS 921210): text after a closing bracket that opens no other (`foo[1]a[2]`, `foo[1]a`), a
/// bracket never closed, or one inside another. `ids[]`, `filter[status]`, `a[b][c]` pass.
pub fn bracket_name(name: &str) -> Option<Hit> {
    let name = name.as_bytes();
    let open = memchr::memchr(b'[', name)?;
    let mut rest = &name[open..];
    let well_formed = open > 0
        && loop {
            match rest {
                [] => break true,
                [b'[', inner @ ..] => match memchr::memchr2(b'[', b']', inner) {
                    Some(close) if inner[close] == b']' => rest = &inner[close + 1..],
                    _ => break false,
                },
                _ => break false,
            }
        };
    (!well_formed).then_some(Hit {
        rule: "protocol-210",
        class: Class::Protocol,
    })
}

/// A vulnerability scanner naming itself in `User-Agent` (`scanner-100`). An operator whose
/// own authorised scans should pass excludes the rule on that header.
pub fn scanner(user_agent: &[u8]) -> Option<Hit> {
    static NAMES: OnceLock<Option<regex::bytes::Regex>> = OnceLock::new();
    let names = NAMES
        .get_or_init(|| {
            regex::bytes::RegexBuilder::new(
                r"\b(?:nikto|sqlmap|nessus|nmap|masscan|zgrab|arachni|nuclei|havij|acunetix|netsparker|w3af|dirbuster|dirb|gobuster|wpscan|openvas|whatweb|wfuzz|ffuf|feroxbuster|commix|xsstrike|skipfish|paros|webinspect|appscan|jaeles|zmeu|morfeus|jorgee|sqlninja|bsqlbf|fimap|interactsh)\b",
            )
            .case_insensitive(true)
            .unicode(false)
            .build()
            .ok()
        })
        .as_ref()?;
    names.is_match(user_agent).then_some(Hit {
        rule: "scanner-100",
        class: Class::Scanner,
    })
}

/// The rule a method- or target-override header breaks (see [`header`]).
fn override_rule(name: &str) -> Option<&'static str> {
    match name {
        "x-http-method-override" | "x-http-method" | "x-method-override" => Some("protocol-101"),
        "x-original-url" | "x-rewrite-url" | "x-original-uri" => Some("protocol-102"),
        _ => None,
    }
}

/// Request headers that make a backend do what the gateway did not check, or that it cannot
/// inspect through: a method override (`protocol-101`: the gateway authorised another
/// method), a target override (`protocol-102`: Symfony, Zend, Drupal and IIS-hosted
/// applications have routed by `X-Original-URL` / `X-Rewrite-URL`, past the gateway's
/// route and access checks), WebDAV, partial-content and proxy headers a PHR API has no use for, a compressed
/// body the inspection would read as bytes, Next.js's internal `x-middleware-subrequest`
/// (`protocol-110`), a body in a charset that does not keep ASCII as ASCII (`protocol-120`),
/// or a boundary on a type that is not multipart, and a `Range` of more than five ranges, 63 for a PDF (`protocol-130`, the "Apache killer"); a cookie header with
/// RFC 2109 `$Version` attributes (`protocol-160`).
pub fn header(name: &str, value: &[u8], path: &str) -> Option<Hit> {
    let hit = |rule| {
        Some(Hit {
            rule,
            class: Class::Protocol,
        })
    };
    // Only the value of a named few is read: every request's other headers pass by name.
    // (Borrowed, not copied: a JSON body's `Content-Type` carries a charset on most writes.)
    let text = || String::from_utf8_lossy(value.trim_ascii());
    // `X_HTTP_Method_Override` is the override to a CGI, WSGI or Rack server.
    if let Some(rule) = override_rule(&crate::headers::as_cgi_reads(name)) {
        return hit(rule);
    }
    match name {
        "request-range"
        | "lock-token"
        | "if"
        | "proxy"
        | "x-middleware-subrequest"
        | "content-range"
        | "accept-charset" => hit("protocol-110"),
        "content-encoding" if !value.trim_ascii().eq_ignore_ascii_case(b"identity") => {
            hit("protocol-110")
        }
        "content-type" => match MediaType::parse(value) {
            None => hit("protocol-170"),
            // A charset that does not keep ASCII, or a boundary on a type that is not
            // multipart: a parser that trusts it reads other text, or another type, than
            // the gateway did.
            Some(media) if media.charset.is_some_and(|c| !ascii_compatible(c)) => {
                hit("protocol-120")
            }
            Some(media) if media.boundary && !media.multipart => hit("protocol-120"),
            Some(_) => None,
        },
        "range" => {
            // A PDF viewer reads a linearised file in many ranges (CRS 920200's allowance).
            let pdf = path
                .as_bytes()
                .rsplit(|&b| b == b'.')
                .next()
                .is_some_and(|ext| ext.eq_ignore_ascii_case(b"pdf"));
            if byte_ranges(value, if pdf { 62 } else { 5 }) {
                None
            } else {
                hit("protocol-130")
            }
        }
        "sec-fetch-user" | "sec-ch-ua-mobile" | "sec-fetch-site" | "sec-fetch-mode"
            if !browser_value(name, value.trim_ascii()) =>
        {
            hit("protocol-200")
        }
        // RFC 2109's `$Version` attributes: backends parse such a cookie header otherwise.
        "cookie" if value.trim_ascii_start().starts_with(b"$Version") => hit("protocol-160"),
        // An answer asked for in a charset that does not keep ASCII (`text/html;charset=
        // cp1026`, EBCDIC): what the backend writes back slips past filters that read ASCII.
        "accept" if value.contains(&b';') => {
            let value = text();
            let other = value
                .split([',', ';'])
                .filter_map(|p| p.split_once('='))
                .any(|(k, v)| k.trim().eq_ignore_ascii_case("charset") && !ascii_compatible(v));
            if other {
                hit("protocol-120")
            } else {
                None
            }
        }
        // A connection option twice, or `close` with `keep-alive`: each server keeps the one
        // it reads first or last.
        "connection" if value.contains(&b',') => {
            let value = text();
            let options: Vec<&str> = value.split(',').map(str::trim).collect();
            let twice = options
                .iter()
                .enumerate()
                .any(|(i, a)| options[i + 1..].iter().any(|b| a.eq_ignore_ascii_case(b)));
            let has = |o: &str| options.iter().any(|a| a.eq_ignore_ascii_case(o));
            if twice || (has("close") && has("keep-alive")) {
                hit("protocol-180")
            } else {
                None
            }
        }
        // Browsers send about 25 bytes; a long list, or a coding no one registered, is a
        // probe of the backend's parser.
        "accept-encoding" if value.len() > 100 || !registered_codings(value) => hit("protocol-190"),
        "cache-control" if !request_cache_directives(value) => hit("protocol-220"),
        _ => None,
    }
}

/// Whether every coding an `Accept-Encoding` names is in IANA's HTTP Content Coding Registry
/// (or `*`), each with at most a `q` weight. Empty elements are allowed, as RFC 9110 section
/// 5.6.1.2 says a recipient must accept them.
pub(super) fn registered_codings(value: &[u8]) -> bool {
    const CODINGS: &[&[u8]] = &[
        b"*",
        b"aes128gcm",
        b"br",
        b"compress",
        b"dcb",
        b"dcz",
        b"deflate",
        b"exi",
        b"gzip",
        b"identity",
        b"pack200-gzip",
        b"x-compress",
        b"x-gzip",
        b"zstd",
    ];
    value.split(|&b| b == b',').all(|element| {
        let mut parts = element.split(|&b| b == b';');
        let coding = parts.next().unwrap_or_default().trim_ascii();
        let weight = |p: &[u8]| {
            p.trim_ascii()
                .split_first()
                .is_some_and(|(q, rest)| q.eq_ignore_ascii_case(&b'q') && rest.starts_with(b"="))
        };
        (coding.is_empty() && parts.next().is_none())
            || (CODINGS.iter().any(|c| c.eq_ignore_ascii_case(coding)) && parts.all(weight))
    })
}

/// Whether a request's `Cache-Control` holds only the directives RFC 9111 section 5.2.1
/// defines for requests (`max-age=N`, `max-stale[=N]`, `min-fresh=N`, `no-cache`, `no-store`,
/// `no-transform`, `only-if-cached`), RFC 5861's `stale-if-error=N`, and `must-revalidate`,
/// which HTTP libraries copy into requests from the classic "don't cache" triple. Anything
/// else (`private`, `foo=bar`, `max-age=x`) is a response directive or a probe: each cache
/// between here and the backend reads it its own way (CRS 920510).
pub(super) fn request_cache_directives(value: &[u8]) -> bool {
    value.split(|&b| b == b',').all(|element| {
        let element = element.trim_ascii();
        let (name, argument) = match memchr::memchr(b'=', element) {
            Some(at) => (&element[..at], Some(&element[at + 1..])),
            None => (element, None),
        };
        let seconds = |a: Option<&[u8]>| {
            a.is_some_and(|a| !a.is_empty() && a.len() <= 10 && a.iter().all(u8::is_ascii_digit))
        };
        let is = |directive: &str| name.eq_ignore_ascii_case(directive.as_bytes());
        element.is_empty()
            || ((is("max-age") || is("min-fresh") || is("stale-if-error")) && seconds(argument))
            || (is("max-stale") && (argument.is_none() || seconds(argument)))
            || (argument.is_none()
                && (is("no-cache")
                    || is("no-store")
                    || is("no-transform")
                    || is("only-if-cached")
                    || is("must-revalidate")))
    })
}

/// Whether a `Range` is what RFC 9110 section 14.1.2 allows a client to send, in at most
/// `most` ranges: `bytes=` and ranges `first-last`, `first-` or `-suffix`. Anything else is
/// read differently by different servers (`1-2` with no unit, `bytes=a-b`); many ranges are
/// the "Apache killer" (CRS 920200, 920201).
pub(super) fn byte_ranges(value: &[u8], most: usize) -> bool {
    // The unit is case-insensitive (RFC 9110 section 14.1).
    let value = value.trim_ascii();
    let Some((unit, ranges)) = value.split_at_checked(b"bytes=".len()) else {
        return false;
    };
    let well_formed = |range: &[u8]| {
        let range = range.trim_ascii();
        let Some(dash) = memchr::memchr(b'-', range) else {
            return false;
        };
        let (first, last) = (&range[..dash], &range[dash + 1..]);
        let number = |n: &[u8]| n.len() <= 19 && n.iter().all(u8::is_ascii_digit);
        number(first) && number(last) && !(first.is_empty() && last.is_empty())
    };
    let mut ranges = ranges.split(|&b| b == b',');
    unit.eq_ignore_ascii_case(b"bytes=")
        && ranges.clone().count() <= most
        && ranges.all(well_formed)
}

/// Whether a Fetch metadata or client hint header holds a value a browser sends: these are
/// set by the browser alone (a script cannot), so another value is a hand-made request
/// posing as a browser's (CRS 920275).
pub(super) fn browser_value(name: &str, value: &[u8]) -> bool {
    let allowed: &[&[u8]] = match name {
        "sec-fetch-user" => &[b"?1", b"?0"],
        "sec-ch-ua-mobile" => &[b"?0", b"?1"],
        "sec-fetch-site" => &[b"cross-site", b"same-origin", b"same-site", b"none"],
        "sec-fetch-mode" => &[
            b"cors",
            b"navigate",
            b"no-cors",
            b"same-origin",
            b"websocket",
        ],
        // Not a header this judges.
        _ => return true,
    };
    allowed.contains(&value)
}

/// What the header checks need of a `Content-Type`, read in one pass.
pub(super) struct MediaType<'a> {
    multipart: bool,
    /// The `charset` parameter, unquoted (`'utf-8'` too); `None` also when it is not text.
    charset: Option<&'a str>,
    boundary: bool,
}

impl<'a> MediaType<'a> {
    /// A `Content-Type` as RFC 9110 writes it — `type/subtype`, then `; name=value`
    /// parameters (a token or a quoted string), each name once — or `None`. A backend that
    /// reads `text/plain; charset="UTF-8"; garbage` or two `charset`s may read another type
    /// or charset than the gateway did.
    fn parse(value: &'a [u8]) -> Option<Self> {
        let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
        let token = |text: &[u8]| !text.is_empty() && text.iter().all(tchar);
        let mut rest = value.trim_ascii();
        let type_end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        let media_type = rest[..type_end].trim_ascii_end();
        let slash = media_type.iter().position(|&b| b == b'/')?;
        let (kind, subtype) = (&media_type[..slash], &media_type[slash + 1..]);
        if !token(kind) || !token(subtype) {
            return None;
        }
        let mut media = MediaType {
            multipart: kind.eq_ignore_ascii_case(b"multipart"),
            charset: None,
            boundary: false,
        };
        rest = &rest[type_end..];
        // Most JSON writes carry a charset: the names seen are kept without an allocation,
        // and more parameters than a media type has are not one.
        let mut names: [&[u8]; 8] = [&[]; 8];
        let mut count = 0;
        while let Some(after) = rest.strip_prefix(b";") {
            let after = after.trim_ascii_start();
            if after.is_empty() || after[0] == b';' {
                rest = after;
                continue;
            }
            let eq = after.iter().position(|&b| b == b'=')?;
            let name = &after[..eq];
            if !token(name)
                || count == names.len()
                || names[..count].iter().any(|n| n.eq_ignore_ascii_case(name))
            {
                return None;
            }
            names[count] = name;
            count += 1;
            let boundary = name.eq_ignore_ascii_case(b"boundary");
            let value = &after[eq + 1..];
            let used = if value.first() == Some(&b'"') {
                let mut i = 1;
                loop {
                    match value.get(i) {
                        None => return None,
                        Some(b'\\') => i += 2,
                        Some(b'"') => break i + 1,
                        Some(_) => i += 1,
                    }
                }
            } else {
                // A multipart boundary may hold RFC 2046's `()+,/:=?` unquoted, as mail and
                // HTTP clients write it.
                let allowed = |b: &u8| tchar(b) || (boundary && b"()+,/:=?".contains(b));
                let end = value
                    .iter()
                    .position(|b| !allowed(b))
                    .unwrap_or(value.len());
                if end == 0 {
                    return None;
                }
                end
            };
            if name.eq_ignore_ascii_case(b"charset") {
                // Not UTF-8 (a quoted string may hold anything): no decoder's name.
                let quoted = std::str::from_utf8(&value[..used]).unwrap_or("\u{fffd}");
                media.charset = Some(quoted.trim_matches(['"', '\'']));
            }
            media.boundary |= boundary;
            rest = value[used..].trim_ascii_start();
            if !rest.is_empty() && rest[0] != b';' {
                return None;
            }
        }
        rest.is_empty().then_some(media)
    }
}

/// A method override (`_method=DELETE` as Rails, Laravel and Express's method-override read
/// it, `protocol-100`): the backend would run another method than the one the gateway routed
/// and authorised. `GET` and `POST`, and words that are no method, change nothing.
pub fn method_override(name: &str, value: &str, method: Option<&str>) -> Option<Hit> {
    const OVERRIDDEN: &[&str] = &[
        "put",
        "patch",
        "delete",
        "head",
        "options",
        "trace",
        "connect",
        "propfind",
        "proppatch",
        "mkcol",
        "copy",
        "move",
        "lock",
        "unlock",
        "search",
    ];
    if name != "_method" {
        return None;
    }
    let value = value.trim();
    let overrides = match method {
        // In a query the request's method is known: any word of 3 to 10 letters but that
        // method is one a framework would run instead (`GET …&_method=POST` turns a link
        // into a write; CRS 920650).
        Some(method) => {
            (3..=10).contains(&value.len())
                && value.bytes().all(|b| b.is_ascii_alphabetic())
                && !value.eq_ignore_ascii_case(method)
        }
        None => OVERRIDDEN.contains(&value),
    };
    overrides.then_some(Hit {
        rule: "protocol-100",
        class: Class::Protocol,
    })
}

/// Whether a charset keeps ASCII as ASCII for every backend: UTF-8, ASCII, ISO-8859-n and the
/// Windows single-byte code pages. UTF-7 (`+ADw-` is `<`), UTF-16/32, EBCDIC (`ibm037`),
/// ISO-2022 escapes, Shift_JIS and EUC-JP (second bytes `\`, `|`) do not, nor does a name no
/// decoder knows (`garbage`, `UTF-80`).
pub fn ascii_compatible(charset: &str) -> bool {
    let c = charset.trim().trim_matches('"');
    let numbered = |prefix: &str, range: std::ops::RangeInclusive<u32>| {
        c.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            .then(|| c[prefix.len()..].parse::<u32>().ok())
            .flatten()
            .is_some_and(|n| range.contains(&n))
    };
    ["utf-8", "utf8", "us-ascii", "ascii", "latin1", "latin-1"]
        .iter()
        .any(|name| c.eq_ignore_ascii_case(name))
        || numbered("iso-8859-", 1..=16)
        || numbered("iso8859-", 1..=16)
        || numbered("iso_8859-", 1..=16)
        || numbered("windows-", 1250..=1258)
        || numbered("cp", 1250..=1258)
}
