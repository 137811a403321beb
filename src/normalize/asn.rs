//! ASN rule: `ASN` followed by digits, no space.

use super::{Reject, RejectRule};

/// `12345`, `AS12345`, `AS 12345`, `ASN 12345` and `asn12345` all become `ASN12345`.
pub fn asn(s: &str) -> Result<String, Reject> {
    let digits = strip_prefix(s).trim_start();
    let bad = || {
        Reject::new(
            RejectRule::InvalidAsn,
            format!("{s:?} is not an AS number (ASN followed by digits, at most 4294967295)"),
        )
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u32 = digits.parse().map_err(|_| bad())?;
    Ok(format!("ASN{n}"))
}

fn strip_prefix(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 3 && b[..3].eq_ignore_ascii_case(b"asn") {
        &s[3..]
    } else if b.len() >= 2 && b[..2].eq_ignore_ascii_case(b"as") {
        &s[2..]
    } else {
        s
    }
}

/// Whether `s` is written as an AS number with its prefix (`AS123`, `ASN 123`):
/// bare digits are too ambiguous to guess.
pub fn looks_like_asn(s: &str) -> bool {
    let rest = strip_prefix(s);
    rest.len() < s.len() && {
        let d = rest.trim_start();
        !d.is_empty() && d.len() <= 10 && d.bytes().all(|b| b.is_ascii_digit())
    }
}
