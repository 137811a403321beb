#![no_main]

//! Any text as a value (detected, and as each type), and as every field of
//! a row: no panic; an accepted value normalizes to itself again.

use tc_ingest::feed::RawRecord;
use tc_ingest::indicator::IndicatorType;
use tc_ingest::normalize::{self, FeedDefaults};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(first) = normalize::value(s, None) {
        let again = normalize::value(first.summary(), Some(first.kind()))
            .unwrap_or_else(|e| panic!("{s:?} -> {first:?} then rejected: {e}"));
        assert_eq!(again, first, "{s:?}");
    }
    for kind in IndicatorType::ALL {
        let _ = normalize::value(s, Some(kind));
    }
    // The same text in every field of a row, split on a separator.
    let mut parts = s.split('\u{1e}');
    let mut next = || parts.next().map(str::to_string);
    let rec = RawRecord {
        value: next(),
        kind: next(),
        md5: next(),
        sha1: next(),
        sha256: next(),
        key_name: next(),
        value_name: next(),
        value_type: next(),
        rating: next(),
        confidence: next(),
        tags: next().into_iter().collect(),
        description: next(),
        owner: next(),
        first_seen: next(),
        last_seen: next(),
        attributes: next()
            .map(|a| ("Source".to_string(), a))
            .into_iter()
            .collect(),
        ..RawRecord::default()
    };
    if let Ok(n) = normalize::record(&rec, &FeedDefaults::default()) {
        for t in &n.payload.tags {
            assert!(!t.chars().any(char::is_control), "tag {t:?}");
        }
    }
});
