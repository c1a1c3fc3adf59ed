//! JNDI / Log4Shell lookups (`jndi-*`), nested and obfuscated forms included.

use super::*;

/// A Log4j lookup in a value no other rule reads (`Accept-Language`, `Authorization`, the
/// headers [`crate::inspect`] leaves to identity and content negotiation): Log4j expands a
/// lookup in whatever header a backend logs.
pub fn lookup(value: &[u8]) -> Option<Hit> {
    memchr::memchr(b'$', value)?;
    jndi(
        &crate::inspect::normalise::normalise(value, crate::inspect::normalise::Plus::Literal)
            .folded,
    )
}

/// JNDI lookups, after unwrapping the lookups Log4j itself expands inside them
/// (`${lower:j}`, `${::-n}`, `${env:X:-d}`, `${date:'i'}`), nested to any depth.
pub(super) fn jndi(folded: &str) -> Option<Hit> {
    static LOOKUP: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new("${"));
    // Nothing without a lookup's `${`.
    LOOKUP.find(folded.as_bytes())?;
    static WRAPPED: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let wrapped = WRAPPED
        .get_or_init(|| {
            regex::Regex::new(
                r"\$\{(?:date:'([^']*)'|(?:[a-z0-9_.]*:)*?(?:[^${}:]*:-)?'?([^${}:']*)'?)\}",
            )
            .ok()
        })
        .as_ref()?;
    let mut text = folded.to_owned();
    for _ in 0..8 {
        if text.contains("${jndi:") {
            break;
        }
        let next = wrapped.replace_all(&text, "${1}${2}").into_owned();
        if next == text {
            break;
        }
        text = next;
    }
    if text.contains("${jndi:")
        || text.contains("jndi:ldap")
        || text.contains("jndi:rmi")
        || text.contains("jndi:dns")
    {
        return Some(Hit {
            rule: "jndi-100",
            class: Class::Jndi,
        });
    }
    // As written: unwrapping above takes a lookup's name off with its braces.
    lookup_prefix(folded)
}

/// A Log4j or Apache Commons Text lookup other than JNDI (`jndi-110`): `${env:AWS_SECRET…}`,
/// `${sys:user.home}`, `${ctx:…}` write a secret into a log or, inside a name, into a DNS
/// query; Commons Text's `${script:javascript:…}`, `${dns:…}`, `${url:…}` run or fetch
/// (CVE-2022-42889). A shell's `${HOME}` or a template's `${name}` has no lookup name
/// and colon; `${lower:…}`, `${upper:…}` and `${date:…}` change only text, and count as
/// pieces of a wrapped `jndi` above.
pub(super) fn lookup_prefix(text: &str) -> Option<Hit> {
    const LOOKUPS: &[&str] = &[
        "env",
        "sys",
        "ctx",
        "main",
        "map",
        "sd",
        "k8s",
        "spring",
        "docker",
        "bundle",
        "java",
        "jvmrunargs",
        "log4j",
        "marker",
        "web",
        "event",
        "script",
        "dns",
        "url",
        "file",
        "const",
        "base64",
        "base64decoder",
        "base64encoder",
        "xml",
        "properties",
        "resourcebundle",
        "urlencoder",
        "urldecoder",
        "localhost",
    ];
    text.match_indices("${")
        .any(|(at, _)| {
            let rest = text[at + 2..].trim_start();
            rest.split_once(':')
                .is_some_and(|(name, _)| LOOKUPS.contains(&name.trim()))
        })
        .then_some(Hit {
            rule: "jndi-110",
            class: Class::Jndi,
        })
}
