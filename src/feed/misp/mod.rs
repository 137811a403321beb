//! MISP events: `{"Event": {..}}` (exports, a MISP feed's `<uuid>.json`),
//! a bare event (PyMISP's `to_json()`), a `{"response": [..]}` search
//! result, or a JSON list of those. Read in two passes, so that an event's
//! own fields (its tags, `info`, `Orgc`), which MISP writes after its
//! attributes, reach every attribute while memory stays flat:
//!
//! 1. each event's head (everything but `Attribute` and `Object`, which are
//!    skipped unheld) is collected;
//! 2. the attributes (`Event.Attribute[]`, `Event.Object[].Attribute[]`)
//!    are read one at a time and handed over with their event's head.
//!
//! A row's position is `attribute ordinal << 2 | value index` (a
//! `domain|ip` gives two rows).

use std::io::{self, BufRead};

use serde::Deserialize;
use serde_json::Value;

mod attribute;
mod types;

use attribute::{Attribute, attribute, text};

use super::jsonscan::{Scanner, Stop};
use super::{FeedError, Flow, Item, RawRecord, ReadOptions, Refusal, echo_bytes};

/// Events whose heads are kept; attributes of later events in one file
/// go without their event's tags and info.
const MAX_EVENTS: usize = 100_000;

/// Tags kept per event.
const MAX_EVENT_TAGS: usize = 256;

/// The most bytes of event heads (their fields as written) kept for one
/// file: past it, later events' attributes go without their event's fields.
const MAX_HEADS_BYTES: usize = 32 << 20;

/// Rows one attribute may give: the low bits of a position.
const ROWS_PER_ATTRIBUTE: u64 = 4;

/// What every attribute of an event takes from it.
#[derive(Debug, Default, Clone)]
struct EventHead {
    info: Option<String>,
    org: Option<String>,
    tags: Vec<String>,
    threat_level: Option<String>,
}

/// A MISP object: its attributes are read like the event's.
#[derive(Deserialize, Default)]
#[serde(default)]
struct MispObject {
    uuid: Option<String>,
    #[serde(rename = "Attribute")]
    attributes: Vec<Value>,
}

/// Which pass a walk is.
enum Pass<'a> {
    Heads,
    Rows {
        sink: &'a mut dyn FnMut(Item) -> Flow,
    },
}

/// Reads MISP events: `open` gives the file from its start, once per pass.
pub(super) fn read(
    open: &dyn Fn() -> io::Result<Box<dyn BufRead>>,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    let unreadable = |e: io::Error| FeedError::Unreadable(e.to_string());
    let mut heads = Vec::new();
    let mut w = Walk::new(open().map_err(unreadable)?, opts, Pass::Heads, &mut heads);
    // A file that breaks is reported by the second pass, at the break,
    // after the attributes before it.
    let _ = w.run();
    let mut none = Vec::new();
    let mut w = Walk::new(
        open().map_err(unreadable)?,
        opts,
        Pass::Rows { sink },
        &mut none,
    );
    w.heads_read = heads;
    w.run()
}

struct Walk<'a, R> {
    scan: Scanner<R>,
    buf: Vec<u8>,
    opts: &'a ReadOptions,
    pass: Pass<'a>,
    /// The first pass's heads, filled.
    heads: &'a mut Vec<EventHead>,
    /// The second pass's heads, read.
    heads_read: Vec<EventHead>,
    /// Events entered so far; the current one is the last.
    events: usize,
    attributes: u64,
    /// Bytes of head fields kept so far.
    heads_bytes: usize,
}

impl<'a, R: BufRead> Walk<'a, R> {
    fn new(input: R, opts: &'a ReadOptions, pass: Pass<'a>, heads: &'a mut Vec<EventHead>) -> Self {
        Self {
            scan: Scanner::new(input, 1),
            buf: Vec::new(),
            opts,
            pass,
            heads,
            heads_read: Vec::new(),
            events: 0,
            attributes: 0,
            heads_bytes: 0,
        }
    }

    fn run(&mut self) -> Result<(), FeedError> {
        let result = self.document();
        Stop::ended(result, self.scan.line())
    }

    fn document(&mut self) -> Result<(), Stop> {
        match self.scan.peek()? {
            None => return Ok(()),
            Some(b'[') => self.list()?,
            Some(b'{') => self.event()?,
            Some(b) => {
                return Err(self
                    .scan
                    .syntax(format!(
                        "a MISP document starts with '{{' or '[', not '{}'",
                        b.escape_ascii()
                    ))
                    .into());
            }
        }
        if let Some(b) = self.scan.peek()? {
            return Err(self
                .scan
                .syntax(format!(
                    "unexpected '{}' after the end of the document",
                    b.escape_ascii()
                ))
                .into());
        }
        Ok(())
    }

    /// A list of events (or of `{"Event": ..}` wrappers); anything else
    /// in it is skipped.
    fn list(&mut self) -> Result<(), Stop> {
        self.scan.expect(b'[', "to open the list")?;
        loop {
            if self.scan.eat(b']')? {
                return Ok(());
            }
            if self.scan.peek()? == Some(b'{') {
                self.event()?;
            } else {
                let line = self.scan.line();
                self.scan.value(None, 0)?;
                self.refuse(
                    line,
                    "an element of the list that is not an event (an object)",
                )?;
            }
            if !self.scan.eat(b',')? {
                self.scan
                    .expect(b']', "or ',' after an element of the list")?;
                return Ok(());
            }
        }
    }

    /// An event object, or a wrapper holding one under `Event` or a list
    /// under `response`: both are walked here, a wrapper being an event
    /// with no fields of its own.
    fn event(&mut self) -> Result<(), Stop> {
        self.scan.expect(b'{', "to open an event")?;
        self.events += 1;
        let index = self.events - 1;
        if matches!(self.pass, Pass::Heads) && self.heads.len() < MAX_EVENTS {
            self.heads.push(EventHead::default());
        }
        if self.scan.eat(b'}')? {
            return Ok(());
        }
        loop {
            if self.scan.peek()? != Some(b'"') {
                return Err(self.scan.syntax("expected a key (a string)".into()).into());
            }
            let key = if self.scan.value(Some(&mut self.buf), 64)? {
                serde_json::from_slice::<String>(&self.buf).unwrap_or_default()
            } else {
                String::new()
            };
            self.scan.expect(b':', "after a key")?;
            let next = self.scan.peek()?;
            match (key.as_str(), next) {
                ("Event", Some(b'{')) => self.event()?,
                ("response", Some(b'[')) => self.list()?,
                _ => self.field(index, &key)?,
            }
            if self.scan.eat(b',')? {
                continue;
            }
            self.scan
                .expect(b'}', "or ',' after a value in the event")?;
            return Ok(());
        }
    }

    /// One field of event `index`: in the first pass its head fields are
    /// kept, in the second its attributes read.
    fn field(&mut self, index: usize, key: &str) -> Result<(), Stop> {
        let heads_pass = matches!(self.pass, Pass::Heads);
        match key {
            "Attribute" | "Object" if !heads_pass => {
                let line = self.scan.line();
                if self.scan.peek()? != Some(b'[') {
                    self.scan.value(None, 0)?;
                    return self.refuse(line, &format!("Event.{key} is not a list"));
                }
                self.attributes_of(index, key == "Object")
            }
            "info" | "Orgc" | "Tag" | "threat_level_id" if heads_pass => {
                let fits = self
                    .scan
                    .value(Some(&mut self.buf), self.opts.max_line_bytes)?;
                self.heads_bytes += self.buf.len();
                let value = (fits && self.heads_bytes <= MAX_HEADS_BYTES)
                    .then(|| serde_json::from_slice::<Value>(&self.buf).ok())
                    .flatten();
                if let (Some(v), Some(head)) = (value, self.heads.get_mut(index)) {
                    head.take(key, &v);
                }
                Ok(())
            }
            _ => Ok(self.scan.value(None, 0).map(|_| ())?),
        }
    }

    /// The elements of an `Attribute` list (or of an `Object` list, each
    /// object's own `Attribute` list read from it whole).
    fn attributes_of(&mut self, index: usize, objects: bool) -> Result<(), Stop> {
        self.scan.expect(b'[', "to open the list")?;
        loop {
            if self.scan.eat(b']')? {
                return Ok(());
            }
            self.scan.peek()?;
            let line = self.scan.line();
            let fits = self
                .scan
                .value(Some(&mut self.buf), self.opts.max_line_bytes)?;
            if !fits {
                self.attributes += 1;
                let reason = format!(
                    "a MISP {} longer than {} bytes (watch.max_line_bytes)",
                    if objects { "object" } else { "attribute" },
                    self.opts.max_line_bytes
                );
                self.emit(vec![Item::Bad {
                    position: 0,
                    line,
                    input: String::new(),
                    reason,
                }])?;
            } else if objects {
                self.object(index, line)?;
            } else {
                self.attributes += 1;
                let items = match serde_json::from_slice::<Attribute>(&self.buf) {
                    Ok(a) => attribute(a, self.heads_read.get(index), line, self.opts),
                    Err(e) => vec![refused(
                        line,
                        echo_bytes(&self.buf),
                        format!("not a MISP attribute: {}", super::echo_display(&e)),
                    )],
                };
                self.emit(items)?;
            }
            if !self.scan.eat(b',')? {
                self.scan
                    .expect(b']', "or ',' after an element of the list")?;
                return Ok(());
            }
        }
    }

    /// A MISP object held whole: its attributes. The hashes of a `file`
    /// object (its md5, sha1 and sha256 attributes) are one File with all
    /// of them, as ThreatConnect holds a file, under the object's uuid.
    fn object(&mut self, index: usize, line: u64) -> Result<(), Stop> {
        let o = match serde_json::from_slice::<MispObject>(&self.buf) {
            Ok(o) => o,
            Err(e) => {
                self.attributes += 1;
                let reason = format!(
                    "a MISP object that does not parse: {}",
                    super::echo_display(&e)
                );
                let input = echo_bytes(&self.buf);
                return self.emit(vec![refused(line, input, reason)]);
            }
        };
        let mut file: Option<RawRecord> = None;
        for a in o.attributes {
            self.attributes += 1;
            let mut items = self.attribute(index, a, line);
            if let [Item::Row(r)] = &mut items[..]
                && r.kind.as_deref() == Some("File")
                && r.value.is_none()
            {
                match &mut file {
                    // Merged into the object's File: this attribute gives
                    // no row of its own. Another value for a hash it has:
                    // a File of its own.
                    Some(f) => {
                        if merge_hashes(f, r) {
                            continue;
                        }
                    }
                    None => {
                        r.external_id = o.uuid.clone().or(r.external_id.take());
                        // Its row comes once the object's hashes are all read.
                        file = Some(r.clone());
                        continue;
                    }
                }
            }
            self.emit(items)?;
        }
        match file {
            // After the object's attributes, at a position of its own:
            // positions only grow (a resumed read goes by them).
            Some(f) => {
                self.attributes += 1;
                self.emit(vec![Item::Row(f)])
            }
            None => Ok(()),
        }
    }

    fn attribute(&self, index: usize, v: Value, line: u64) -> Vec<Item> {
        if !v.is_object() {
            let input = super::echo_json(&v);
            return vec![refused(
                line,
                input,
                "an attribute that is not an object".into(),
            )];
        }
        match serde_json::from_value::<Attribute>(v) {
            Ok(a) => attribute(a, self.heads_read.get(index), line, self.opts),
            Err(e) => vec![refused(
                line,
                String::new(),
                format!("not a MISP attribute: {}", super::echo_display(&e)),
            )],
        }
    }

    /// Hands the items of the current attribute over at its positions.
    fn emit(&mut self, items: Vec<Item>) -> Result<(), Stop> {
        let Pass::Rows { sink } = &mut self.pass else {
            return Ok(());
        };
        let base = self.attributes * ROWS_PER_ATTRIBUTE;
        for (i, item) in items
            .into_iter()
            .take(ROWS_PER_ATTRIBUTE as usize)
            .enumerate()
        {
            let item = item.at(base + i as u64);
            if sink(item).is_break() {
                return Err(Stop::Sink);
            }
        }
        Ok(())
    }

    fn refuse(&mut self, line: u64, reason: &str) -> Result<(), Stop> {
        self.attributes += 1;
        self.emit(vec![refused(line, String::new(), reason.into())])
    }
}

/// Merges the hashes of `r` into the File `f` of the same MISP object,
/// with their tags and the stricter TLP; `false` (nothing merged) when `r`
/// gives another value for a hash `f` has.
fn merge_hashes(f: &mut RawRecord, r: &mut RawRecord) -> bool {
    let conflict = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(x), Some(y)) if !x.eq_ignore_ascii_case(y));
    if conflict(&f.md5, &r.md5) || conflict(&f.sha1, &r.sha1) || conflict(&f.sha256, &r.sha256) {
        return false;
    }
    f.md5 = f.md5.take().or(r.md5.take());
    f.sha1 = f.sha1.take().or(r.sha1.take());
    f.sha256 = f.sha256.take().or(r.sha256.take());
    f.tags.append(&mut r.tags);
    let rank = |labels: &[String]| {
        labels
            .iter()
            .filter_map(|l| crate::indicator::Tlp::parse(l))
            .map(crate::indicator::Tlp::rank)
            .max()
    };
    if rank(&r.security_labels) > rank(&f.security_labels) {
        f.security_labels = std::mem::take(&mut r.security_labels);
    }
    true
}

fn refused(line: u64, input: String, reason: String) -> Item {
    Item::Refused {
        position: 0,
        line,
        input,
        rule: Refusal::MispInvalid,
        reason,
    }
}

impl EventHead {
    /// Keeps one head field of the event.
    fn take(&mut self, key: &str, v: &Value) {
        match key {
            "info" => self.info = v.as_str().map(super::cut),
            "Orgc" => self.org = v.get("name").and_then(Value::as_str).map(super::cut),
            "threat_level_id" => self.threat_level = text(v),
            "Tag" => {
                if let Some(tags) = v.as_array() {
                    self.tags = tags
                        .iter()
                        .filter_map(|t| t.get("name").and_then(Value::as_str))
                        .take(MAX_EVENT_TAGS)
                        .map(super::cut)
                        .collect();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::feed::{Item, RawRecord, ReadOptions, read};

    fn rows(doc: &str) -> Vec<RawRecord> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(&path, doc).unwrap();
        let mut out = Vec::new();
        read(&path, &ReadOptions::default(), &mut |item| {
            if let Item::Row(r) = item {
                out.push(r);
            }
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_file_objects_hashes_are_one_file_with_the_strictest_label_unless_they_conflict() {
        let md5 = "0cc175b9c0f1b6a831c399e269772661";
        let other = "92eb5ffee6ae2fec3ad71c777531578f";
        let sha256 = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
        let doc = format!(
            r#"{{"Event": {{"Object": [{{"name": "file", "uuid": "obj-1", "Attribute": [
                {{"type": "md5", "value": "{md5}", "to_ids": true}},
                {{"type": "sha256", "value": "{sha256}", "to_ids": true, "Tag": [{{"name": "tlp:red"}}]}},
                {{"type": "md5", "value": "{other}", "to_ids": true}}]}}],
              "Tag": [{{"name": "tlp:green"}}, {{"name": "tlp:ex:chr"}}]}}}}"#
        );
        let rows = rows(&doc);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        // The conflicting md5 first (its own row, at its place), then the
        // object's File once its attributes are read.
        assert_eq!(rows[0].md5.as_deref(), Some(other));
        assert_eq!(rows[0].security_labels, ["TLP:GREEN"]);
        let file = &rows[1];
        assert_eq!(
            (file.md5.as_deref(), file.sha256.as_deref()),
            (Some(md5), Some(sha256))
        );
        assert_eq!(file.security_labels, ["TLP:RED"]);
        assert_eq!(file.external_id.as_deref(), Some("obj-1"));
        // A `tlp:` tag that is no level stays a tag.
        assert!(file.tags.iter().any(|t| t == "tlp:ex:chr"), "{file:?}");
        assert!(rows[0].position < file.position);
    }
}
