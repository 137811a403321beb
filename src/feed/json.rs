//! JSON (an array of objects, or an object holding the array under
//! `indicator`, `indicators`, `data` or `items`), read element by element so a
//! 2 GB array never sits in memory; and NDJSON, one object per line.

use std::fmt;
use std::io::BufRead;
use std::rc::Rc;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{
    FeedError, Field, Flow, Item, RawRecord, ReadOptions, RowLimit, RowProgress, field_for_name,
    read_line_limited,
};

/// Keys of a top-level object under which the array of indicators may be.
const ARRAY_KEYS: [&str; 4] = ["indicator", "indicators", "data", "items"];

struct Ctx<'a> {
    sink: &'a mut dyn FnMut(Item) -> Flow,
    opts: &'a ReadOptions,
    /// Bytes and newlines taken by the parser; each element's start.
    progress: Rc<RowProgress>,
    /// Newlines skipped before the parser started.
    first_line: u64,
    position: u64,
    stopped: bool,
    found_array: bool,
}

impl Ctx<'_> {
    fn line(&self) -> u64 {
        self.first_line + self.progress.newlines.get()
    }

    /// What is read next starts a new element (or key, or skipped value):
    /// the limit counts from here.
    fn mark(&self) {
        self.progress.mark_at(self.progress.taken.get());
    }
}

pub fn read_array(
    mut input: Box<dyn BufRead>,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    super::skip_bom(&mut input);
    // Whitespace before the document is skipped here, without holding it:
    // a file of whitespace only is empty, whatever its size.
    let mut first_line = 1u64;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) => return Err(super::broken(first_line, &e)),
        };
        if buf.is_empty() {
            return Ok(());
        }
        let n = buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(buf.len());
        first_line += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        let done = n < buf.len();
        input.consume(n);
        if done {
            break;
        }
    }
    let progress = Rc::new(RowProgress::default());
    let reader = RowLimit {
        inner: input,
        progress: progress.clone(),
        max: opts.max_line_bytes as u64,
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut ctx = Ctx {
        sink,
        opts,
        progress,
        first_line,
        position: 0,
        stopped: false,
        found_array: false,
    };
    let result = de.deserialize_any(Top(&mut ctx)).and_then(|()| de.end());
    if ctx.stopped {
        return Err(FeedError::Stopped);
    }
    if ctx.progress.over.get() {
        return Err(FeedError::Broken {
            line: ctx.line(),
            reason: format!(
                "a JSON element, key or string longer than {} bytes (watch.max_line_bytes): \
                 reading stopped there",
                opts.max_line_bytes
            ),
        });
    }
    match result {
        Ok(()) if ctx.found_array => Ok(()),
        Ok(()) => Err(FeedError::Broken {
            line: 1,
            reason: format!(
                "the JSON has no array of indicators (a top-level array, or one under {})",
                ARRAY_KEYS.join(", ")
            ),
        }),
        Err(e) => {
            let line = e.line() as u64 + first_line - 1;
            Err(FeedError::Broken {
                line,
                reason: format!(
                    "JSON syntax error at line {line} column {}: {}",
                    e.column(),
                    super::echo_display(&e)
                ),
            })
        }
    }
}

struct Top<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of indicators, or an object holding one")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Elements(self.0).visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.mark();
        while let Some(key) = map.next_key::<String>()? {
            self.0.mark();
            if !self.0.found_array && ARRAY_KEYS.contains(&key.as_str()) {
                map.next_value_seed(ElementsSeed(self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            self.0.mark();
        }
        Ok(())
    }
}

struct ElementsSeed<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> DeserializeSeed<'de> for ElementsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(Elements(self.0))
    }
}

struct Elements<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of indicators")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.0;
        ctx.found_array = true;
        ctx.mark();
        while let Some(v) = seq.next_element::<Value>()? {
            ctx.mark();
            ctx.position += 1;
            let item = element(v, ctx.position, ctx.line(), ctx.opts);
            if (ctx.sink)(item).is_break() {
                ctx.stopped = true;
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// One array element: an object, or a bare string value.
fn element(v: Value, position: u64, line: u64, opts: &ReadOptions) -> Item {
    match v {
        Value::Object(m) => record(m, position, line, opts),
        Value::String(s) => Item::Row(RawRecord {
            position,
            line,
            value: Some(s),
            ..RawRecord::default()
        }),
        other => Item::Bad {
            position,
            line,
            input: super::echo_json(&other),
            reason: "element is not an object or a string".into(),
        },
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An object to a record: our field names, common names, and ThreatConnect
/// batch style (`summary`, `type`, `tag: [{"name"}]`, `attribute: [{"type","value"}]`).
fn record(m: Map<String, Value>, position: u64, line: u64, opts: &ReadOptions) -> Item {
    let mut rec = RawRecord {
        position,
        line,
        ..RawRecord::default()
    };
    let input = || super::echo_json(&m);
    for (k, v) in &m {
        let explicit = opts
            .columns
            .iter()
            .find(|(_, col)| col.as_str() == k)
            .map(|(f, _)| *f);
        let field =
            explicit.or_else(|| field_for_name(k).filter(|f| !opts.columns.contains_key(f)));
        match (field, v) {
            (_, Value::Null) => {}
            (Some(Field::Tags), Value::Array(items)) => {
                for t in items {
                    match t {
                        Value::String(s) => rec.tags.push(s.clone()),
                        Value::Object(o) => {
                            if let Some(name) = o.get("name").and_then(scalar) {
                                rec.tags.push(name);
                            }
                        }
                        _ => {}
                    }
                }
            }
            (None, Value::Array(items)) if k == "attribute" || k == "attributes" => {
                for a in items {
                    let (Some(t), Some(val)) = (
                        a.get("type").and_then(scalar),
                        a.get("value").and_then(scalar),
                    ) else {
                        return Item::Bad {
                            position,
                            line,
                            input: input(),
                            reason: format!("{k}: every attribute needs a type and a value"),
                        };
                    };
                    if t == "Description" && rec.description.is_none() {
                        rec.description = Some(val);
                    } else {
                        rec.attributes.push((t, val));
                    }
                }
            }
            (Some(f), v) => match scalar(v) {
                // Tags in one string are split by `set`.
                Some(s) => rec.set(f, s),
                None => {
                    return Item::Bad {
                        position,
                        line,
                        input: input(),
                        reason: format!("field {k:?} must be a string or a number"),
                    };
                }
            },
            (None, _) => {}
        }
    }
    Item::Row(rec)
}

pub fn read_lines(
    mut input: Box<dyn BufRead>,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    let mut buf = Vec::with_capacity(512);
    let mut line = 0u64;
    loop {
        let fits = match read_line_limited(&mut input, &mut buf, opts.max_line_bytes) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => return Err(super::broken(line + 1, &e)),
        };
        line += 1;
        let bad = |input: String, reason: String| Item::Bad {
            position: line,
            line,
            input,
            reason,
        };
        let item = if !fits {
            bad(
                String::new(),
                format!(
                    "line longer than {} bytes (watch.max_line_bytes)",
                    opts.max_line_bytes
                ),
            )
        } else {
            let bytes = if line == 1 {
                buf.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&buf)
            } else {
                &buf[..]
            };
            match std::str::from_utf8(bytes) {
                Err(_) => bad(super::echo_bytes(bytes), "invalid UTF-8".into()),
                Ok(s) if s.trim().is_empty() || s.trim_start().starts_with('#') => continue,
                Ok(s) => match serde_json::from_str::<Value>(s) {
                    Ok(v) => element(v, line, line, opts),
                    Err(e) => bad(
                        super::cut(s),
                        format!("invalid JSON: {}", super::echo_display(&e)),
                    ),
                },
            }
        };
        if sink(item).is_break() {
            return Err(FeedError::Stopped);
        }
    }
}
