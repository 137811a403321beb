use super::*;
use proptest::prelude::*;

/// The standard's examples: cti-pattern-validator
/// `stix2patterns/test/v21/spec_examples.txt`.
const SPEC_EXAMPLES: [&str; 23] = [
    r"[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
    r"[email-message:from_ref.value MATCHES '.+\\@example\\.com$' AND email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final Report.+\\.exe$']",
    r"[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f' AND file:mime_type = 'application/x-pdf']",
    r"[file:hashes.'SHA-256' = 'bf07a7fbb825fc0aae7bf4a1177b2b31fcf8a3feeaf7092761e18c859ee52a9c' OR file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879f'] AND [file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
    r"([file:hashes.MD5 = '79054025255fb1a26e4bc422aef54eb4'] FOLLOWEDBY [win-registry-key:key = 'HKEY_LOCAL_MACHINE\\foo\\bar']) WITHIN 300 SECONDS",
    r"[user-account:account_type = 'unix' AND user-account:user_id = '1007' AND user-account:account_login = 'Peter'] AND [user-account:account_type = 'unix' AND user-account:user_id = '1008' AND user-account:account_login = 'Paul'] AND [user-account:account_type = 'unix' AND user-account:user_id = '1009' AND user-account:account_login = 'Mary']",
    r"[artifact:mime_type = 'application/vnd.tcpdump.pcap' AND artifact:payload_bin MATCHES '\\xd4\\xc3\\xb2\\xa1\\x02\\x00\\x04\\x00']",
    r"[file:name = 'foo.dll' AND file:parent_directory_ref.path = 'C:\\Windows\\System32']",
    r"[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]",
    r"[file:mime_type = 'image/bmp' AND file:magic_number_hex = h'ffd8']",
    r"[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.33/32']",
    r"[network-traffic:dst_ref.type = 'domain-name' AND network-traffic:dst_ref.value = 'example.com'] REPEATS 5 TIMES WITHIN 1800 SECONDS",
    r"[domain-name:value = 'www.5z8.info' AND domain-name:resolves_to_refs[*].value = '198.51.100.1/32']",
    r"[url:value = 'http://example.com/foo' OR url:value = 'http://example.com/bar']",
    r"[x509-certificate:issuer = 'CN=WEBMAIL' AND x509-certificate:serial_number = '4c:0b:1d:19:74:86:a7:66:b4:1a:bf:40:27:21:76:28']",
    r"[windows-registry-key:key = 'HKEY_CURRENT_USER\\Software\\CryptoLocker\\Files' OR windows-registry-key:key = 'HKEY_CURRENT_USER\\Software\\Microsoft\\CurrentVersion\\Run\\CryptoLocker_0388']",
    r"[(file:name = 'pdf.exe' OR file:size = '371712') AND file:created = t'2014-01-13T07:03:17Z']",
    r"[email-message:sender_ref.value = 'jdoe@example.com' AND email-message:subject = 'Conference Info']",
    r"[x-usb-device:usbdrive.serial_number = '575833314133343231313937']",
    r"[process:command_line MATCHES '^.+>-add GlobalSign.cer -c -s -r localMachine Root$'] FOLLOWEDBY [process:command_line MATCHES'^.+>-add GlobalSign.cer -c -s -r localMachineTrustedPublisher$'] WITHIN 300 SECONDS",
    r"[network-traffic:dst_ref.value ISSUBSET '2001:0db8:dead:beef:0000:0000:0000:0000/64']",
    r"([file:name = 'foo.dll'] AND [win-registry-key:key = 'HKEY_LOCAL_MACHINE\\foo\\bar']) OR [process:name = 'fooproc' OR process:name = 'procfoo']",
    r"[file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a69faa']",
];

/// Grammar-valid patterns from cti-pattern-validator's tests and OASIS examples.
const MORE_VALID: [&str; 12] = [
    r"[file:size IN (1024, 2048, 4096)] REPEATS 9 TIMES",
    r"[ipv4addr:value NOT ISSUBSET '192.168.0.1/24']",
    r"[x_whatever:detected == t'2018-03-22T12:11:14.1Z' AND x:y <> 5]",
    r"[artifact:payload_bin = b'dGhpcyBpcyBhIHRlc3Q=' OR a:b = -0.5 OR a:c = h'']",
    r"( [(network-traffic:dst_port IN(443,6443,8443) AND network-traffic:src_packets != 0) ])",
    r"([a:b = 'x']) WITHIN 5 SECONDS WITHIN 6.5 SECONDS",
    r"[file:hashes[*] = '8665c8d477534008b3058b72e2dae8ae'] START t'2016-06-01T01:30:00.123Z' STOP t'2016-06-01T02:20:00Z'",
    r"[a:b = 1] /* comment */ OR // to the end of the line
       [NOT EXISTS a:c AND EXISTS a:d[-1].'x y']",
    r"[a:b = true AND a:c != false AND a:d >= +5 AND a:e < 7.0 AND a:f LIKE 'x%' AND a:g ISSUPERSET 'y']",
    r"[email-message:subject MATCHES '^[IMPORTANT] Please Review Before']",
    r"[domain-name:value = 'tw.2012yearleft.com' OR ipv4-addr:value = '60.10.1.114' OR ipv4-addr:value = '60.1.1.114']",
    r"[a:'b'.c[0][*].'AND' IN ()]",
];

/// Not the grammar: (pattern, part of the message).
const INVALID: [(&str, &str); 24] = [
    ("", "expected '[' or '('"),
    ("file:size = 1280", "expected '[' or '('"),
    ("[file:size = ]", "expected a value"),
    (
        "[file:hashes.MD5 = cead3f77f6cda6ec00f57d76c9a6879f]",
        "expected a value",
    ),
    ("[file.size = 1280]", "expected ':'"),
    ("[file:name MATCHES /.*\\.dll/]", "unexpected character '/'"),
    ("[a:b = 'x'] WITHIN ]", "expected a number"),
    ("[a:b = 'x'] WITHIN 5 HOURS", "expected SECONDS"),
    (
        "[a:b = 'x'] WITHIN -5 SECONDS",
        "expected a positive number",
    ),
    ("[a:b ISSUBSET ]", "expected a value"),
    ("[file:hashes.MD5 =? 'x']", "unexpected character '?'"),
    (
        "[x:detected == t'2457-73-22T32:81:84.1Z']",
        "malformed timestamp",
    ),
    ("[artifact:payload_bin = b'====']", "malformed base64"),
    ("[foo:bar=1] within 2 seconds", "expected FOLLOWEDBY"),
    ("[a:b = 'x' and a:c = 'y']", "expected ']'"),
    ("[file:hashes.SHA-256 = 'x']", "quoted if it has '-'"),
    ("[a:b = 'unterminated]", "unterminated string"),
    ("[a:b = 'bad \\n escape']", "backslash"),
    ("[a:b = 01]", "malformed number"),
    ("[a:b LIKE 5]", "LIKE does not take 5"),
    ("[a:b > true]", "> does not take true"),
    ("[a:b = 1] LAST", "expected FOLLOWEDBY"),
    ("[a:true = 1]", "expected a property name"),
    ("[a:b = 1] /* open", "unterminated comment"),
];

fn extract_text(pattern: &str) -> Extraction {
    extract(&parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}")))
}

fn file(md5: Option<&str>, sha1: Option<&str>, sha256: Option<&str>) -> Found {
    let s = |h: Option<&str>| h.map(str::to_string);
    Found::File {
        md5: s(md5),
        sha1: s(sha1),
        sha256: s(sha256),
    }
}

fn reg(key: &str, name: Option<&str>, data_type: Option<&str>) -> Found {
    let (value_name, data_type) = (name.map(str::to_string), data_type.map(str::to_string));
    Found::RegistryKey {
        key: key.into(),
        value_name,
        data_type,
    }
}

#[test]
fn spec_examples_and_other_valid_patterns_parse_and_print_back() {
    for text in SPEC_EXAMPLES.iter().chain(&MORE_VALID) {
        let p = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            parse(&p.to_string()),
            Ok(p.clone()),
            "{text} printed as {p}"
        );
        extract(&p);
    }
}

#[test]
fn invalid_patterns_are_syntax_errors() {
    for (text, part) in INVALID {
        let e = parse(text).expect_err(text);
        assert!(
            e.message.contains(part) || e.to_string().contains(part),
            "{text}: {e}"
        );
    }
    let e = parse("[a:b = 'é'] ?").unwrap_err();
    assert_eq!(e.offset, 12, "characters, not bytes");
    assert!(e.to_string().starts_with("at character 12: "), "{e}");
}

#[test]
fn spec_examples_extract() {
    let sha = "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f";
    let ex = |i: usize| extract_text(SPEC_EXAMPLES[i]);
    assert_eq!(ex(0).found, [file(None, None, Some(sha))]);
    assert_eq!(
        (ex(2).found, ex(2).ignored),
        (
            vec![file(None, None, Some(sha))],
            vec!["file:mime_type".into()]
        )
    );
    assert_eq!(ex(3).unsupported, ["AND between observations"]);
    assert_eq!(ex(4).unsupported, ["FOLLOWEDBY", "WITHIN qualifier"]);
    assert_eq!(
        ex(11).unsupported,
        ["REPEATS qualifier", "WITHIN qualifier"]
    );
    assert_eq!(
        ex(12).unsupported,
        ["AND of several domain-name comparisons"]
    );
    let urls = ["http://example.com/foo", "http://example.com/bar"];
    assert_eq!(ex(13).found, urls.map(|u| Found::Url(u.into())));
    assert_eq!(
        ex(14).unsupported,
        [
            "the path x509-certificate:issuer",
            "the path x509-certificate:serial_number"
        ]
    );
    let keys = [
        r"HKEY_CURRENT_USER\Software\CryptoLocker\Files",
        r"HKEY_CURRENT_USER\Software\Microsoft\CurrentVersion\Run\CryptoLocker_0388",
    ];
    assert_eq!(ex(15).found, keys.map(|k| reg(k, None, None)));
    assert_eq!(
        ex(16).unsupported,
        [
            "the path file:name",
            "the path file:created",
            "the path file:size"
        ]
    );
    assert_eq!(
        ex(20).unsupported,
        ["the path network-traffic:dst_ref.value"]
    );
    assert_eq!(
        ex(22).found,
        [file(Some("cead3f77f6cda6ec00f57d76c9a69faa"), None, None)]
    );
    for i in [1, 5, 6, 7, 8, 9, 10, 17, 18, 19, 21] {
        assert!(
            ex(i).found.is_empty() && !ex(i).unsupported.is_empty(),
            "{}",
            SPEC_EXAMPLES[i]
        );
    }
}

#[test]
fn ti_formats_supported_examples() {
    let (md5, sha256) = (
        "d41d8cd98f00b204e9800998ecf8427e",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    let sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
    let cases: Vec<(String, Vec<Found>)> = vec![
        ("[ipv4-addr:value = '203.0.113.10']".into(), vec![Found::Address("203.0.113.10".into())]),
        ("[ipv6-addr:value = '2001:db8::/48']".into(), vec![Found::Address("2001:db8::/48".into())]),
        ("[domain-name:value = 'a.example']".into(), vec![Found::Host("a.example".into())]),
        ("[url:value = 'http://b.example/']".into(), vec![Found::Url("http://b.example/".into())]),
        ("[email-addr:value = 'x@a.example']".into(), vec![Found::Email("x@a.example".into())]),
        ("[autonomous-system:number = 64512]".into(), vec![Found::Asn("64512".into())]),
        ("[autonomous-system:number = '064512']".into(), vec![Found::Asn("64512".into())]),
        ("[mutex:name = 'Global\\\\evil']".into(), vec![Found::Mutex("Global\\evil".into())]),
        (format!("[file:hashes.MD5 = '{md5}']"), vec![file(Some(md5), None, None)]),
        (format!("[file:hashes.'MD5' = '{md5}']"), vec![file(Some(md5), None, None)]),
        (format!("[file:hashes.'SHA-1' = '{sha1}']"), vec![file(None, Some(sha1), None)]),
        (format!("[file:hashes.'SHA-256' = '{sha256}']"), vec![file(None, None, Some(sha256))]),
        (format!("[file:hashes.md5 = '{md5}' AND file:hashes.sha256 = '{sha256}' AND file:hashes.SHA1 = '{sha1}']"), vec![file(Some(md5), Some(sha1), Some(sha256))]),
        ("[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Run' AND windows-registry-key:values[*].name = 'u' AND windows-registry-key:values[*].data_type = 'REG_SZ']".into(), vec![reg("HKEY_LOCAL_MACHINE\\Run", Some("u"), Some("REG_SZ"))]),
        ("[windows-registry-key:values[0].name = 'u' AND windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Software']".into(), vec![reg("HKEY_LOCAL_MACHINE\\Software", Some("u"), None)]),
        ("[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = 'Evil/1.0']".into(), vec![Found::UserAgent("Evil/1.0".into())]),
        ("[ipv4-addr:value ISSUBSET '192.0.2.0/25']".into(), vec![Found::Cidr("192.0.2.0/25".into())]),
        ("[domain-name:value IN ('a.example', 'b.example')]".into(), vec![Found::Host("a.example".into()), Found::Host("b.example".into())]),
        ("[domain-name:value = 'a.example'] OR [url:value = 'http://b.example/']".into(), vec![Found::Host("a.example".into()), Found::Url("http://b.example/".into())]),
        ("[ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '5.6.7.8']".into(), vec![Found::Address("1.2.3.4".into()), Found::Address("5.6.7.8".into())]),
        ("[domain-name:value = 'e.ct.toh.info' OR ipv4-addr:value = '101.78.151.179']".into(), vec![Found::Host("e.ct.toh.info".into()), Found::Address("101.78.151.179".into())]),
    ];
    for (text, found) in cases {
        let ex = extract_text(&text);
        assert_eq!(
            ex,
            Extraction {
                found,
                ..Extraction::default()
            },
            "{text}"
        );
    }
    let ex = extract_text(&format!(
        "[file:hashes.MD5 = '{md5}' AND file:hashes.'SHA-256' = '{sha256}' AND file:name = 'x.exe' AND file:size > 5]"
    ));
    assert_eq!(
        (ex.found, ex.ignored),
        (
            vec![file(Some(md5), None, Some(sha256))],
            vec!["file:name".into(), "file:size".into()]
        )
    );
}

/// Refused: (pattern, the construct named).
const UNSUPPORTED: [(&str, &str); 27] = [
    ("[ipv4-addr:value != '1.2.3.4']", "!= on ipv4-addr:value"),
    (
        "[ipv4-addr:value NOT = '1.2.3.4']",
        "NOT = on ipv4-addr:value",
    ),
    ("[url:value LIKE 'http://x/%']", "LIKE on url:value"),
    (
        "[domain-name:value MATCHES '^x']",
        "MATCHES on domain-name:value",
    ),
    (
        "[url:value = 'a'] FOLLOWEDBY [url:value = 'b']",
        "FOLLOWEDBY",
    ),
    (
        "[url:value = 'a'] AND [url:value = 'b']",
        "AND between observations",
    ),
    ("[url:value = 'a'] WITHIN 300 SECONDS", "WITHIN qualifier"),
    (
        "[url:value = 'a'] OR ([url:value = 'b'] REPEATS 5 TIMES)",
        "REPEATS qualifier",
    ),
    (
        "[url:value = 'a'] START t'2020-01-01T00:00:00Z' STOP t'2021-01-01T00:00:00Z'",
        "START/STOP qualifier",
    ),
    (
        "[autonomous-system:number > 64000]",
        "> on autonomous-system:number",
    ),
    (
        "[ipv4-addr:value ISSUPERSET '10.0.0.0/8']",
        "ISSUPERSET on ipv4-addr:value",
    ),
    ("[NOT EXISTS url:value]", "NOT EXISTS on url:value"),
    ("[file:name = 'x']", "the path file:name"),
    ("[process:name = 'x']", "the path process:name"),
    (
        "[x509-certificate:issuer = 'CN=x']",
        "the path x509-certificate:issuer",
    ),
    (
        "[ipv4-addr:resolves_to_refs[*].value = '1.2.3.4']",
        "the path ipv4-addr:resolves_to_refs[*].value",
    ),
    (
        "[file:hashes.'SHA-512' = 'ab']",
        "the hash file:hashes.'SHA-512'",
    ),
    (
        "[ipv4-addr:value = 'a' AND ipv4-addr:value = 'b']",
        "AND of several ipv4-addr:value",
    ),
    (
        "[ipv4-addr:value = 'x' AND domain-name:value = 'y']",
        "AND of different object types",
    ),
    (
        "[file:hashes.MD5 = 'a' AND file:hashes.md5 = 'b']",
        "conflicting file:hashes.md5",
    ),
    (
        "[windows-registry-key:values[*].name = 'x']",
        "the path windows-registry-key:values[*].name",
    ),
    ("[ipv4-addr:value = '']", "the value '' on ipv4-addr:value"),
    ("[ipv4-addr:value = 5]", "the value 5 on ipv4-addr:value"),
    (
        "[autonomous-system:number = 'AS64512']",
        "the value 'AS64512' on autonomous-system:number",
    ),
    (
        "[autonomous-system:number = 4294967296]",
        "the value 4294967296 on autonomous-system:number",
    ),
    ("[ipv4-addr:value IN ()]", "empty IN on ipv4-addr:value"),
    (
        "[domain-name:value ISSUBSET 'x']",
        "ISSUBSET on domain-name:value",
    ),
];

#[test]
fn ti_formats_unsupported_examples() {
    for (text, name) in UNSUPPORTED {
        let ex = extract_text(text);
        assert!(
            ex.found.is_empty() && ex.unsupported.contains(&name.to_string()),
            "{text}: {ex:?}"
        );
    }
}

#[test]
fn or_branches_are_taken_one_by_one_and_or_inside_and_is_distributed() {
    let ex =
        extract_text("[ipv4-addr:value = '1.2.3.4' OR url:value LIKE 'x%' OR url:value LIKE 'y%']");
    assert_eq!(
        (ex.found, ex.unsupported),
        (
            vec![Found::Address("1.2.3.4".into())],
            vec!["LIKE on url:value".into()]
        )
    );
    let ex = extract_text("[(file:hashes.MD5 = 'a' OR file:hashes.MD5 = 'b') AND file:name = 'x']");
    assert_eq!(
        ex.found,
        [file(Some("a"), None, None), file(Some("b"), None, None)]
    );
    assert_eq!(ex.ignored, ["file:name", "file:name"]);
    let ex = extract_text("[file:hashes.MD5 IN ('a', 'b') AND file:hashes.SHA1 = 'c']");
    assert_eq!(
        ex.found,
        [
            file(Some("a"), Some("c"), None),
            file(Some("b"), Some("c"), None)
        ]
    );
    let blowup = vec!["(a:b = 1 OR a:b = 2)"; 40].join(" AND ");
    let ex = extract_text(&format!("[{blowup}] OR [url:value = 'u']"));
    assert!(ex.unsupported[0].starts_with("more than"), "{ex:?}");
    assert_eq!(ex.found, [Found::Url("u".into())]);
}

#[test]
fn whitespace_case_and_escapes() {
    let spaced = parse("[ ipv4-addr:value = '10.0.0.0' ]").unwrap();
    for text in [
        "[ipv4-addr:value='10.0.0.0']",
        "\t[\nipv4-addr:value\r\n==\u{3000}'10.0.0.0'/* c */]\n",
    ] {
        assert_eq!(parse(text), Ok(spaced.clone()), "{text}");
    }
    let ex = extract_text(
        "[file:hashes.md5 = 'A' AND file:hashes.'sha-1' = 'B' AND file:hashes.'Sha256' = 'C']",
    );
    assert_eq!(ex.found, [file(Some("A"), Some("B"), Some("C"))]);
    let ex = extract_text(
        r"[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\Software' OR mutex:name = 'it\'s']",
    );
    assert_eq!(
        ex.found,
        [
            reg(r"HKEY_LOCAL_MACHINE\Software", None, None),
            Found::Mutex("it's".into())
        ]
    );
    assert_eq!(
        parse(r"[a:b = 'x\\y\'z']").unwrap().to_string(),
        r"[a:b = 'x\\y\'z']"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let nest = |open: &str, inner: &str, close: &str, n: usize| {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    };
    // At the cap, on a 1 MB stack (half a thread's default; a debug build
    // uses about 640 KB here, a release build under 200 KB).
    let at_cap = nest("(", "[a:b = 1]", ")", MAX_DEPTH - 1);
    let inside = format!("[{}]", nest("(", "url:value = 'u'", ")", MAX_DEPTH - 1));
    let small_stack = std::thread::Builder::new().stack_size(1 << 20);
    let run = move || {
        let p = parse(&at_cap).unwrap();
        assert_eq!(parse(&p.to_string()), Ok(p.clone()));
        assert_eq!(extract_text(&inside).found, [Found::Url("u".into())]);
    };
    small_stack.spawn(run).unwrap().join().unwrap();
    let deep = [
        (nest("(", "[a:b = 1]", ")", MAX_DEPTH), true),
        (format!("[{}]", nest("(", "a:b = 1", ")", MAX_DEPTH)), true),
        ("(".repeat(100_000), true),
        (format!("[{}", "(".repeat(100_000)), true),
        (nest("(", "[a:b = 1]", ")", 100_000), true),
        (format!("[{}]", nest("(", "a:b = 1", ")", 100_000)), true),
        ("[".repeat(100_000), false),
        (nest("([", "a:b = 1", "])", 50_000), false),
    ];
    for (text, too_deep) in deep {
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e.message.contains("nested deeper than 200 levels"),
            too_deep,
            "{e}"
        );
    }
}

#[test]
fn megabytes_of_input_parse_and_the_values_taken_are_bounded() {
    let text = "[ipv4-addr:value = '10.0.0.1'] OR ".repeat(100_000) + "[a:b = 'x']";
    let ex = extract_text(&text);
    assert_eq!(ex.found.len(), super::MAX_FOUND);
    assert_eq!(ex.unsupported, ["more than 4095 values in one pattern"]);
    let ands = format!("[{}]", vec!["file:hashes.MD5 = 'a'"; 100_000].join(" AND "));
    assert_eq!(extract_text(&ands).found.len(), 1);
    let garbage = "[a:b = 'x' ".repeat(100_000);
    assert!(parse(&garbage).is_err());
}

const TOKENS: [&str; 44] = [
    "[",
    "]",
    "(",
    ")",
    "'",
    "\\",
    ":",
    ".",
    ",",
    "*",
    "=",
    "!=",
    "<",
    ">=",
    "<>",
    "==",
    " ",
    "AND",
    "OR",
    "NOT",
    "FOLLOWEDBY",
    "IN",
    "LIKE",
    "ISSUBSET",
    "EXISTS",
    "WITHIN",
    "SECONDS",
    "REPEATS",
    "TIMES",
    "START",
    "STOP",
    "true",
    "t'2020-01-01T00:00:00Z'",
    "h'ab'",
    "b'AAAA'",
    "file",
    "ipv4-addr",
    "hashes",
    "value",
    "'x'",
    "-1",
    "+1.5",
    "/*",
    "\u{0}é",
];

fn from_alphabet(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&TOKENS[..]), len).prop_map(|t| t.concat())
}

/// Parsing never panics; what parses prints back to the same AST.
fn check_any(text: &str) {
    if let Ok(p) = parse(text) {
        assert_eq!(parse(&p.to_string()), Ok(p.clone()), "{text}");
        extract(&p);
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(chars in prop::collection::vec(any::<char>(), 0..300), text in from_alphabet(0..150)) {
        check_any(&chars.into_iter().collect::<String>());
        check_any(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3))]
    #[test]
    fn up_to_64_kb_never_panics(chars in prop::collection::vec(any::<char>(), 0..65_536), text in from_alphabet(8_000..14_000)) {
        check_any(&chars.into_iter().collect::<String>());
        check_any(&text);
    }
}

#[path = "pattern_tests_gen.rs"]
mod generated;
