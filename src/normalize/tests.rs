use super::*;
use crate::indicator::IndicatorType as T;

#[track_caller]
fn check(input: &str, kind: Option<T>, expected: &str) {
    match value(input, kind) {
        Ok(ind) => {
            assert_eq!(ind.summary(), expected, "normalize({input:?}, {kind:?})");
            if let Some(k) = kind {
                assert_eq!(ind.kind(), k);
            }
        }
        Err(e) => panic!("normalize({input:?}, {kind:?}) rejected: {e}"),
    }
}

#[track_caller]
fn check_detect(input: &str, kind: T, expected: &str) {
    let ind = value(input, None).unwrap_or_else(|e| panic!("{input:?} rejected: {e}"));
    assert_eq!(
        (ind.kind(), ind.summary()),
        (kind, expected),
        "detect({input:?})"
    );
}

#[track_caller]
fn check_reject(input: &str, kind: Option<T>, rule: &str) {
    match value(input, kind) {
        Ok(ind) => panic!("{input:?} was accepted as {ind:?}, expected rule {rule}"),
        Err(e) => assert_eq!(e.rule, rule, "{input:?}: {e}"),
    }
}

#[test]
fn asn_examples_of_tc_api() {
    for input in [
        "ASN12345",
        "12345",
        "AS12345",
        "AS 12345",
        "ASN 12345",
        "asn12345",
    ] {
        check(input, Some(T::Asn), "ASN12345");
    }
    check("AS4294967295", Some(T::Asn), "ASN4294967295");
    check_reject("AS4294967296", Some(T::Asn), "invalid-asn");
    check_reject("ASX12", Some(T::Asn), "invalid-asn");
    check_detect("AS 123", T::Asn, "ASN123");
}

#[test]
fn ipv6_cidr_examples_of_tc_api() {
    for input in [
        "abc:def:10:0:0:0:0:0/48",
        "abc:def:10::/48",
        "0abc:def:10:0:0:0:0:0/48",
        "abc:def:0010:0:0:0:0:0/48",
        "abc:def:10:0000:0000:0000:0000:0000/48",
    ] {
        check(input, Some(T::Cidr), "abc:def:10:0:0:0:0:0/48");
    }
    check(
        "2001:db8:1234::/48",
        Some(T::Cidr),
        "2001:db8:1234:0:0:0:0:0/48",
    );
    check(
        "2001:0DB8:1234:0000:0000:0000:0000:0000/48",
        Some(T::Cidr),
        "2001:db8:1234:0:0:0:0:0/48",
    );
    check_detect("2001:db8:1234::/48", T::Cidr, "2001:db8:1234:0:0:0:0:0/48");
}

#[test]
fn cidr_rules() {
    check("10.0.0.0/8", Some(T::Cidr), "10.0.0.0/8");
    check_detect("192.168.0.0/16", T::Cidr, "192.168.0.0/16");
    check_reject("10.1.2.3/8", Some(T::Cidr), "cidr-host-bits");
    let e = value("10.1.2.3/8", Some(T::Cidr)).unwrap_err();
    assert!(e.message.contains("10.0.0.0/8"), "{e}");
    check_reject("10.0.0.0/33", Some(T::Cidr), "invalid-cidr");
    check_reject("10.0.0.0", Some(T::Cidr), "cidr-without-prefix");
    check_reject("2001:db8::1/48", Some(T::Cidr), "cidr-host-bits");
}

#[test]
fn address_rules() {
    check_detect("1.2.3.4", T::Address, "1.2.3.4");
    check_detect("1.2.3[.]4", T::Address, "1.2.3.4");
    check_detect(
        "2001:0DB8:0000:0000:0000:0000:0000:0001",
        T::Address,
        "2001:db8::1",
    );
    check(
        "2001:db8:0:0:1:0:0:1",
        Some(T::Address),
        "2001:db8::1:0:0:1",
    );
    check_reject("010.1.1.1", Some(T::Address), "invalid-ipv4");
    check_reject("10.1", Some(T::Address), "invalid-ipv4");
    check_reject("167772161", Some(T::Address), "invalid-ipv4");
    check_reject("256.1.1.1", Some(T::Address), "invalid-ipv4");
    check_reject("10.0.0.0/8", Some(T::Address), "address-has-prefix");
    // Detected as an address and then refused, not guessed to be a host.
    check_reject("010.1.1.1", None, "invalid-ipv4");
}

#[test]
fn host_examples_of_tc_api() {
    check(
        "österreich.icom.museum",
        Some(T::Host),
        "xn--sterreich-z7a.icom.museum",
    );
    check_detect(
        "ÖSTERREICH.icom.museum",
        T::Host,
        "xn--sterreich-z7a.icom.museum",
    );
    check_detect("  Evil.Example.COM. ", T::Host, "evil.example.com");
    check_detect("evil[.]example[dot]com", T::Host, "evil.example.com");
    check_reject("1.2.3.4", Some(T::Host), "host-is-ip");
    check_reject("exa mple.com", Some(T::Host), "invalid-host");
    check_reject("-bad.com", Some(T::Host), "invalid-host");
    check_reject(
        &format!("{}.com", "a".repeat(64)),
        Some(T::Host),
        "invalid-host",
    );
    check_reject("localhost", Some(T::Host), "invalid-host");
}

#[test]
fn url_examples_of_tc_api() {
    check("http://EXAMPLE.com", Some(T::Url), "http://example.com");
    check_detect(
        "HTTP://EXAMPLE.com/Path?Q=A%20B#F",
        T::Url,
        "http://example.com/Path?Q=A%20B#F",
    );
    check_detect(
        "hxxps://evil[.]com/a[.]php",
        T::Url,
        "https://evil.com/a.php",
    );
    check_detect(
        "http://österreich.icom.museum/ä",
        T::Url,
        "http://xn--sterreich-z7a.icom.museum/ä",
    );
    check_detect(
        "http://User:Pw@Host.COM:8080/x",
        T::Url,
        "http://User:Pw@host.com:8080/x",
    );
    check_detect(
        "http://[2001:DB8::1]:80/",
        T::Url,
        "http://[2001:db8::1]:80/",
    );
    check_detect("http://1.2.3.4/x", T::Url, "http://1.2.3.4/x");
    check_reject("http:///path", Some(T::Url), "url-without-host");
    check_reject("example.com/path", Some(T::Url), "url-without-scheme");
    check_reject("http://exa mple.com/", Some(T::Url), "invalid-url");
    check_reject("http://example.com:99999/", Some(T::Url), "invalid-url");
}

#[test]
fn email_rules() {
    check_detect("Bad.Guy@EVIL.com", T::EmailAddress, "Bad.Guy@evil.com");
    check_detect("bad[at]evil[.]com", T::EmailAddress, "bad@evil.com");
    check_detect(
        "x@österreich.icom.museum",
        T::EmailAddress,
        "x@xn--sterreich-z7a.icom.museum",
    );
    check_reject("@evil.com", Some(T::EmailAddress), "invalid-email");
    check_reject("bad@", Some(T::EmailAddress), "invalid-email");
}

#[test]
fn file_rules() {
    let md5 = "D41D8CD98F00B204E9800998ECF8427E";
    let sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
    let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    check_detect(md5, T::File, &md5.to_lowercase());
    check_detect(sha1, T::File, sha1);
    check_detect(
        &format!("{sha256} : {md5}"),
        T::File,
        &format!("{} : {sha256}", md5.to_lowercase()),
    );
    check_reject("abcd", Some(T::File), "invalid-hash");
    check_reject(&"g".repeat(32), Some(T::File), "invalid-hash");
    check_reject(
        &format!("{md5} : {}", "0".repeat(32)),
        Some(T::File),
        "conflicting-hashes",
    );
}

#[test]
fn registry_key_rules() {
    check(
        "HKLM\\Software\\Run",
        Some(T::RegistryKey),
        "HKEY_LOCAL_MACHINE\\Software\\Run :   : REG_NONE",
    );
    check_detect(
        "hkcu/Software/Evil",
        T::RegistryKey,
        "HKEY_CURRENT_USER\\Software\\Evil :   : REG_NONE",
    );
    for (short, full) in [
        ("HKCR", "HKEY_CLASSES_ROOT"),
        ("HKU", "HKEY_USERS"),
        ("HKCC", "HKEY_CURRENT_CONFIG"),
        ("hkey_local_machine", "HKEY_LOCAL_MACHINE"),
    ] {
        check(
            &format!("{short}\\X : v : reg_sz"),
            Some(T::RegistryKey),
            &format!("{full}\\X : v : REG_SZ"),
        );
    }
    check_reject(
        "HKXX\\Software",
        Some(T::RegistryKey),
        "invalid-registry-hive",
    );
    check(
        "HKLM\\Software\\a/b",
        Some(T::RegistryKey),
        "HKEY_LOCAL_MACHINE\\Software\\a/b :   : REG_NONE",
    );
    let e = value("HKXX\\Software", Some(T::RegistryKey)).unwrap_err();
    assert!(e.message.contains("HKEY_PERFORMANCE_NLSTEXT"), "{e}");
    check_reject(
        "HKLM\\X : v : REG_WHAT",
        Some(T::RegistryKey),
        "invalid-registry-value-type",
    );
}

#[test]
fn text_types_are_kept_as_given() {
    check(
        "  Global\\Evil[.]Mutex ",
        Some(T::Mutex),
        "Global\\Evil[.]Mutex",
    );
    check(
        "Mozilla/5.0 (Evil)",
        Some(T::UserAgent),
        "Mozilla/5.0 (Evil)",
    );
    check_reject("a\u{7}b", Some(T::Mutex), "control-characters");
    check_reject("   ", Some(T::UserAgent), "empty-value");
}

#[test]
fn undetectable_values_are_rejected() {
    check_reject("hello world", None, "cannot-determine-type");
    check_reject("12345", None, "cannot-determine-type");
    check_reject("1.2.3", None, "cannot-determine-type");
}

#[test]
fn record_applies_defaults_under_row_values() {
    let defaults = FeedDefaults {
        kind: None,
        tags: vec!["feed".into(), "Shared".into()],
        rating: Some(2.0),
        confidence: Some(50),
        ..FeedDefaults::default()
    };
    let rec = RawRecord {
        line: 7,
        value: Some("evil[.]com".into()),
        rating: Some("4.5".into()),
        tags: vec![" shared ".into(), "row".into(), String::new()],
        description: Some("seen in phishing".into()),
        owner: Some("Other Org".into()),
        ..RawRecord::default()
    };
    let n = record(&rec, &defaults).unwrap();
    assert_eq!(n.indicator.summary(), "evil.com");
    assert_eq!(n.owner.as_deref(), Some("Other Org"));
    assert_eq!(n.payload.rating, Some(4.5));
    assert_eq!(n.payload.confidence, Some(50));
    assert_eq!(n.payload.tags, vec!["feed", "Shared", "row"]);
    assert_eq!(n.payload.attributes[0].value, "seen in phishing");
    assert_eq!(n.payload.steps(), 5);
}

#[test]
fn record_field_errors_name_the_field() {
    let d = FeedDefaults::default();
    let mut rec = RawRecord::value(1, "1.2.3.4");
    rec.rating = Some("6".into());
    assert_eq!(record(&rec, &d).unwrap_err().rule, "invalid-rating");
    rec.rating = None;
    rec.confidence = Some("101".into());
    let e = record(&rec, &d).unwrap_err();
    assert!(e.message.contains("confidence"), "{e}");
    rec.confidence = None;
    rec.tags = vec!["x".repeat(129)];
    assert_eq!(record(&rec, &d).unwrap_err().rule, "tag-too-long");
    rec.tags = vec![];
    rec.kind = Some("bogus".into());
    assert_eq!(record(&rec, &d).unwrap_err().rule, "unknown-type");
}

#[test]
fn record_joins_hash_columns_and_registry_columns() {
    let d = FeedDefaults::default();
    let rec = RawRecord {
        md5: Some("D41D8CD98F00B204E9800998ECF8427E".into()),
        sha256: Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()),
        ..RawRecord::default()
    };
    let n = record(&rec, &d).unwrap();
    assert_eq!(n.indicator.kind(), T::File);
    assert_eq!(
        n.indicator.summary(),
        "d41d8cd98f00b204e9800998ecf8427e : e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let rec = RawRecord {
        key_name: Some("HKLM/Software/Run".into()),
        value_name: Some("evil".into()),
        value_type: Some("reg_sz".into()),
        ..RawRecord::default()
    };
    let n = record(&rec, &d).unwrap();
    assert_eq!(
        n.indicator.summary(),
        "HKEY_LOCAL_MACHINE\\Software\\Run : evil : REG_SZ"
    );
}

#[test]
fn type_aliases_from_feeds() {
    for (alias, t) in [
        ("ip-dst", T::Address),
        ("IPv6", T::Address),
        ("FQDN", T::Host),
        ("link", T::Url),
        ("email-src", T::EmailAddress),
        ("SHA256", T::File),
        ("as", T::Asn),
        ("netblock", T::Cidr),
        ("ip-range", T::Cidr),
        ("registry key", T::RegistryKey),
        ("user agent", T::UserAgent),
        ("User-Agent", T::UserAgent),
        ("mutex", T::Mutex),
    ] {
        assert_eq!(T::parse_alias(alias), Some(t), "{alias}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn raw_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
            any::<std::net::Ipv6Addr>().prop_map(|ip| format!("{ip:?}").to_uppercase()),
            (any::<std::net::Ipv6Addr>(), 0u8..=128).prop_map(|(ip, p)| {
                let net = ipnet::Ipv6Net::new(ip, p).unwrap().trunc();
                format!("{}/{}", net.network(), p)
            }),
            "[a-zA-Z][a-zA-Z0-9-]{0,10}[a-zA-Z0-9](\\[\\.\\]|\\.)[a-zA-Z]{2,6}",
            "(hxxp|https?)://[a-zA-Z]{1,10}\\.[a-zA-Z]{2,5}(/[a-zA-Z0-9%?=&]{0,12})?",
            "[a-z0-9._]{1,10}@[a-zA-Z]{1,10}\\.com",
            "[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}",
            "(AS|ASN|as|asn) ?[0-9]{1,9}",
            "(HKLM|HKCU|hkcr|HKEY_USERS)\\\\[A-Za-z\\\\]{1,20}",
            "\\PC{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn normalizing_twice_changes_nothing(raw in raw_value()) {
            if let Ok(first) = value(&raw, None) {
                let again = value(first.summary(), Some(first.kind()))
                    .unwrap_or_else(|e| panic!("{raw:?} -> {first:?} then rejected: {e}"));
                prop_assert_eq!(&again, &first);
                let detected = value(first.summary(), None).unwrap();
                prop_assert_eq!(detected, first);
            }
        }

        #[test]
        fn accepted_values_pass_the_simulators_validation(raw in raw_value()) {
            if let Ok(ind) = value(&raw, None) {
                let check = crate::sim::validate::summary(ind.kind(), ind.summary());
                prop_assert!(check.is_ok(), "{:?} -> {:?}: {:?}", raw, ind, check);
            }
        }
    }
}

#[test]
fn timestamps_good_ones_to_rfc3339_utc() {
    for (input, expected) in [
        ("2026-10-04T12:34:56Z", "2026-10-04T12:34:56Z"),
        ("2026-10-04t12:34:56z", "2026-10-04T12:34:56Z"),
        // RFC 3339 section 5.6 lets a space stand for the T.
        ("2026-10-04 12:34:56Z", "2026-10-04T12:34:56Z"),
        ("2026-10-04T14:34:56+02:00", "2026-10-04T12:34:56Z"),
        ("2026-10-04T01:00:00-03:30", "2026-10-04T04:30:00Z"),
        ("2026-10-04T12:34:56.789Z", "2026-10-04T12:34:56Z"),
        ("2026-10-04", "2026-10-04T00:00:00Z"),
        ("2024-02-29", "2024-02-29T00:00:00Z"),
        (" 2026-10-04 ", "2026-10-04T00:00:00Z"),
        ("0", "1970-01-01T00:00:00Z"),
        ("1790000000", "2026-09-21T14:13:20Z"),
        ("253402300799", "9999-12-31T23:59:59Z"),
    ] {
        let out =
            timestamp("first_seen", input).unwrap_or_else(|e| panic!("{input:?} rejected: {e}"));
        assert_eq!(out, expected, "{input:?}");
        // Normalizing again returns it unchanged.
        assert_eq!(timestamp("first_seen", &out).unwrap(), out);
    }
}

#[test]
fn timestamps_bad_ones_are_rejected() {
    for input in [
        "yesterday",
        "2026-13-01",
        "2026-02-30",
        "2025-02-29",
        "2026-10-4",
        "26-10-04",
        "2026/10/04",
        "2026-10-04T12:34:56",
        "2026-10-04T25:00:00Z",
        "-1",
        "1.5",
        "1759580096000",
        "99999999999999999999999",
        "0000-01-01T00:00:00Z",
        "２０２６-10-04",
    ] {
        let e = timestamp("last_seen", input).unwrap_err();
        assert_eq!(e.rule, "invalid-timestamp", "{input:?}: {e}");
        assert_eq!(e.rule, RejectRule::InvalidTimestamp);
        assert!(e.message.starts_with("last_seen "), "{e}");
    }
}

#[test]
fn record_normalizes_first_and_last_seen_into_the_payload() {
    let d = FeedDefaults::default();
    let mut rec = RawRecord::value(1, "1.2.3.4");
    let n = record(&rec, &d).unwrap();
    assert_eq!((n.payload.first_seen, n.payload.last_seen), (None, None));
    rec.first_seen = Some("2026-10-04".into());
    rec.last_seen = Some("2026-11-20T09:00:00+01:00".into());
    let n = record(&rec, &d).unwrap();
    assert_eq!(
        n.payload.first_seen.as_deref(),
        Some("2026-10-04T00:00:00Z")
    );
    assert_eq!(n.payload.last_seen.as_deref(), Some("2026-11-20T08:00:00Z"));
    // Seen dates are not API calls of their own under v2.
    assert_eq!(n.payload.steps(), 1);
    rec.last_seen = Some("  ".into());
    assert_eq!(record(&rec, &d).unwrap().payload.last_seen, None);
    rec.last_seen = Some("soon".into());
    let e = record(&rec, &d).unwrap_err();
    assert_eq!(e.rule, RejectRule::InvalidTimestamp);
    assert!(e.message.contains("last_seen \"soon\""), "{e}");
}

#[test]
fn control_characters_are_stripped_from_tags_owners_and_attributes() {
    let rec = RawRecord {
        value: Some("1.2.3.4".into()),
        tags: vec!["a\0b".into(), "\u{1}\u{7f}".into(), "c\u{85}".into()],
        owner: Some("Org\0".into()),
        description: Some("line one\0\nline\ttwo\u{1b}".into()),
        attributes: vec![
            ("Sou\0rce".into(), "feed\0x".into()),
            ("Source".into(), "\0".into()),
        ],
        ..RawRecord::default()
    };
    let n = record(&rec, &FeedDefaults::default()).unwrap();
    assert_eq!(n.payload.tags, ["ab", "c"]);
    assert_eq!(n.owner.as_deref(), Some("Org"));
    let attrs: Vec<(&str, &str)> = n
        .payload
        .attributes
        .iter()
        .map(|a| (a.kind.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [("Description", "line one\nline\ttwo"), ("Source", "feedx")]
    );
}

#[test]
fn reject_messages_are_cut() {
    let long = format!("{}\u{1}", "m".repeat(5000));
    let r = value(&long, Some(T::Mutex)).unwrap_err();
    assert!(
        r.message.len() <= crate::feed::ECHO_BYTES,
        "{}",
        r.message.len()
    );
}

#[test]
fn registry_key_names_holding_the_separator_are_rejected() {
    // Found by fuzzing (normalize): normalizing the summary again changed it.
    check_reject("HKCC/ :", None, "invalid-registry-key-name");
    check_reject("..", Some(T::Mutex), "dot-segment");
    check_reject(".", Some(T::UserAgent), "dot-segment");
}

#[test]
fn address_ranges_are_one_cidr_or_refused() {
    let rec = |start: &str, end: Option<&str>, prefix: Option<&str>| RawRecord {
        line: 1,
        range_start: Some(start.into()),
        range_end: end.map(Into::into),
        prefix_length: prefix.map(Into::into),
        ..RawRecord::default()
    };
    let summary = |r: RawRecord| {
        record(&r, &FeedDefaults::default()).map(|n| n.indicator.summary().to_string())
    };
    // DShield: start and prefix length (its Netblock column).
    assert_eq!(
        summary(rec("192.0.2.0", Some("192.0.2.255"), Some("24"))).unwrap(),
        "192.0.2.0/24"
    );
    assert_eq!(
        summary(rec("198.51.100.0", Some("198.51.100.127"), None)).unwrap(),
        "198.51.100.0/25"
    );
    assert_eq!(
        summary(rec("203.0.113.7", None, None)).unwrap(),
        "203.0.113.7/32"
    );
    assert_eq!(
        summary(rec("2001:db8::", Some("2001:db8::ffff"), None)).unwrap(),
        "2001:db8:0:0:0:0:0:0/112"
    );
    // Never widened: a range of several blocks, or one with host bits.
    let e = summary(rec("192.0.2.0", Some("192.0.2.129"), None)).unwrap_err();
    assert_eq!(e.rule, RejectRule::RangeNotOneCidr, "{}", e.message);
    let e = summary(rec("192.0.2.1", Some("192.0.2.255"), None)).unwrap_err();
    assert_eq!(e.rule, RejectRule::RangeNotOneCidr);
    let e = summary(rec("192.0.2.9", None, Some("24"))).unwrap_err();
    assert_eq!(e.rule, RejectRule::CidrHostBits);
    let e = summary(rec("192.0.2.9", Some("192.0.2.1"), None)).unwrap_err();
    assert_eq!(e.rule, RejectRule::RangeNotOneCidr);
    // A prefix length that would widen the range is refused too.
    let e = summary(rec("192.0.2.0", Some("192.0.2.127"), Some("24"))).unwrap_err();
    assert_eq!(e.rule, RejectRule::RangeNotOneCidr, "{}", e.message);
}
