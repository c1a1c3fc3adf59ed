//! The detectors (R-WAF-1): each class has its own rules, each rule a stable id. They read a
//! [`Normalised`] value and say which rule fired first, if any.
//!
//! Pattern rules of every class are compiled once into one `RegexSet` per kind of place (a
//! value, a name, a path), so that a value is scanned once for all of them: they are listed
//! together in `rules`. The rules that are code live with their class:
//!
//! | module | class, rule ids |
//! |---|---|
//! | `sqli` | SQL injection: libinjection's fingerprints and the shapes it misses (`sqli-*`) |
//! | `command` | OS command injection hidden by shell quoting and escapes (`rce-*`) |
//! | `line_breaks` | CRLF and header injection, HL7 v2 messages (`crlf-*`) |
//! | `remote_include` | remote file inclusion and redirects by URL (`rfi-*`) |
//! | `ssrf` | URLs pointing at internal addresses (`ssrf-100`) |
//! | `jndi` | JNDI / Log4Shell lookups (`jndi-*`) |
//! | `serialized` | Java and Node.js serialized objects, in text and in base64 (`java-*`, `nodejs-*`) |
//! | `protocol_rules` | request headers, method overrides, bracket names, scanners (`protocol-*`, `scanner-100`) |
//!
//! This module runs them in order ([`value`], [`name`], [`path`], [`file_name`]) and holds
//! what they share: the classes, a rule's hit, the compiled sets and their prefix gates. XSS
//! in markup is `rules`' `MARKUP_RULES` and libinjection's XSS reading in [`value`]'s verdict.

use std::cell::{Cell, RefCell};
use std::sync::{LazyLock, OnceLock};

use regex::bytes::{RegexSet, RegexSetBuilder};

use super::normalise::Normalised;
use super::scan::at_least;

// The command words are shared by the pattern rules and the `command` module: macros
// defined before the modules, so that both see them.

/// The pieces of `rce-100`'s pattern, each written once: a program's optional directory,
/// the command words (those a note never uses as words, and those it does: `echo`, `cat`,
/// `sleep`, `ID`), and what a shell reads after a word.
macro_rules! shell_path {
    () => {
        r"(?:/?(?:usr/)?(?:local/)?s?bin/)"
    };
}
macro_rules! shell_only_words {
    () => {
        "whoami|hostname|uname|wget|curl|ncat|netcat|bash|sh|zsh|ksh|csh|python[0-9.]*|nslookup|chmod|chown|nmap|telnet|ifconfig|ipconfig|powershell|printenv|xargs|awk|base64|tftp|ftp|scp|sudo|useradd|crontab|systeminfo|tasklist|certutil|bitsadmin|mshta|rundll32|wmic|cscript|wscript|base32|cpulimit"
    };
}
macro_rules! prose_words {
    () => {
        "cat|id|pwd|ping|dig|echo|touch|cmd|sleep|kill|ps|env|head|tail|find|su|column|flock|sed|ssh|rm|ls|nc|php|ruby|perl|dir"
    };
}
macro_rules! tool_words {
    () => {
        r"ansible(?:-[a-z]+)?|chef-[a-z]+|cscli|aa-[a-z]{3,}|bsdtar|ifconfig|whoami|python[0-9][0-9.]*|strace|ltrace|htop|tcpdump|tshark|socat|openssl|busybox|toybox|nohup|setsid|mkfifo|mknod|xxd|hexdump|sqlite3|mysql|psql|mongosh|redis-cli|kubectl|crictl|systemctl|journalctl|chattr|lsattr|setfacl|getfacl|iptables|ip6tables|netstat|lsof|pkill|killall|pgrep|visudo|chpasswd|rsync|lftp|aria2c|lwp-download|lwp-request|uconv|lastlogin|lastlog|readelf|objdump|tmux|byobu|uuencode|uudecode|zcat|zgrep|bzcat|xzcat|gunzip|bunzip2|unxz|unrar|insmod|rmmod|modprobe|sysctl|dmesg|chroot|nsenter|capsh|runuser|sudoedit|pkexec|sendmail|mailx|crontab|pipx|npx|pnpm|apt-get|dpkg|yum|dnf|zypper|flatpak|podman|gcc[0-9.]*|g\+\+|tclsh|luajit|jjs|jrunscript|nodejs|cpan|7za?|bcdboot|bcdedit|bootcfg|diskpart|regsvr32|schtasks|netsh|vssadmin|wevtutil|takeown|icacls|cacls|forfiles|wbadmin"
    };
}
/// Programs whose names are also clinical or research abbreviations (an IRB's approval,
/// `LDD` a leg length discrepancy, `PIP2` a phospholipid, `GDB`, `C99`): at a value's start
/// they count only before an option, a path or the end of the value.
macro_rules! abbreviation_tool_words {
    () => {
        r"irb|ldd|gdb|lldb|pip[0-9.]*|c89|c99"
    };
}
macro_rules! shell_words {
    () => {
        concat!(shell_only_words!(), "|", prose_words!())
    };
}
macro_rules! shell_word_end {
    () => {
        r"(?:\s|$|[;|&<>`'\x22)])"
    };
}

mod command;
mod jndi;
mod line_breaks;
mod protocol_rules;
mod remote_include;
mod rules;
mod serialized;
mod session;
mod sqli;
mod ssrf;
use command::*;
pub use jndi::lookup;
use jndi::*;
use line_breaks::*;
pub use line_breaks::{header_line, query_line};
pub use protocol_rules::{ascii_compatible, bracket_name, header, method_override, scanner};
pub use remote_include::other_origin;
use remote_include::*;
use rules::*;
use serialized::*;
pub use serialized::{decoded_file, plain_value};
pub use session::same_site_referer;
use sqli::*;
use ssrf::*;

/// An attack class, as rules, records and the evaluation tool name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// Path traversal and local file inclusion.
    Lfi,
    /// Remote file inclusion and stream wrappers.
    Rfi,
    /// OS command injection.
    Rce,
    /// JNDI lookups (Log4Shell), nested and obfuscated forms included.
    Jndi,
    /// Server-side template injection.
    Ssti,
    /// PHP code injection.
    Php,
    /// Java code injection (expression languages, reflection, serialized objects).
    Java,
    /// NoSQL operator injection.
    Nosql,
    /// Prototype pollution keys.
    PrototypePollution,
    /// CR/LF injection into headers.
    Crlf,
    /// Server-side request forgery: URL values that point inside.
    Ssrf,
    /// Encodings a backend would read differently (overlong UTF-8, NUL).
    Encoding,
    /// XML external entities: a DTD or an entity declaration in an XML body.
    Xxe,
    /// HTTP framing a backend could read differently (request smuggling shapes).
    Protocol,
    /// Node.js code injection (serialized functions, `child_process`).
    Nodejs,
    /// Session fixation: setting a cookie or a session id from the request.
    SessionFixation,
    /// Multipart parts a backend would decode differently (another charset, a transfer
    /// encoding).
    Multipart,
    /// LDAP filter injection (`)(uid=*`, `)(|`).
    Ldapi,
    /// ORM lookup injection (Django-style `field__startswith`, `user__password__regex`).
    Orm,
    /// XPath injection: a predicate closed and a path joined (`'] | //user`), a condition
    /// made always true with XPath's own functions (`' or true() or ''='`).
    Xpath,
    /// Vulnerability scanners that name themselves in `User-Agent`.
    Scanner,
}

impl Class {
    /// The class name in records, metrics and the evaluation tool.
    pub const fn name(self) -> &'static str {
        match self {
            Class::Sqli => "sqli",
            Class::Xss => "xss",
            Class::Lfi => "lfi",
            Class::Rfi => "rfi",
            Class::Rce => "rce",
            Class::Jndi => "jndi",
            Class::Ssti => "ssti",
            Class::Php => "php",
            Class::Java => "java",
            Class::Nosql => "nosql",
            Class::PrototypePollution => "prototype-pollution",
            Class::Crlf => "crlf",
            Class::Ssrf => "ssrf",
            Class::Encoding => "encoding",
            Class::Xxe => "xxe",
            Class::Protocol => "protocol",
            Class::Nodejs => "nodejs",
            Class::SessionFixation => "session-fixation",
            Class::Multipart => "multipart",
            Class::Ldapi => "ldapi",
            Class::Orm => "orm-injection",
            Class::Xpath => "xpath",
            Class::Scanner => "scanner",
        }
    }
}

/// Every class.
pub const CLASSES: &[Class] = &[
    Class::Sqli,
    Class::Xss,
    Class::Lfi,
    Class::Rfi,
    Class::Rce,
    Class::Jndi,
    Class::Ssti,
    Class::Php,
    Class::Java,
    Class::Nosql,
    Class::PrototypePollution,
    Class::Crlf,
    Class::Ssrf,
    Class::Encoding,
    Class::Xxe,
    Class::Protocol,
    Class::Nodejs,
    Class::SessionFixation,
    Class::Multipart,
    Class::Ldapi,
    Class::Orm,
    Class::Xpath,
    Class::Scanner,
];

/// The ids of the rules that are not patterns in the tables below.
const CODE_RULES: &[&str] = &[
    "java-130",
    "nodejs-110",
    "sqli-100",
    "sqli-120",
    "sqli-130",
    "xss-100",
    "xss-120",
    "jndi-100",
    "jndi-110",
    "ssrf-100",
    "encoding-100",
    "encoding-110",
    "encoding-120",
    "encoding-130",
    "encoding-140",
    "encoding-150",
    "crlf-120",
    "xxe-100",
    "xxe-110",
    "multipart-100",
    "multipart-110",
    "multipart-120",
    "scanner-100",
    "rfi-110",
    "rfi-120",
    "rfi-150",
    "rce-220",
    "rce-260",
    "protocol-100",
    "protocol-101",
    "protocol-110",
    "protocol-120",
    "protocol-130",
    "protocol-160",
    "protocol-170",
    "protocol-180",
    "protocol-190",
    "protocol-200",
    "protocol-210",
    "protocol-220",
    "protocol-230",
    "protocol-240",
    "crlf-130",
    "rfi-160",
    "rfi-170",
    "encoding-160",
];

/// Every rule id.
pub static RULE_IDS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    CODE_RULES
        .iter()
        .copied()
        .chain(VALUE_RULES.iter().map(|r| r.id))
        .chain(GATED.iter().flat_map(|g| g.rules).map(|r| r.id))
        .chain(NAME_RULES.iter().map(|r| r.id))
        .chain(PATH_RULES.iter().map(|r| r.id))
        .chain(FILE_NAME_RULES.iter().map(|r| r.id))
        .collect()
});

/// A rule that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The rule's id (`sqli-100`).
    pub rule: &'static str,
    /// Its class.
    pub class: Class,
}

/// One pattern rule.
struct Rule {
    id: &'static str,
    class: Class,
    pattern: &'static str,
}

struct Compiled {
    /// The value rules; its literal automaton also looks for [`base64_patterns`],
    /// lower-cased ([`value_with`]).
    values: PrefixedSet,
    /// [`base64_patterns`], as written, with the hit of each: what an occurrence the value
    /// rules' scan notes is checked against.
    base64_words: Vec<(Vec<u8>, Hit)>,
    /// One set per [`GATED`] entry, in its order.
    gated: Vec<RegexSet>,
    names: RegexSet,
    paths: RegexSet,
    file_names: RegexSet,
}

/// Build the detectors' pattern sets and the base64 words' automaton now (tens of
/// milliseconds), as the gateway starts, so that no request pays for them. Nothing is searched:
/// a regex keeps a fast search cache for the first thread that searches with it and makes
/// every other thread take one from a locked pool, and that first thread must be a worker.
pub fn compile() {
    let _ = compiled();
    let _ = base64_word_automaton();
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        // The patterns are constants of this file, checked by the unit tests: a failure here
        // is a bug caught before release, and an empty set detects nothing rather than panic.
        // ASCII semantics (`\b`, classes): the lazy DFA then runs on any input, where Unicode
        // word boundaries would send Japanese text to the slow engine.
        let set = |rules: &[Rule]| {
            RegexSetBuilder::new(rules.iter().map(|r| r.pattern))
                .unicode(false)
                .build()
                .unwrap_or_else(|_| RegexSet::empty())
        };
        let (words, hits) = base64_patterns();
        let base64_words: Vec<(Vec<u8>, Hit)> = words
            .into_iter()
            .map(String::into_bytes)
            .zip(hits)
            .collect();
        Compiled {
            values: PrefixedSet::with_extra(
                VALUE_RULES,
                base64_words
                    .iter()
                    .map(|(word, _)| word.to_ascii_lowercase())
                    .collect(),
            ),
            base64_words,
            gated: GATED.iter().map(|g| set(g.rules)).collect(),
            names: set(NAME_RULES),
            paths: set(PATH_RULES),
            file_names: set(FILE_NAME_RULES),
        }
    })
}

/// A set of rules asked "which is the first to match?" as one `RegexSet` would answer, for
/// less. A pattern whose every match starts with one of a few literals (`java.lang.` …,
/// `union` …) is run alone, and only on values holding one of those literals, found by one
/// `aho-corasick` DFA built whole at start; the patterns with no such literals stay in a
/// set of their own. Why: a lazy DFA over all the patterns builds each state it meets for the
/// first time at the cost of every pattern's NFA, and distinct text meets new states all
/// along (docs/inspect.md: two thirds of a first pass over distinct FHIR text).
struct PrefixedSet {
    rules: &'static [Rule],
    /// The rules without usable prefix literals, and their indexes in `rules`.
    unprefixed: RegexSet,
    unprefixed_rules: Vec<usize>,
    /// Every prefix literal of the other rules; `literal_rule` maps each to its rule. Should
    /// the automaton not build, every such rule is a candidate on every value: slower, never
    /// blind.
    literals: Option<aho_corasick::AhoCorasick>,
    literal_rule: Vec<usize>,
    /// Each prefixed rule's own pattern (`None` for the unprefixed ones).
    alone: Vec<Option<regex::bytes::Regex>>,
    /// Literals looked for in the same scan for another detector: pattern `literal_rule.len()
    /// + k` of the automaton is the `k`th of them.
    extra: usize,
}

/// The shortest prefix literal that gates a rule of a [`PrefixedSet`].
const MIN_PREFIX: usize = 2;

impl PrefixedSet {
    /// The set of `rules`, its literal automaton also looking for `extra`
    /// ([`PrefixedSet::first_noting`] reports where they occur).
    fn with_extra(rules: &'static [Rule], extra: Vec<Vec<u8>>) -> PrefixedSet {
        use regex_syntax::hir::literal::{ExtractKind, Extractor};
        assert!(rules.len() <= 128, "candidates are a 128-bit mask");
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut literal_rule = Vec::new();
        let mut alone = Vec::new();
        let mut unprefixed = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            // The same syntax the sets compile: bytes, ASCII classes.
            let prefixes = regex_syntax::ParserBuilder::new()
                .unicode(false)
                .utf8(false)
                .build()
                .parse(rule.pattern)
                .ok()
                .and_then(|hir| {
                    let mut extractor = Extractor::new();
                    extractor
                        .kind(ExtractKind::Prefix)
                        .limit_class(8)
                        .limit_repeat(4)
                        .limit_literal_len(6)
                        .limit_total(2_000);
                    let seq = extractor.extract(&hir);
                    // Every match starts with one of these. A one-byte literal (`(`, `;`) is
                    // in most prose: such a rule would run alone on most values, a scan more.
                    seq.literals()
                        .filter(|l| !l.is_empty() && l.iter().all(|l| l.len() >= MIN_PREFIX))
                        .map(|l| l.iter().map(|l| l.as_bytes().to_vec()).collect::<Vec<_>>())
                });
            let single = prefixes.as_ref().and_then(|_| {
                regex::bytes::RegexBuilder::new(rule.pattern)
                    .unicode(false)
                    .build()
                    .ok()
            });
            match (prefixes, single) {
                (Some(prefixes), Some(single)) => {
                    literal_rule.extend(std::iter::repeat_n(index, prefixes.len()));
                    literals.extend(prefixes);
                    alone.push(Some(single));
                }
                _ => {
                    unprefixed.push(index);
                    alone.push(None);
                }
            }
        }
        let extra_count = extra.len();
        literals.extend(extra);
        let literals = aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&literals)
            .ok();
        PrefixedSet {
            rules,
            unprefixed: RegexSetBuilder::new(unprefixed.iter().map(|&i| rules[i].pattern))
                .unicode(false)
                .build()
                .unwrap_or_else(|_| RegexSet::empty()),
            unprefixed_rules: unprefixed,
            literals,
            literal_rule,
            alone,
            extra: extra_count,
        }
    }

    /// Whether the extra literals are looked for: `false` when the automaton did not build.
    fn notes_extra(&self) -> bool {
        self.extra > 0 && self.literals.is_some()
    }

    /// The first rule, in `rules` order, that matches `text`; `note` is told of every
    /// occurrence of an extra literal in `text` (its index among the extras, where it is)
    /// when [`PrefixedSet::notes_extra`].
    fn first_noting(
        &self,
        text: &str,
        mut note: impl FnMut(usize, std::ops::Range<usize>),
    ) -> Option<Hit> {
        let bytes = text.as_bytes();
        let kept = Kept::now();
        let mut first = None;
        if self.unprefixed.is_match(bytes) {
            first = self
                .unprefixed
                .matches(bytes)
                .iter()
                .map(|i| self.unprefixed_rules[i])
                .find(|&rule| kept.allows(&self.rules[rule]));
        }
        let mut candidates = 0u128;
        match &self.literals {
            Some(literals) => {
                for found in literals.find_overlapping_iter(bytes) {
                    match self.literal_rule.get(found.pattern().as_usize()) {
                        Some(&rule) => candidates |= 1 << rule,
                        None => note(
                            found.pattern().as_usize() - self.literal_rule.len(),
                            found.range(),
                        ),
                    }
                }
            }
            None => {
                for &rule in &self.literal_rule {
                    candidates |= 1 << rule;
                }
            }
        }
        while candidates != 0 {
            let index = candidates.trailing_zeros() as usize;
            if first.is_some_and(|f| f < index) {
                break;
            }
            if kept.allows(&self.rules[index])
                && self.alone[index]
                    .as_ref()
                    .is_some_and(|r| r.is_match(bytes))
            {
                first = Some(index);
                break;
            }
            candidates &= candidates - 1;
        }
        first.map(|i| Hit {
            rule: self.rules[i].id,
            class: self.rules[i].class,
        })
    }
}

/// The first rule that fires on a value: the encoding signals, the pattern rules, SQL
/// injection and XSS (libinjection), JNDI, SSRF.
pub fn value(n: &Normalised) -> Option<Hit> {
    value_with(n, true)
}

/// [`value`], with the SSRF check only when `urls_are_fetched` (a JSON document's URLs are
/// mostly identifiers and references, not addresses a backend fetches).
pub fn value_with(n: &Normalised, urls_are_fetched: bool) -> Option<Hit> {
    if n.decoded.starts_with("MSH") {
        if let Some(fields) = hl7_v2_fields(&n.decoded) {
            return hl7_v2_verdict(fields, urls_are_fetched);
        }
    }
    let kept = Kept::now();
    verdict(n, urls_are_fetched)
        .or_else(|| kept.of(shell_escaped(&n.decoded)))
        .or_else(|| kept.of(comment_split(&n.decoded)))
        .or_else(|| kept.of(escaped_line_breaks(&n.decoded)))
}

thread_local! {
    /// The rule ids and class names this thread's current inspection passes over: a route's
    /// exclusions that hold everywhere ([`passing_over`]).
    static PASSED_OVER: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static PASSING_OVER: Cell<bool> = const { Cell::new(false) };
}

/// Run `inspection` with the rules and classes in `excluded` passed over: a hit of theirs is
/// not the value's verdict, the value is read on to the next rule that fires. An exclusion
/// excuses its own rule only; the first rule to fire must not hide the others (`lfi` excluded
/// must not let `../../etc/passwd' or 1=1--` through).
pub fn passing_over<R>(excluded: &[&str], inspection: impl FnOnce() -> R) -> R {
    if excluded.is_empty() {
        return inspection();
    }
    /// Ends the passing over however the inspection ends (a panic included): the worker
    /// thread goes on to other requests, other routes. Within another passing over, what
    /// that one passes over stays.
    struct Reset(usize);
    impl Drop for Reset {
        fn drop(&mut self) {
            PASSED_OVER.with_borrow_mut(|p| p.truncate(self.0));
            PASSING_OVER.set(self.0 > 0);
        }
    }
    let before = PASSED_OVER.with_borrow_mut(|p| {
        let before = p.len();
        p.extend(excluded.iter().map(|e| (*e).to_owned()));
        before
    });
    PASSING_OVER.set(true);
    let _reset = Reset(before);
    inspection()
}

/// Whether rules are being passed over: the verdict tables, which remember verdicts made
/// without, are then neither read nor written.
pub(crate) fn is_passing_over() -> bool {
    PASSING_OVER.get()
}

/// Which hits count, read once per verdict: all of them, unless rules are passed over.
#[derive(Clone, Copy)]
struct Kept(bool);

impl Kept {
    fn now() -> Self {
        Kept(PASSING_OVER.get())
    }

    fn allows(self, rule: &Rule) -> bool {
        self.keeps(Hit {
            rule: rule.id,
            class: rule.class,
        })
    }

    fn keeps(self, hit: Hit) -> bool {
        !self.0 || !passed_over(hit.rule, hit.class)
    }

    fn of(self, hit: Option<Hit>) -> Option<Hit> {
        hit.filter(|&h| self.keeps(h))
    }
}

fn passed_over(rule: &str, class: Class) -> bool {
    PASSED_OVER.with_borrow(|p| p.iter().any(|e| e == rule || e == class.name()))
}

/// [`value_with`] but for the second reading of backslash-escaped letters.
fn verdict(n: &Normalised, urls_are_fetched: bool) -> Option<Hit> {
    let kept = Kept::now();
    if n.signals.invalid_utf8 {
        // Nothing else reads a value that is not UTF-8.
        return Some(Hit {
            rule: "encoding-100",
            class: Class::Encoding,
        });
    }
    let present = Present::of(n.folded.as_bytes());
    // Before the patterns: `${jndi:ldap://…}` is a lookup first, a URL second.
    if let Some(hit) = kept.of(present.may_hold(b"$").then(|| jndi(&n.folded)).flatten()) {
        return Some(hit);
    }
    let gated = |before_values: bool| {
        GATED
            .iter()
            .zip(&compiled().gated)
            .filter(|(gate, _)| gate.before_values == before_values)
            .filter(|(gate, _)| {
                present.may_hold(&[gate.needs])
                    && memchr::memchr(gate.needs, n.folded.as_bytes()).is_some()
            })
            .find_map(|(gate, set)| first(set, gate.rules, &n.folded))
    };
    // Where `decoded` is ASCII, `folded` is it lower-cased byte for byte (backslashes as
    // slashes), so the base64 words, lower-cased, are found by the value rules' literal scan
    // of `folded`, and each place checked against `decoded` as written: one scan of the
    // value instead of two. The first to end (the longest of those) is the one
    // `base64_words` would name.
    let values = &compiled().values;
    let words = &compiled().base64_words;
    let noted = values.notes_extra() && n.decoded.is_ascii();
    let mut word: Option<(std::ops::Range<usize>, Hit)> = None;
    let note = |k: usize, at: std::ops::Range<usize>| {
        let earlier = word
            .as_ref()
            .is_none_or(|(w, _)| (at.end, at.start) < (w.end, w.start));
        if noted && earlier && n.decoded.as_bytes().get(at.clone()) == Some(&words[k].0[..]) {
            word = Some((at, words[k].1));
        }
    };
    if let Some(hit) = gated(true)
        .or_else(|| values.first_noting(&n.folded, note))
        .or_else(|| {
            kept.of(present
                .may_hold(b":")
                .then(|| credentials_url(&n.folded))
                .flatten())
        })
        .or_else(|| {
            kept.of(present
                .may_hold(SPLIT_WORD_BYTES)
                .then(|| split_word(&n.folded))
                .flatten())
        })
        .or_else(|| {
            kept.of(present
                .may_hold(b"`")
                .then(|| back_quoted(&n.folded))
                .flatten())
        })
        .or_else(|| kept.of(include_url(&n.folded)))
        .or_else(|| kept.of(unc_path(&n.decoded)))
        .or_else(|| gated(false))
    {
        return Some(hit);
    }
    if let Some(hit) = kept
        .of(sql_value_shape(&n.folded))
        .or_else(|| {
            kept.of(present
                .may_hold(b"=")
                .then(|| same_sides(&n.folded))
                .flatten())
        })
        .or_else(|| kept.of(address_then_command(&n.folded)))
        .or_else(|| {
            kept.of(present
                .may_hold(b";")
                .then(|| stacked_statement(&n.folded))
                .flatten())
        })
    {
        return Some(hit);
    }
    let sqli = Hit {
        rule: "sqli-100",
        class: Class::Sqli,
    };
    // Asked of `folded`, for `decoded`: it holds these where `folded` does (folding changes
    // letters and turns `\` into `/`).
    if kept.keeps(sqli) && present.may_hold(SQL_BREAKOUT_BYTES) && libinjection_sqli(&n.decoded) {
        return Some(sqli);
    }
    if present.may_hold(b"<") && n.decoded.contains('<') {
        let xss = Hit {
            rule: "xss-100",
            class: Class::Xss,
        };
        // A whole XML document (a CDA or FHIR XML in a note) is read as one instead.
        match super::xml::document_value(&n.decoded) {
            Some(Some(hit)) if kept.keeps(hit) => return Some(hit),
            Some(_) => {}
            None if kept.keeps(xss)
                && libinjectionrs::detect_xss(n.decoded.as_bytes()).is_injection() =>
            {
                return Some(xss);
            }
            None => {}
        }
    }
    let base64 = if noted {
        word.map(|(_, hit)| hit)
    } else {
        base64_words(n.decoded.as_bytes())
    };
    if let Some(hit) = kept.of(base64) {
        return Some(hit);
    }
    if urls_are_fetched {
        if let Some(hit) = kept
            .of(ssrf(&n.folded))
            .or_else(|| kept.of(fetched_url(&n.folded)))
        {
            return Some(hit);
        }
    }
    let encoding = |rule| {
        kept.of(Some(Hit {
            rule,
            class: Class::Encoding,
        }))
    };
    if n.signals.nul {
        if let Some(hit) = encoding("encoding-110") {
            return Some(hit);
        }
    }
    if n.signals.control {
        return encoding("encoding-120");
    }
    None
}

/// A second reading of a value rewritten as a backend would take it (`shell_escaped`,
/// `comment_split`, `escaped_line_breaks`): normalised and judged once more, not again and
/// again — normalising may decode what is left of a deeply percent-encoded value into new
/// escapes.
fn read_again(rewritten: &[u8]) -> Option<Hit> {
    verdict(
        &super::normalise::normalise(rewritten, super::normalise::Plus::Literal),
        true,
    )
}

/// Which of the bytes the detectors' gates ask about (`ASKED`) a value holds, found in one
/// pass over a short value instead of a `memchr` per gate (about a dozen, each a call worth
/// more than reading a FHIR code). A long value is taken to hold them all: each gate then
/// scans for itself, as fast per byte as this pass and stopping sooner.
#[derive(Clone, Copy)]
struct Present(u32);

impl Present {
    const ASKED: &'static [u8] = b"{<=($`'\";|&#-/):";
    const SHORT: usize = 256;
    const BITS: [u32; 256] = {
        let mut bits = [0; 256];
        let mut i = 0;
        while i < Self::ASKED.len() {
            bits[Self::ASKED[i] as usize] = 1 << i;
            i += 1;
        }
        bits
    };

    fn of(text: &[u8]) -> Self {
        if text.len() >= Self::SHORT {
            return Present(u32::MAX);
        }
        Present(
            text.iter()
                .fold(0, |held, &b| held | Self::BITS[usize::from(b)]),
        )
    }

    /// Whether the value may hold any of `bytes`: `false` only when it holds none of them.
    /// A byte not asked about may always be there.
    fn may_hold(self, bytes: &[u8]) -> bool {
        bytes.iter().any(|&b| {
            let bit = Self::BITS[usize::from(b)];
            bit == 0 || self.0 & bit != 0
        })
    }
}

/// Escapes no form or URL encoder writes, in a query or form value: a carriage return that
/// ends no line (`crlf-120`), a `%` that starts no escape (`encoding-130`), IIS's `%uXXXX` (`encoding-140`), a `\uXXXX` spelling an ASCII
/// letter or digit (`encoding-150`), an escape of a letter or digit encoded again (`%2573`,
/// `encoding-160`: no encoder escapes a letter, let alone twice; a filter that decodes once
/// sees `%73`, a backend that decodes twice `s`). Each is read differently by different decoders, or
/// hides a word from a filter that does not decode it. Not applied to JSON, where `%` is
/// text and `\u` the format's own escape.
pub fn form_encoding(n: &Normalised) -> Option<Hit> {
    let signals = &n.signals;
    // A carriage return not ending a line (`test%0Dnext=more`, `%0A%0D`): a form sends line
    // breaks as CRLF; a lone CR splits the value for a parser that breaks lines on it. An HL7
    // v2 message ends its segments so (a script's `URLSearchParams` keeps them): that is its
    // format, and it is read field by field, split there (`hl7_v2_fields`).
    let bytes = n.decoded.as_bytes();
    let lone_cr = memchr::memchr_iter(b'\r', bytes).any(|at| bytes.get(at + 1) != Some(&b'\n'));
    if lone_cr && hl7_v2_fields(&n.decoded).is_none() {
        return Some(Hit {
            rule: "crlf-120",
            class: Class::Crlf,
        });
    }
    let rule = if signals.stray_percent {
        "encoding-130"
    } else if signals.letter_encoded_twice {
        "encoding-160"
    } else if signals.percent_u {
        "encoding-140"
    } else if signals.escaped_ascii {
        "encoding-150"
    } else {
        return None;
    };
    Some(Hit {
        rule,
        class: Class::Encoding,
    })
}

/// The first rule that fires on an uploaded file's name: a server-side script or a session
/// file. The name is then inspected as a value too.
pub fn file_name(name: &str) -> Option<Hit> {
    first(
        &compiled().file_names,
        FILE_NAME_RULES,
        &name.to_ascii_lowercase(),
    )
}

/// The first rule that fires on a name (query parameter, JSON key, cookie name).
pub fn name(n: &Normalised) -> Option<Hit> {
    first(&compiled().names, NAME_RULES, &n.folded)
}

/// Rules over a whole request path, normalised.
pub fn path(n: &Normalised) -> Option<Hit> {
    first(&compiled().paths, PATH_RULES, &n.folded)
}

fn first(set: &RegexSet, rules: &'static [Rule], text: &str) -> Option<Hit> {
    // Most values match nothing: an early-stopping search says so without the overlapping
    // one that names every rule.
    if !set.is_match(text.as_bytes()) {
        return None;
    }
    let kept = Kept::now();
    let matched = set.matches(text.as_bytes());
    matched
        .iter()
        .find(|&i| kept.allows(&rules[i]))
        .map(|i| Hit {
            rule: rules[i].id,
            class: rules[i].class,
        })
}

#[cfg(test)]
mod tests;
