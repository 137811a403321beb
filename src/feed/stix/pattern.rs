//! STIX 2.1 patterns (STIX 2.1 chapter 9): a parser to an AST, and the
//! indicator values tc-ingest takes out of one.
//!
//! [`parse`] is a hand-written lexer and recursive-descent parser for the
//! OASIS grammar `pattern_grammar/STIXPattern.g4` (cti-stix2-json-schemas),
//! from which cti-pattern-validator generates its parser, and follows it:
//! upper-case, case-sensitive keywords (`true`/`false` lower case);
//! `FOLLOWEDBY` binds weakest, then `OR`, then `AND`; qualifiers (`WITHIN n
//! SECONDS`, `REPEATS n TIMES`, `START t'..' STOP t'..'`) bind to the
//! observation before them; inside brackets `OR` binds weaker than `AND`;
//! property names with a `-` must be quoted (`hashes.'SHA-256'`); strings
//! escape only `\'` and `\\`; `/* */` and `//` comments are skipped. Nesting
//! of parentheses and brackets stops at [`MAX_DEPTH`] levels with a
//! [`SyntaxError`], so the stack never overflows; parsing is linear in the
//! input and never panics. The AST prints (`Display`) as pattern text that
//! parses back to an equal AST.
//!
//! [`extract`] reads a pattern for tc-ingest:
//! - Observations joined only by `OR` give the union of their values;
//!   `FOLLOWEDBY`, `AND` between observations or any qualifier refuse the
//!   whole pattern (`found` empty, the constructs in `unsupported`).
//! - Inside an observation the comparisons are an OR of AND-groups (an `OR`
//!   inside an `AND` is distributed; `IN` on a supported property is an OR
//!   of `=`), each group taken or named on its own.
//! - One comparison is taken when its property is supported and its operator
//!   is `=` (`IN`; `ISSUBSET` on an address gives a CIDR); `NOT`, `!=`,
//!   ordering, `LIKE`, `MATCHES`, `ISSUPERSET`, `EXISTS` are named with the
//!   property ("LIKE on url:value"), other properties as "the path ..".
//! - A group on `file` merges its MD5, SHA-1 and SHA-256 `=` (hash names
//!   compared without case or `-`) into one File (without one: unsupported);
//!   one on `windows-registry-key` takes its `key` (needed), `values[..].name`
//!   and `values[..].data_type`. Their other comparisons are `ignored`; two
//!   values for one of these are a conflict. Other groups of several
//!   comparisons, or mixing object types, are unsupported, and so is an
//!   observation whose distributed AND-groups pass 2^20 comparisons.
//!
//! Files: this one (the AST and its printing), `pattern_parse.rs` (lexer and
//! parser), `pattern_extract.rs` (extraction), `pattern_tests.rs` and
//! `pattern_tests_gen.rs` (tests).

use std::fmt::{self, Write as _};

#[path = "pattern_extract.rs"]
mod extraction;
#[path = "pattern_parse.rs"]
mod parser;

pub use extraction::{Extraction, Found, MAX_FOUND, extract};
pub use parser::parse;

/// Deepest nesting of parentheses and brackets that [`parse`] accepts.
pub const MAX_DEPTH: usize = 200;

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern(pub ObservationExpr);

/// Observation expressions. A chain (`FollowedBy`, `Or`, `And`) holds two or
/// more items as written; a parenthesised chain in it stays one item.
#[derive(Debug, Clone, PartialEq)]
pub enum ObservationExpr {
    Observation(ComparisonExpr),
    FollowedBy(Vec<ObservationExpr>),
    Or(Vec<ObservationExpr>),
    And(Vec<ObservationExpr>),
    /// Qualifiers in order, on an expression that is not `Qualified`.
    Qualified(Box<ObservationExpr>, Vec<Qualifier>),
}

/// `WITHIN n SECONDS`, `REPEATS n TIMES`, `START t'..' STOP t'..'`.
#[derive(Debug, Clone, PartialEq)]
pub enum Qualifier {
    Within(String),
    Repeats(String),
    StartStop(String, String),
}

/// Comparisons inside brackets; chains as in [`ObservationExpr`].
#[derive(Debug, Clone, PartialEq)]
pub enum ComparisonExpr {
    Or(Vec<ComparisonExpr>),
    And(Vec<ComparisonExpr>),
    Comparison(Comparison),
}

/// `path [NOT] op value`, `path [NOT] IN (values)` or `[NOT] EXISTS path`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub path: ObjectPath,
    pub negated: bool,
    pub op: Op,
    /// One value; for `IN` the set; for `EXISTS` none.
    pub values: Vec<Literal>,
}

/// Comparison operators; `==` reads as `Eq`, `<>` as `Ne`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Like,
    Matches,
    IsSubset,
    IsSuperset,
    Exists,
}

impl Op {
    /// The operator as written in a pattern.
    pub fn text(self) -> &'static str {
        const TEXT: [&str; 12] = [
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "IN",
            "LIKE",
            "MATCHES",
            "ISSUBSET",
            "ISSUPERSET",
            "EXISTS",
        ];
        TEXT[self as usize]
    }
}

/// `type:first.key[0].'quoted key'[*]`; the first step is a key.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPath {
    pub object_type: String,
    pub steps: Vec<PathStep>,
}

/// Keys are unquoted; indexes as written without a `+`.
#[derive(Debug, Clone, PartialEq)]
pub enum PathStep {
    Key(String),
    Index(String),
    AnyIndex,
}

/// Strings unescaped; the rest as written, without `+`, `h'`, `b'`, `t'`.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(String),
    Float(String),
    Bool(bool),
    Hex(String),
    Binary(String),
    Timestamp(String),
}

/// Where and why a pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 0-based index, in characters, of where the problem was found.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// The grammar's keywords: never identifiers or unquoted property names.
const KEYWORDS: [&str; 17] = [
    "AND",
    "OR",
    "NOT",
    "FOLLOWEDBY",
    "LIKE",
    "MATCHES",
    "ISSUPERSET",
    "ISSUBSET",
    "EXISTS",
    "LAST",
    "IN",
    "START",
    "STOP",
    "SECONDS",
    "WITHIN",
    "REPEATS",
    "TIMES",
];

/// At most 40 characters of `s`, for messages.
fn clip(s: &str) -> String {
    let short: String = s.chars().take(40).collect();
    if short.len() < s.len() {
        short + "..."
    } else {
        short
    }
}

// ---- Printing ----

/// A string literal, quoted and escaped.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('\'')?;
        for c in self.0.chars() {
            if c == '\'' || c == '\\' {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('\'')
    }
}

/// Writes `items` joined by `sep`, in parentheses those `paren` picks.
fn join<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: &[T],
    sep: &str,
    paren: fn(&T) -> bool,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        f.write_str(if i == 0 { "" } else { sep })?;
        if paren(item) {
            write!(f, "({item})")?
        } else {
            write!(f, "{item}")?
        }
    }
    Ok(())
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for ObservationExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ObservationExpr as O;
        match self {
            O::Observation(c) => write!(f, "[{c}]"),
            O::FollowedBy(v) => join(f, v, " FOLLOWEDBY ", |e| matches!(e, O::FollowedBy(_))),
            O::Or(v) => join(f, v, " OR ", |e| matches!(e, O::FollowedBy(_) | O::Or(_))),
            O::And(v) => join(f, v, " AND ", |e| {
                matches!(e, O::FollowedBy(_) | O::Or(_) | O::And(_))
            }),
            O::Qualified(base, quals) => {
                join(f, std::slice::from_ref(&**base), "", |e| {
                    !matches!(e, O::Observation(_))
                })?;
                quals.iter().try_for_each(|q| match q {
                    Qualifier::Within(n) => write!(f, " WITHIN {n} SECONDS"),
                    Qualifier::Repeats(n) => write!(f, " REPEATS {n} TIMES"),
                    Qualifier::StartStop(a, b) => write!(f, " START t'{a}' STOP t'{b}'"),
                })
            }
        }
    }
}

impl fmt::Display for ComparisonExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Or(v) => join(f, v, " OR ", |e| matches!(e, Self::Or(_))),
            Self::And(v) => join(f, v, " AND ", |e| !matches!(e, Self::Comparison(_))),
            Self::Comparison(c) => c.fmt(f),
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, not, op) = (
            &self.path,
            if self.negated { "NOT " } else { "" },
            self.op.text(),
        );
        match self.op {
            Op::Exists => write!(f, "{not}EXISTS {path}"),
            Op::In => {
                write!(f, "{path} {not}IN (")?;
                join(f, &self.values, ", ", |_| false)?;
                f.write_char(')')
            }
            _ => {
                write!(f, "{path} {not}{op}")?;
                self.values.iter().try_for_each(|v| write!(f, " {v}"))
            }
        }
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.object_type)?;
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                PathStep::Key(k) => {
                    f.write_char(if i == 0 { ':' } else { '.' })?;
                    let mut b = k.bytes();
                    let plain = b
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
                        && !KEYWORDS.contains(&k.as_str())
                        && k != "true"
                        && k != "false";
                    if plain {
                        f.write_str(k)?
                    } else {
                        Quoted(k).fmt(f)?
                    }
                }
                PathStep::Index(n) => write!(f, "{}[{n}]", if i == 0 { ":" } else { "" })?,
                PathStep::AnyIndex => write!(f, "{}[*]", if i == 0 { ":" } else { "" })?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => Quoted(s).fmt(f),
            Self::Int(s) | Self::Float(s) => f.write_str(s),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Hex(s) => write!(f, "h'{s}'"),
            Self::Binary(s) => write!(f, "b'{s}'"),
            Self::Timestamp(s) => write!(f, "t'{s}'"),
        }
    }
}

#[cfg(test)]
#[path = "pattern_tests.rs"]
mod tests;
