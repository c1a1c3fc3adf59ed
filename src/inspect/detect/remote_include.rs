//! URLs that include or redirect to what the gateway did not check (`rfi-*`): credentials
//! hiding the real host, another origin with nothing after its host, UNC paths, include
//! suffixes, and URLs a backend fetches.

use super::*;

/// `://`, searched for in most values: a searcher built once, not per value (building one
/// costs more than searching a short value).
pub(super) static SCHEME_SEPARATOR: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new("://"));

/// A URL with a user name before its host (`rfi-150`: `http://user@evil.com/`), also one
/// whose `/` was encoded (`http://example.com%2f@evil.com/`, decoded before the rules): a
/// parser that ends the host at the first `/` and one that ends it at `@` reach two hosts.
/// FHIR's URLs carry no credentials; `https://host/@name` passes. Code, not a pattern: as a
/// pattern it kept a DFA state alive along every URL's host.
pub(super) fn credentials_url(folded: &str) -> Option<Hit> {
    let text = folded.as_bytes();
    // Up to `/`, `?`, `#`, `@` or a space: whether it was `@`, after at least one byte.
    let segment = |from: usize| {
        let rest = text.get(from..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|b| {
                matches!(
                    b,
                    b'/' | b'?' | b'#' | b'@' | b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'
                )
            })
            .unwrap_or(rest.len());
        (end > 0).then(|| (from + end, rest.get(end).copied()))
    };
    // After `/@`: a host name (a dot in it) that ends the authority, as in
    // `http://example.com%2f@evil.com/` decoded. Mastodon's `https://host/@name` has none.
    let host_after = |from: usize| match segment(from) {
        Some((end, None | Some(b'/' | b'?' | b'#'))) => {
            let host = &text[from..end];
            host.contains(&b'.')
                && host
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
        }
        _ => false,
    };
    let user = SCHEME_SEPARATOR
        .find_iter(text)
        .any(|at| match segment(at + 3) {
            Some((_, Some(b'@'))) => true,
            Some((end, Some(b'/'))) => match segment(end + 1) {
                Some((_, Some(b'@'))) => true,
                None => text.get(end + 1) == Some(&b'@') && host_after(end + 2),
                _ => false,
            },
            _ => false,
        });
    user.then_some(Hit {
        rule: "rfi-150",
        class: Class::Rfi,
    })
}

/// A query value that is only another site's address (`rfi-160`, CRS 931130:
/// `?x=https://evil.example/`): what remote-include and open-redirect probes send, a URL with
/// nothing after its host. `host` is the request's own (`Host`): its URLs, and those of its
/// subdomains, pass. FHIR's searches name systems with a code after them
/// (`code=http://loinc.org|8867-4`) and resources with a path, which pass too.
pub fn other_origin(folded: &str, host: Option<&str>) -> Option<Hit> {
    let rest = ["https://", "http://", "ftps://", "ftp://"]
        .into_iter()
        .find_map(|scheme| folded.strip_prefix(scheme))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let bare = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !bare {
        return None;
    }
    let own = host.is_some_and(|host| {
        let host = host.trim().to_ascii_lowercase();
        authority == host
            || authority
                .strip_suffix(host.as_str())
                .is_some_and(|sub| sub.ends_with('.'))
    });
    (!own).then_some(Hit {
        rule: "rfi-160",
        class: Class::Rfi,
    })
}

/// A Windows UNC path as the value (`\\evil\share\x`, `\\10.0.0.1\c$`): a Windows
/// backend that opens it reaches another host over SMB, and sends that host its account's
/// NTLM credentials (`rfi-170`). Read from `decoded`, where the backslashes are still
/// backslashes (the rules' folded text makes it a protocol-relative `//evil/share`).
pub(super) fn unc_path(decoded: &str) -> Option<Hit> {
    let rest = decoded.trim_start().strip_prefix("\\\\")?;
    let host = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        .count();
    (host > 0 && matches!(rest.as_bytes().get(host), Some(b'\\' | b'@'))).then_some(Hit {
        rule: "rfi-170",
        class: Class::Rfi,
    })
}

/// A URL-looking value ending in `?` (`rfi-120`, `http://evil/x.txt?`): the include's own
/// suffix becomes a query. Code, not a pattern: as a pattern its "no space up to the end"
/// kept a DFA state alive along every URL a value starts with, and cost the pattern set a
/// fifth of its first-sight time.
pub(super) fn include_url(folded: &str) -> Option<Hit> {
    let text = folded.as_bytes();
    const HIT: Hit = Hit {
        rule: "rfi-120",
        class: Class::Rfi,
    };
    // Asked of every value: one look at its ends first.
    if !text.starts_with(b"//") && !matches!(text.last(), Some(b'?' | b'#')) {
        return None;
    }
    // A script named by a protocol-relative URL (`//evil.example/shell.txt`): what an
    // include prefixes with its own scheme.
    if let Some(rest) = folded.strip_prefix("//") {
        let (host, path) = rest.split_once('/')?;
        const SCRIPTS: &[&str] = &[
            "txt", "php", "php3", "php4", "php5", "phtml", "inc", "jsp", "asp", "aspx", "sh", "pl",
            "py", "cgi", "rb",
        ];
        let script = path
            .rsplit_once('.')
            .is_some_and(|(_, extension)| SCRIPTS.contains(&extension));
        return (host.contains('.') && script && !folded.contains(char::is_whitespace))
            .then_some(HIT);
    }
    // A URL cut short by `#` after a file name (`…/shell.txt#`): the include's own suffix
    // goes into the fragment, as with `?`.
    let fragment_cut = text.last() == Some(&b'#')
        && folded[..folded.len() - 1]
            .rsplit('/')
            .next()
            .is_some_and(|name| name.contains('.'));
    if text.last() != Some(&b'?') && !fragment_cut {
        return None;
    }
    let scheme = ["https", "http", "ftps", "ftp", "file"]
        .into_iter()
        .find(|s| text.starts_with(s.as_bytes()))?;
    let ends_word = text
        .get(scheme.len())
        .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'));
    let one_word = !text
        .iter()
        .any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'));
    (ends_word && one_word).then_some(HIT)
}

/// A URL to include from where a backend fetches URLs (`rfi-110`): a host that is an
/// address, not a name (a dropper's server), or a file-transfer or directory scheme (`ftp://`,
/// `tftp://`, `ldap://`). Internal addresses are `ssrf-100`'s. Like it, not applied to FHIR
/// identifiers (which are URLs, `ftp://` ones too) nor to `Referer`.
pub(super) fn fetched_url(folded: &str) -> Option<Hit> {
    static ADDRESS: OnceLock<Option<regex::Regex>> = OnceLock::new();
    // Nothing without a scheme's `://`.
    SCHEME_SEPARATOR.find(folded.as_bytes())?;
    let address = ADDRESS
        .get_or_init(|| {
            regex::RegexBuilder::new(
                r"\b(?:https?|ftps?)://(?:(?:\d{1,3}\.){3}\d{1,3}(?:[:/?#]|$)|\[?[0-9a-f]{1,4}:[0-9a-f]{0,4}:[0-9a-f:]*)|\b(?:ftps?|sftp|tftp|ldaps?)://",
            )
            .unicode(false)
            .build()
            .ok()
        })
        .as_ref()?;
    address.is_match(folded).then_some(Hit {
        rule: "rfi-110",
        class: Class::Rfi,
    })
}
