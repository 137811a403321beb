//! Telling a STIX bundle or a MISP event (or a MISP feed's index) from the
//! first bytes of a file, whatever it is named: the top-level object's keys
//! are walked (values skipped unheld) until one says what the document is.

use super::Format;
use super::jsonscan::Scanner;

/// The format the start of the content shows, if it shows one of the
/// threat-intel documents; `None` for anything else (or an undecided head).
pub(super) fn document(head: &[u8]) -> Option<Format> {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let mut scan = Scanner::new(head, 1);
    match scan.peek().ok()?? {
        b'{' => object(&mut scan, true),
        b'[' => {
            scan.eat(b'[').ok()?;
            // A list of MISP events: its first element says.
            if scan.peek().ok()?? == b'{' {
                object(&mut scan, false).filter(|f| *f == Format::Misp)
            } else {
                None
            }
        }
        _ => misp_hashes(head).then_some(Format::MispFeedIndex),
    }
}

/// Walks one object's keys: the format they show.
fn object(scan: &mut Scanner<&[u8]>, top: bool) -> Option<Format> {
    scan.eat(b'{').ok()?;
    let mut buf = Vec::new();
    let (mut kind, mut id) = (None::<String>, None::<String>);
    loop {
        if scan.eat(b'}').ok()? {
            break;
        }
        if !scan.value(Some(&mut buf), 128).ok()? {
            return None;
        }
        let key: String = serde_json::from_slice(&buf).ok()?;
        scan.expect(b':', "after a key").ok()?;
        let value_is_object = scan.peek().ok()?? == b'{';
        match key.as_str() {
            "Event" | "response" => return Some(Format::Misp),
            // A bare event, as PyMISP writes it.
            "Attribute" | "Object" | "Orgc" | "threat_level_id" => return Some(Format::Misp),
            "objects" if top => return Some(Format::Stix),
            "type" | "id" => {
                let text = if scan.value(Some(&mut buf), 256).ok()? {
                    serde_json::from_slice::<String>(&buf).ok()
                } else {
                    None
                };
                if key == "type" {
                    kind = text;
                } else {
                    id = text;
                }
                if kind.as_deref() == Some("bundle") && top {
                    return Some(Format::Stix);
                }
                if let (Some(k), Some(i)) = (&kind, &id) {
                    // One STIX object (NDJSON of objects): `<type>--<uuid>`.
                    return (top
                        && i.strip_prefix(k.as_str())
                            .is_some_and(|r| r.starts_with("--")))
                    .then_some(Format::Stix);
                }
            }
            // A MISP feed's manifest: event uuids to event summaries.
            k if top && value_is_object && is_uuid(k) => return Some(Format::MispFeedIndex),
            _ => {
                scan.value(None, 0).ok()?;
            }
        }
        if !scan.eat(b',').ok()? {
            scan.eat(b'}').ok()?;
            break;
        }
    }
    None
}

/// Whether the content is objects one a line: a first line that is a
/// whole object, and a second that starts another.
pub(super) fn object_lines(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty());
    let (Some(first), Some(second)) = (lines.next(), lines.next()) else {
        return false;
    };
    first.starts_with(b"{")
        && second.starts_with(b"{")
        && serde_json::from_slice::<serde::de::IgnoredAny>(first).is_ok()
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A MISP feed's `hashes.csv`: lines of `<md5 of a value>,<event uuid>`.
fn misp_hashes(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(first) = lines.next() else {
        return false;
    };
    first.trim().split_once(',').is_some_and(|(md5, uuid)| {
        md5.len() == 32 && md5.bytes().all(|c| c.is_ascii_hexdigit()) && is_uuid(uuid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_told_by_their_keys() {
        for (doc, want) in [
            (
                r#"{"type": "bundle", "id": "bundle--1", "objects": []}"#,
                Some(Format::Stix),
            ),
            (
                r#"{"id": "bundle--1", "objects": [{"type": "indicator"}]}"#,
                Some(Format::Stix),
            ),
            (
                r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"}"#,
                Some(Format::Stix),
            ),
            (r#"{"type":"indicator","id":"x-1"}"#, None),
            (
                r#"{"Event": {"info": "x", "Attribute": []}}"#,
                Some(Format::Misp),
            ),
            (r#"{"response": [{"Event": {}}]}"#, Some(Format::Misp)),
            (
                r#"{"uuid": "u", "info": "x", "Attribute": []}"#,
                Some(Format::Misp),
            ),
            (r#"[{"Event": {"info": "x"}}]"#, Some(Format::Misp)),
            (r#"[{"value": "1.2.3.4"}]"#, None),
            (r#"{"indicators": [{"value": "1.2.3.4"}]}"#, None),
            (
                r#"{"5f6e1b7a-0c3a-4b8e-9a39-1c1e2d3f4a5b": {"info": "e", "timestamp": "1"}}"#,
                Some(Format::MispFeedIndex),
            ),
            (
                "0cc175b9c0f1b6a831c399e269772661,5f6e1b7a-0c3a-4b8e-9a39-1c1e2d3f4a5b\n",
                Some(Format::MispFeedIndex),
            ),
            ("md5,comment\n0cc175b9c0f1b6a831c399e269772661,x\n", None),
            ("1.2.3.4\n", None),
            ("", None),
            (r#"{"type": "bundle""#, Some(Format::Stix)),
            (r#"{"a": "#, None),
        ] {
            assert_eq!(document(doc.as_bytes()), want, "{doc}");
        }
    }
}
