//! File rule: MD5, SHA1 and SHA256 in lower-case hex, several hashes of one file
//! joined into one indicator.

use crate::indicator::{FileHashes, SUMMARY_SEPARATOR};

use super::{Reject, RejectRule};

/// Normalizes one hash and files it in `hashes` by its length.
pub fn add_hash(hashes: &mut FileHashes, raw: &str) -> Result<(), Reject> {
    let h = raw.trim();
    if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Reject::new(
            RejectRule::InvalidHash,
            format!("{h:?} is not a hexadecimal hash"),
        ));
    }
    let (slot, name) = match h.len() {
        32 => (&mut hashes.md5, "MD5"),
        40 => (&mut hashes.sha1, "SHA1"),
        64 => (&mut hashes.sha256, "SHA256"),
        n => {
            return Err(Reject::new(
                RejectRule::InvalidHash,
                format!("{h:?} has {n} hex characters: MD5 has 32, SHA1 40, SHA256 64"),
            ));
        }
    };
    let lower = h.to_ascii_lowercase();
    match slot {
        Some(existing) if *existing != lower => Err(Reject::new(
            RejectRule::ConflictingHashes,
            format!("two different {name} values in one row: {existing} and {lower}"),
        )),
        _ => {
            *slot = Some(lower);
            Ok(())
        }
    }
}

/// A File summary (`md5 : sha1 : sha256`, any subset) from one value that holds
/// one hash or several joined by `:`.
pub fn parse_summary(hashes: &mut FileHashes, s: &str) -> Result<(), Reject> {
    for part in s.split(':') {
        if !part.trim().is_empty() {
            add_hash(hashes, part)?;
        }
    }
    Ok(())
}

/// The summary of a File: its hashes in md5, sha1, sha256 order.
pub fn summary(hashes: &FileHashes) -> Option<String> {
    let parts: Vec<&str> = [&hashes.md5, &hashes.sha1, &hashes.sha256]
        .into_iter()
        .filter_map(|h| h.as_deref())
        .collect();
    (!parts.is_empty()).then(|| parts.join(SUMMARY_SEPARATOR))
}

/// Whether `s` is one hash or several joined by `:` (for type detection).
pub fn looks_like_hashes(s: &str) -> bool {
    let mut any = false;
    for part in s.split(':') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        if !matches!(p.len(), 32 | 40 | 64) || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        any = true;
    }
    any
}
