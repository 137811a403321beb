//! The allowlist's cases: each source, each kind of entry, the fixture
//! warninglists (`tests/data/warninglists/`), the errors, and a property
//! test that checking never panics.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;

use super::{Allowlist, AllowlistConfig, Matched};
use crate::indicator::IndicatorType::{
    self, Address, Asn, Cidr, EmailAddress, File, Host, Mutex, RegistryKey, Url, UserAgent,
};
use crate::normalize;

const MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
const SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const OTHER_SHA1: &str = "0123456789abcdef0123456789abcdef01234567";

const DNS: &str = "List of known public DNS resolvers";
const TOP: &str = "Top domains (fixture)";
const HASHES: &str = "List of known hashes for empty files";
const FRAGMENTS: &str = "Benign URL and user-agent fragments (fixture)";
const CRAWLERS: &str = "Known crawler user agents (fixture)";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/warninglists")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name).join("list.json")
}

#[track_caller]
fn build(cfg: &AllowlistConfig) -> (Allowlist, Vec<String>) {
    Allowlist::build(cfg).unwrap_or_else(|e| panic!("does not build: {e:#?}"))
}

#[track_caller]
fn build_err(cfg: &AllowlistConfig) -> Vec<String> {
    match Allowlist::build(cfg) {
        Ok((list, _)) => panic!("builds: {list:?}"),
        Err(e) => e,
    }
}

/// Checks each `(type, raw value, what should match)`, the value
/// normalized as intake would (`None`: the type detected).
#[track_caller]
fn check(list: &Allowlist, cases: &[(Option<IndicatorType>, &str, Option<&str>)]) {
    for &(kind, raw, want) in cases {
        let ind = normalize::value(raw, kind)
            .unwrap_or_else(|r| panic!("{raw:?} does not normalize: {r}"));
        assert_eq!(
            list.check(&ind).map(Matched::as_str),
            want,
            "{} {:?}",
            ind.kind(),
            ind.summary()
        );
    }
}

fn builtin() -> AllowlistConfig {
    AllowlistConfig {
        builtin: true,
        ..AllowlistConfig::default()
    }
}

#[test]
fn builtin_ranges_hashes_and_names() {
    let (list, warnings) = build(&builtin());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(list.size(), (27 + 3 + 10, 0));
    let b = Some("builtin");
    check(
        &list,
        &[
            (None, "10.1.2.3", b),
            (None, "192.0.2.5", b),
            (None, "100.64.1.1", b),
            (None, "255.255.255.255", b),
            (None, "224.0.0.251", b),
            (None, "0.0.0.0", b),
            (None, "::1", b),
            (None, "::", b),
            (None, "fe80::1", b),
            (None, "fd12:3456::1", b),
            (None, "2001:db8::1", b),
            (None, "3fff::1", b),
            (None, "ff02::fb", b),
            (None, "::ffff:10.0.0.1", b),
            (None, "8.8.8.8", None),
            (None, "2606:4700:4700::1111", None),
            (None, "::ffff:8.8.8.8", None),
            // 6to4 and NAT64 embed public IPv4 addresses: not built in.
            (None, "2002:808:808::1", None),
            (None, "64:ff9b::808:808", None),
            (None, "10.20.0.0/16", b),
            (None, "fe80::/64", b),
            (None, "0.0.0.0/0", None),
            (None, "8.0.0.0/8", None),
            (None, MD5, b),
            (None, SHA1, b),
            (None, SHA256, b),
            (None, &format!("{}:{OTHER_SHA1}", "0".repeat(32)), None),
            (None, &format!("{OTHER_SHA1}:{SHA256}"), b),
            (None, &format!("{MD5} : {OTHER_SHA1}"), b),
            (None, "foo.localhost", b),
            (None, "foo.example.com", b),
            (None, "example.org", b),
            (None, "printer.local", b),
            (None, "router.home.arpa", b),
            (None, "evil.com", None),
            (None, "example.com.evil.net", None),
            (None, "notexample.com", None),
            (None, "http://10.0.0.1/admin", b),
            (None, "http://[::1]:8080/x", b),
            (None, "https://www.example.com/path", b),
            (None, "http://8.8.8.8/", None),
            (None, "https://evil.com/example.com", None),
            (None, "alice@example.com", b),
            (None, "alice@gmail.com", None),
            (Some(Mutex), "example.com", None),
            (Some(UserAgent), MD5, None),
        ],
    );
}

#[test]
fn values_match_after_normalization_and_only_their_type() {
    let cfg = AllowlistConfig {
        values: vec![
            "8.8.8[.]8".into(),
            "Ours-Not-Evil.com".into(),
            "hxxp://intranet.acme-corp.com/login".into(),
            "Alice@Acme-Corp.com".into(),
            "AS 13335".into(),
            MD5.to_uppercase(),
        ],
        ..AllowlistConfig::default()
    };
    let (list, _) = build(&cfg);
    assert_eq!(list.size(), (6, 0));
    let v = Some("values");
    check(
        &list,
        &[
            (None, "8.8.8.8", v),
            (None, "8.8.8.8/32", None),
            (None, "http://8.8.8.8/", None),
            (None, "ours-not-evil.com", v),
            (None, "sub.ours-not-evil.com", None),
            (None, "http://intranet.acme-corp.com/login", v),
            (None, "http://intranet.acme-corp.com/Login", None),
            (None, "alice@acme-corp.com", v),
            (None, "ASN13335", v),
            (None, &format!("{MD5}:{OTHER_SHA1}"), v),
            (Some(Mutex), "8.8.8.8", None),
        ],
    );
    let e = build_err(&AllowlistConfig {
        values: vec!["ok.com".into(), "1.2.3".into()],
        ..AllowlistConfig::default()
    });
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(r#"allowlist.values[1]: "1.2.3": "#),
        "{e:?}"
    );
}

#[test]
fn cidrs_hold_addresses_and_networks_inside_them() {
    let cfg = AllowlistConfig {
        cidrs: vec![
            "81.2.69.0/24".into(),
            "81.2.70.5".into(),
            "2a00:1450::/32".into(),
            "81.2.80.1/20".into(),
            "81.3.0.0/25".into(),
            "81.3.0.128/25".into(),
        ],
        ..AllowlistConfig::default()
    };
    let (list, warnings) = build(&cfg);
    assert_eq!(
        warnings,
        [
            r#"allowlist.cidrs[3]: "81.2.80.1/20" has host bits set: its network 81.2.80.0/20 is used"#
        ]
    );
    let c = Some("cidrs");
    check(
        &list,
        &[
            (None, "81.2.69.7", c),
            (None, "81.2.70.5", c),
            (None, "81.2.70.6", None),
            (None, "81.2.69.0/25", c),
            (None, "81.2.69.0/24", c),
            (None, "81.2.68.0/23", None),
            (None, "0.0.0.0/0", None),
            (None, "81.2.95.255", c),
            (None, "81.2.96.0", None),
            (None, "81.2.79.255", None),
            (None, "2a00:1450:4001::1", c),
            (None, "2a00:1450:4000::/36", c),
            (None, "2a00:1400::/24", None),
            (None, "::ffff:81.2.69.1", c),
            // Two adjacent entries hold the network they make together.
            (None, "81.3.0.0/24", c),
            (None, "81.3.0.0/23", None),
            (None, "http://81.2.69.7:8080/x", c),
            (None, "http://[2a00:1450::1]/", c),
            (None, "http://81.2.68.1/", None),
            (Some(Mutex), "81.2.69.7", None),
        ],
    );
    let e = build_err(&AllowlistConfig {
        cidrs: vec!["not-a-net".into(), "10.0.0.0/33".into()],
        ..AllowlistConfig::default()
    });
    assert_eq!(
        e,
        [
            r#"allowlist.cidrs[0]: "not-a-net": not an IP address or CIDR block"#,
            r#"allowlist.cidrs[1]: "10.0.0.0/33": not an IP address or CIDR block"#,
        ]
    );
}

#[test]
fn domains_hold_names_under_them_in_hosts_urls_and_emails() {
    let cfg = AllowlistConfig {
        domains: vec![
            "intranet.acme-corp.com".into(),
            "ACME-Corp.net.".into(),
            "*.bücher.de".into(),
        ],
        ..AllowlistConfig::default()
    };
    let (list, _) = build(&cfg);
    assert_eq!(list.size(), (3, 0));
    let d = Some("domains");
    check(
        &list,
        &[
            (None, "intranet.acme-corp.com", d),
            (None, "wiki.intranet.acme-corp.com", d),
            (None, "acme-corp.com", None),
            (None, "notintranet.acme-corp.com", None),
            (None, "www.acme-corp.net", d),
            (None, "shop.bücher.de", d),
            (None, "xn--bcher-kva.de", d),
            (None, "https://mail.acme-corp.net/owa", d),
            (None, "https://user@acme-corp.net:8443/?q=1", d),
            (None, "https://evil.com/?acme-corp.net", None),
            // A browser goes to evil.com: `\` ends the authority.
            (None, "http://evil.com\\@acme-corp.net/", None),
            (None, "foo://evil.com\\@acme-corp.net/", d),
            (None, "bob@acme-corp.net", d),
            (None, "acme-corp.net@evil.com", None),
            (Some(Mutex), "acme-corp.net", None),
        ],
    );
    let e = build_err(&AllowlistConfig {
        domains: vec!["10.0.0.1".into(), "bad domain.com".into(), ".".into()],
        ..AllowlistConfig::default()
    });
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].starts_with(r#"allowlist.domains[0]: "10.0.0.1": an IP address"#));
    assert!(e[1].starts_with(r#"allowlist.domains[1]: "bad domain.com": "#));
    assert_eq!(e[2], r#"allowlist.domains[2]: ".": empty"#);
}

#[test]
fn regex_is_one_set_and_a_bad_one_is_named_by_index() {
    let cfg = AllowlistConfig {
        regex: vec![
            r"^Mozilla/4\.0 \(compatible; MSIE 6\.0".into(),
            "(?i)acme-corp".into(),
        ],
        ..AllowlistConfig::default()
    };
    let (list, _) = build(&cfg);
    let r = Some("regex");
    check(
        &list,
        &[
            (
                Some(UserAgent),
                "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)",
                r,
            ),
            (Some(UserAgent), "Mozilla/5.0", None),
            (Some(Mutex), "ACME-Corp-Updater", r),
            (None, "acme-corp.org", r),
            (None, "https://evil.com/acme-corp", r),
            (None, "evil.com", None),
        ],
    );
    let e = build_err(&AllowlistConfig {
        regex: vec!["ok".into(), "fine".into(), "(".into()],
        ..AllowlistConfig::default()
    });
    assert_eq!(e, [r#"allowlist.regex[2]: "(": unclosed group"#]);
}

#[test]
fn the_first_source_in_order_names_the_match() {
    let cfg = AllowlistConfig {
        builtin: true,
        values: vec!["10.0.0.1".into(), "8.8.8.8".into()],
        cidrs: vec!["8.8.8.0/24".into(), "10.0.0.0/8".into()],
        domains: vec!["google.com".into()],
        regex: vec!["google".into()],
        misp_warninglists: vec![fixture("public-dns"), fixture("top-domains")],
    };
    let (list, _) = build(&cfg);
    check(
        &list,
        &[
            (None, "10.0.0.1", Some("builtin")),
            (None, "8.8.8.8", Some("values")),
            (None, "8.8.8.9", Some("cidrs")),
            (None, "8.8.4.4", Some(DNS)),
            (None, "www.google.com", Some("domains")),
            (None, "googlemail.com", Some("regex")),
            (None, "youtube.com", Some(TOP)),
        ],
    );
    // Between warninglists, load order.
    let dir = tempfile::tempdir().unwrap();
    let list_at = |name: &str| {
        let p = dir.path().join(name).join("list.json");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let json = format!(r#"{{"name":"{name}","type":"string","list":["Evil.test"]}}"#);
        std::fs::write(&p, json).unwrap();
        p
    };
    let (a, b) = (list_at("a"), list_at("b"));
    for (order, want) in [([&a, &b], "a"), ([&b, &a], "b")] {
        let cfg = AllowlistConfig {
            misp_warninglists: order.map(|p| p.clone()).to_vec(),
            ..AllowlistConfig::default()
        };
        check(&build(&cfg).0, &[(None, "evil.test", Some(want))]);
    }
}

#[test]
fn warninglists_of_each_type_respect_matching_attributes() {
    let cfg = AllowlistConfig {
        misp_warninglists: vec![fixtures()],
        ..AllowlistConfig::default()
    };
    let (list, warnings) = build(&cfg);
    assert_eq!(list.size().1, 5);
    let skipped = |name: &str, first: &str| {
        warnings
            .iter()
            .any(|w| w.contains(&format!("{name:?}: skipped 1 of")) && w.contains(first))
    };
    assert!(skipped(DNS, r#""resolver1.opendns.com""#), "{warnings:#?}");
    assert!(skipped(TOP, r#""142.250.74.78""#), "{warnings:#?}");
    assert!(skipped(FRAGMENTS, r#""  ""#), "{warnings:#?}");
    assert!(skipped(CRAWLERS, r#""/(unclosed/""#), "{warnings:#?}");
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    check(
        &list,
        &[
            // cidr, for ip-src/ip-dst/domain|ip: addresses and networks, not URLs.
            (None, "8.8.8.8", Some(DNS)),
            (None, "2001:4860:4860::8888", Some(DNS)),
            (None, "9.9.9.0/25", Some(DNS)),
            (None, "9.9.0.0/16", None),
            (None, "8.8.8.9", None),
            (None, "http://8.8.8.8/", None),
            // hostname, for hostname/domain/url: not e-mail domains.
            (None, "mail.google.com", Some(TOP)),
            (None, "microsoft.com", Some(TOP)),
            (None, "www.amazon.com", Some(TOP)),
            (None, "https://www.youtube.com/watch?v=1", Some(TOP)),
            (None, "someone@google.com", None),
            (None, "google.com.evil.net", None),
            // string, for hashes only, case-insensitive.
            (None, MD5, Some(HASHES)),
            (None, &format!("{OTHER_SHA1}:{SHA256}"), Some(HASHES)),
            (Some(Mutex), MD5, None),
            (Some(UserAgent), SHA1, None),
            // substring, for URLs and user agents, as written.
            (None, "https://cdn.acme.net/favicon.ico", Some(FRAGMENTS)),
            (None, "https://cdn.acme.net/FAVICON.ICO", None),
            (None, "https://fonts.googleapis.com/css", Some(FRAGMENTS)),
            (None, "fonts.googleapis.com", None),
            (Some(UserAgent), "Microsoft-CryptoAPI/10.0", Some(FRAGMENTS)),
            (Some(Mutex), "Microsoft-CryptoAPI/10.0", None),
            // regex, for user agents: `/.../i` honoured, `#...#` read.
            (
                Some(UserAgent),
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                Some(CRAWLERS),
            ),
            (
                Some(UserAgent),
                "mozilla/5.0 (compatible; googlebot/2.1; +http://www.google.com/bot.html)",
                Some(CRAWLERS),
            ),
            (
                Some(UserAgent),
                "mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
                None,
            ),
            (
                Some(UserAgent),
                "WinHttp-Autoproxy-Service/10.0",
                Some(CRAWLERS),
            ),
            (Some(Mutex), "WinHttp-Autoproxy-Service/10.0", None),
            (None, "evil.com", None),
            (None, "1.2.3.4", None),
        ],
    );
}

#[test]
fn a_list_file_and_the_directory_load_the_same_list() {
    let one = AllowlistConfig {
        misp_warninglists: vec![fixture("public-dns")],
        ..AllowlistConfig::default()
    };
    let (list, _) = build(&one);
    assert_eq!(list.size(), (9, 1));
    let (all, _) = build(&AllowlistConfig {
        misp_warninglists: vec![fixtures()],
        ..AllowlistConfig::default()
    });
    // 9 + 6 + 4 + 3 + 3 entries, in 5 lists.
    assert_eq!(all.size(), (25, 5));
    let deeper = tempfile::tempdir().unwrap();
    let nested = deeper.path().join("checkout/lists/public-dns");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::copy(fixture("public-dns"), nested.join("list.json")).unwrap();
    std::fs::write(deeper.path().join("checkout/README.md"), "not a list").unwrap();
    let (list, _) = build(&AllowlistConfig {
        misp_warninglists: vec![deeper.path().to_path_buf()],
        ..AllowlistConfig::default()
    });
    assert_eq!(list.size(), (9, 1));
}

#[test]
fn unreadable_and_unknown_lists_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        let p = p.join("list.json");
        std::fs::write(&p, text).unwrap();
        p
    };
    let not_json = write("not-json", "name = 'a TOML file'");
    let glob = write("glob", r#"{"name":"Globs","type":"glob","list":["*.x"]}"#);
    let missing = dir.path().join("nowhere/list.json");
    let empty_dir = dir.path().join("empty");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let cfg = AllowlistConfig {
        misp_warninglists: vec![
            not_json.clone(),
            glob.clone(),
            missing.clone(),
            empty_dir.clone(),
        ],
        ..AllowlistConfig::default()
    };
    let e = build_err(&cfg);
    assert_eq!(e.len(), 4, "{e:#?}");
    let w = "allowlist.misp_warninglists";
    let prefix = format!("{w}: {}: not a MISP warninglist: ", not_json.display());
    assert!(e[0].starts_with(&prefix), "{e:#?}");
    assert_eq!(
        e[1],
        format!(
            r#"{w}: {}: "Globs": unknown warninglist type "glob" (MISP's are string, substring, hostname, cidr and regex)"#,
            glob.display()
        )
    );
    assert!(
        e[2].starts_with(&format!("{w}: {}: ", missing.display())),
        "{e:#?}"
    );
    assert_eq!(
        e[3],
        format!("{w}: {}: no list.json under it", empty_dir.display())
    );
    // A list whose attributes name no type we send is left out, with a warning.
    let sha512 = write(
        "sha512",
        r#"{"name":"S","type":"string","list":["x"],"matching_attributes":["sha512"]}"#,
    );
    let (list, warnings) = build(&AllowlistConfig {
        misp_warninglists: vec![sha512],
        ..AllowlistConfig::default()
    });
    assert_eq!(list.size(), (0, 0));
    assert!(list.is_empty());
    assert!(
        warnings[0].contains("applies to no indicator type"),
        "{warnings:?}"
    );
}

#[test]
fn an_empty_allowlist_matches_nothing() {
    fn shared<T: Send + Sync>() {}
    shared::<Allowlist>();
    for list in [Allowlist::empty(), build(&AllowlistConfig::default()).0] {
        assert!(list.is_empty());
        assert_eq!(list.size(), (0, 0));
        check(&list, &[(None, "10.0.0.1", None), (None, MD5, None)]);
    }
    assert!(!build(&builtin()).0.is_empty());
}

/// An allowlist with every kind of entry, built once.
fn everything() -> &'static Allowlist {
    static LIST: OnceLock<Allowlist> = OnceLock::new();
    LIST.get_or_init(|| {
        let cfg = AllowlistConfig {
            builtin: true,
            values: vec!["8.8.8.8".into(), "evil.com".into()],
            cidrs: vec!["81.2.69.0/24".into(), "2a00:1450::/32".into()],
            domains: vec!["acme-corp.com".into()],
            regex: vec!["(?i)^a.*z$".into(), r"\d{4}".into()],
            misp_warninglists: vec![fixtures()],
        };
        build(&cfg).0
    })
}

const TYPES: [Option<IndicatorType>; 11] = [
    None,
    Some(Address),
    Some(Cidr),
    Some(Host),
    Some(Url),
    Some(EmailAddress),
    Some(File),
    Some(Asn),
    Some(Mutex),
    Some(RegistryKey),
    Some(UserAgent),
];

proptest! {
    #[test]
    fn check_never_panics(
        prefix in prop::sample::select(vec![
            "", "http://", "https://user@", "ftp://[", "::ffff:", "10.", "AS", "HKEY_LOCAL_MACHINE\\",
        ]),
        body in r"[a-zA-Z0-9.:/@_\-\[\]%?#\\ ]{0,40}",
        kind in prop::sample::select(TYPES.to_vec()),
    ) {
        let raw = format!("{prefix}{body}");
        if let Ok(ind) = normalize::value(&raw, kind) {
            let _ = everything().check(&ind);
        }
    }

    #[test]
    fn check_never_panics_on_any_text(raw in any::<String>()) {
        for kind in TYPES {
            if let Ok(ind) = normalize::value(&raw, kind) {
                let _ = everything().check(&ind);
            }
        }
    }
}
