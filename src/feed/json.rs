//! JSON (an array of objects, or an object holding the array under
//! `indicator`, `indicators`, `data` or `items`), read element by element so a
//! 2 GB array never sits in memory; and NDJSON, one object per line.

use std::io::BufRead;

use serde_json::{Map, Value};

use super::jsonscan::{Scanner, Stop};
use super::{
    FeedError, Field, Flow, Item, RawRecord, ReadOptions, field_for_name, read_line_limited,
};

/// Keys of a top-level object under which the array of indicators may be.
const ARRAY_KEYS: [&str; 4] = ["indicator", "indicators", "data", "items"];

/// One JSON document read element by element: the array of indicators at
/// its top, or under one of [`ARRAY_KEYS`] of its top-level object. Each
/// element is held (up to `max_line_bytes`) and parsed alone: an element
/// past the limit, or one that does not parse, is a reject and reading
/// goes on; only a document whose structure breaks fails the file there.
struct ArrayReader<'a, R> {
    scan: Scanner<R>,
    opts: &'a ReadOptions,
    sink: &'a mut dyn FnMut(Item) -> Flow,
    buf: Vec<u8>,
    position: u64,
    found_array: bool,
}

pub fn read_array(
    mut input: Box<dyn BufRead>,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    super::skip_bom(&mut input);
    let mut r = ArrayReader {
        scan: Scanner::new(input, 1),
        opts,
        sink,
        buf: Vec::new(),
        position: 0,
        found_array: false,
    };
    let result = r.document();
    Stop::ended(result, r.scan.line())
}

impl<R: BufRead> ArrayReader<'_, R> {
    fn document(&mut self) -> Result<(), Stop> {
        match self.scan.peek()? {
            // Empty, or whitespace only: no rows.
            None => return Ok(()),
            Some(b'[') => self.elements()?,
            Some(b'{') => self.object()?,
            Some(_) => {}
        }
        if !self.found_array {
            return Err(self
                .scan
                .syntax(format!(
                    "the JSON has no array of indicators (a top-level array, or one under {})",
                    ARRAY_KEYS.join(", ")
                ))
                .into());
        }
        if let Some(b) = self.scan.peek()? {
            return Err(self
                .scan
                .syntax(format!(
                    "unexpected '{}' after the end of the JSON document",
                    b.escape_ascii()
                ))
                .into());
        }
        Ok(())
    }

    /// The top-level object: the first key of [`ARRAY_KEYS`] holding an
    /// array is read; every other value is skipped unheld.
    fn object(&mut self) -> Result<(), Stop> {
        self.scan.expect(b'{', "to open the object")?;
        if self.scan.eat(b'}')? {
            return Ok(());
        }
        loop {
            if self.scan.peek()? != Some(b'"') {
                return Err(self.scan.syntax("expected a key (a string)".into()).into());
            }
            // A key longer than any of ours is skipped like its value.
            let fits = self.scan.value(Some(&mut self.buf), 64)?;
            let key: Option<String> = fits
                .then(|| serde_json::from_slice(&self.buf).ok())
                .flatten();
            self.scan.expect(b':', "after a key")?;
            let wanted = key.is_some_and(|k| ARRAY_KEYS.contains(&k.as_str()));
            if wanted && !self.found_array && self.scan.peek()? == Some(b'[') {
                self.elements()?;
            } else {
                self.scan.value(None, 0)?;
            }
            if self.scan.eat(b',')? {
                continue;
            }
            self.scan
                .expect(b'}', "or ',' after a value in the object")?;
            return Ok(());
        }
    }

    /// The array of indicators, element by element.
    fn elements(&mut self) -> Result<(), Stop> {
        self.scan.expect(b'[', "to open the array")?;
        self.found_array = true;
        loop {
            // `[]`, and a trailing comma before `]`, end the array.
            if self.scan.eat(b']')? {
                return Ok(());
            }
            self.scan.peek()?;
            let line = self.scan.line();
            let fits = self
                .scan
                .value(Some(&mut self.buf), self.opts.max_line_bytes)?;
            self.position += 1;
            let position = self.position;
            let item = if !fits {
                Item::Bad {
                    position,
                    line,
                    input: String::new(),
                    reason: format!(
                        "a JSON element longer than {} bytes (watch.max_line_bytes)",
                        self.opts.max_line_bytes
                    ),
                }
            } else {
                match serde_json::from_slice::<Value>(&self.buf) {
                    Ok(v) => element(v, position, line, self.opts),
                    Err(e) => Item::Bad {
                        position,
                        line,
                        input: super::echo_bytes(&self.buf),
                        reason: format!("invalid JSON: {}", super::echo_display(&e)),
                    },
                }
            };
            if (self.sink)(item).is_break() {
                return Err(Stop::Sink);
            }
            if self.scan.eat(b',')? {
                continue;
            }
            self.scan
                .expect(b']', "or ',' after an element of the array")?;
            return Ok(());
        }
    }
}

/// One array element: an object, or a bare string value.
fn element(v: Value, position: u64, line: u64, opts: &ReadOptions) -> Item {
    match v {
        // A feed's own metadata record (Spamhaus's JSON lists end with one).
        Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("metadata") => {
            Item::Skipped {
                position,
                line,
                what: "metadata".into(),
                withdraws: None,
            }
        }
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
    // A key named by what it holds (`url`, `ip`) gives way to one named as
    // the value (`indicator`, `value`).
    let named_value = m
        .keys()
        .any(|k| field_for_name(k) == Some(Field::Value) && !super::is_value_alias(k));
    for (k, v) in &m {
        let explicit = opts
            .columns
            .iter()
            .find(|(_, col)| col.as_str() == k)
            .map(|(f, _)| *f);
        let field = explicit.or_else(|| {
            field_for_name(k)
                .filter(|f| !opts.columns.contains_key(f))
                .filter(|f| !(named_value && *f == Field::Value && super::is_value_alias(k)))
        });
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
