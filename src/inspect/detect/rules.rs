//! The pattern rules of every class, each with its stable id: compiled at start into one
//! `RegexSet` per kind of place (a value, a name, a path, a file name) and per prefix gate, so
//! that a value is scanned once for all of them (`super::compile`). The rules that are code,
//! not patterns, live in the class modules beside this one.

use super::*;

/// Pattern rules over a folded value (lower case, backslashes as slashes, entities, percent
/// escapes and full-width forms undone).
pub(super) const VALUE_RULES: &[Rule] = &[
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
        id: "jndi-120",
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
pub(super) const MARKUP_RULES: &[Rule] = &[
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
pub(super) const ASSIGNMENT_RULES: &[Rule] = &[
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
pub(super) const BRACE_RULES: &[Rule] = &[Rule {
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
pub(super) const CALL_RULES: &[Rule] = &[
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
pub(super) const DOLLAR_RULES: &[Rule] = &[Rule {
    id: "nosql-130",
    class: Class::Nosql,
    pattern: r"(?:^|[\s,{'\x22])\$(?:where|ne|eq|gt|gte|lt|lte|regex|in|nin|exists|expr|function|accumulator|or|and|nor|elemmatch|comment)\s*:",
}];

/// Rules that only a value with `;` can fire: server-side JavaScript that closes a
/// `$where` string and returns (`';return 'a'=='a`, `0;return true`). Prose's `; return to
/// clinic` returns no value.
pub(super) const SEMICOLON_RULES: &[Rule] = &[Rule {
    id: "nosql-140",
    class: Class::Nosql,
    pattern: r"['\x22]\s*;\s*return\s*(?:\(|true\b|false\b|['\x22])|^\s*\d+\s*;\s*return\s+(?:true|false)\b",
}];

/// A set asked only about values holding `needs`: every pattern of `rules` needs that byte
/// in every match.
pub(super) struct Gate {
    pub(super) needs: u8,
    /// Asked before [`VALUE_RULES`] (its rule is the one a refusal names when both fire).
    pub(super) before_values: bool,
    pub(super) rules: &'static [Rule],
}

pub(super) const GATED: &[Gate] = &[
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
pub(super) const LDAP_FILTER: &str = r"\)\s*!?\s*\(\s*[&|!]|\)!?\([a-z][a-z0-9.;-]*(?::[a-z0-9.]*:)?[~<>]?=|\)\s*[&|]\s*\(|\*\s*\(\s*[&|!]\s*\(\s*[a-z][a-z0-9.;-]*\s*[~<>]?=|\)\(\*$";

/// Django-style ORM lookups (`created_by__user__password__startswith`): a backend that
/// passes parameter names to its ORM lets them filter on any related field.
pub(super) const ORM_LOOKUP_NAME: &str = r"[a-z0-9]__(?:i?(?:exact|contains|startswith|endswith|regex)|gte?|lte?|in|isnull|range|has_keys?|has_any_keys|contained_by|overlap|search|trigram_similar|unaccent|iso_year|iso_week_day|week_day|year|quarter|month|week|day|hour|minute|second|date|time)$";
pub(super) const ORM_LOOKUP_QUOTED: &str = r#"[a-z0-9]__(?:i?(?:exact|contains|startswith|endswith|regex)|gte?|lte?|in|isnull|range|has_keys?|has_any_keys|contained_by|overlap|search)["']\s*:"#;

/// Pattern rules over a name (a query parameter's, a JSON key, a cookie's).
pub(super) const NAME_RULES: &[Rule] = &[
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
pub(super) const PATH_RULES: &[Rule] = &[
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

/// Rules over an uploaded file's name (a multipart part's `filename`, an `X-Filename`
/// header).
pub(super) const FILE_NAME_RULES: &[Rule] = &[
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
