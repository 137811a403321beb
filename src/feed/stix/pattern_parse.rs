//! The lexer and recursive-descent parser behind [`parse`](super::parse).

use super::{
    Comparison, ComparisonExpr, KEYWORDS, Literal, MAX_DEPTH, ObjectPath, ObservationExpr, Op,
    PathStep, Pattern, Qualifier, SyntaxError, clip,
};

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        offset,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    /// One of `[ ] ( ) : . , *`
    Punct(u8),
    Op(Op),
    Kw(&'a str),
    Ident(&'a str),
    Lit(Literal),
    End,
}

fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::Punct(c) => format!("'{}'", char::from(*c)),
        Tok::Op(op) => format!("'{}'", op.text()),
        Tok::Kw(w) | Tok::Ident(w) => clip(w),
        Tok::Lit(lit) => clip(&lit.to_string()),
        Tok::End => "the end of the pattern".into(),
    }
}

fn valid_base64(s: &str) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    let body = s.trim_end_matches('=').as_bytes();
    !s.is_empty() && s.len().is_multiple_of(4) && s.len() - body.len() <= 2 && body.iter().all(b64)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with the grammar's ranges.
fn valid_timestamp(s: &str) -> bool {
    let Some(head) = s.as_bytes().get(..19) else {
        return false;
    };
    let fits = |(c, k): (&u8, &u8)| {
        if *k == b'0' {
            c.is_ascii_digit()
        } else {
            c == k
        }
    };
    if !head.iter().zip(b"0000-00-00T00:00:00").all(fits) {
        return false;
    }
    let num = |i: usize| u32::from(head[i] - b'0') * 10 + u32::from(head[i + 1] - b'0');
    let ranges = [
        (5, 1, 12),
        (8, 1, 31),
        (11, 0, 23),
        (14, 0, 59),
        (17, 0, 60),
    ];
    let tail = match s[19..].strip_prefix('.') {
        Some(f) if f.len() > 1 => f.trim_start_matches(|c: char| c.is_ascii_digit()),
        Some(_) => "",
        None => &s[19..],
    };
    tail == "Z"
        && ranges
            .iter()
            .all(|&(i, lo, hi)| (lo..=hi).contains(&num(i)))
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// Skips whitespace (the grammar's is Unicode White_Space) and comments.
    fn skip_trivia(&mut self) -> Result<(), SyntaxError> {
        loop {
            let rest = &self.src[self.pos..];
            if let Some(c) = rest.chars().next().filter(|c| c.is_whitespace()) {
                self.pos += c.len_utf8();
            } else if let Some(body) = rest.strip_prefix("/*") {
                let Some(end) = body.find("*/") else {
                    return err(self.pos, "unterminated comment");
                };
                self.pos += end + 4;
            } else if rest.starts_with("//") {
                self.pos += rest.find(['\n', '\r']).unwrap_or(rest.len());
            } else {
                return Ok(());
            }
        }
    }

    /// The next token and the byte offset it starts at.
    fn next_token(&mut self) -> Result<(usize, Tok<'a>), SyntaxError> {
        self.skip_trivia()?;
        let (at, b) = (self.pos, self.src.as_bytes());
        let Some(&c) = b.get(at) else {
            return Ok((at, Tok::End));
        };
        let op = |op| Tok::Op(op);
        let (len, tok) = match (c, b.get(at + 1).copied()) {
            (b'[' | b']' | b'(' | b')' | b':' | b',' | b'*', _) => (1, Tok::Punct(c)),
            (b'=', Some(b'=')) => (2, op(Op::Eq)),
            (b'!', Some(b'=')) | (b'<', Some(b'>')) => (2, op(Op::Ne)),
            (b'<', Some(b'=')) => (2, op(Op::Le)),
            (b'>', Some(b'=')) => (2, op(Op::Ge)),
            (b'=', _) => (1, op(Op::Eq)),
            (b'<', _) => (1, op(Op::Lt)),
            (b'>', _) => (1, op(Op::Gt)),
            (b'\'', _) => return Ok((at, Tok::Lit(Literal::Str(self.string()?)))),
            (b'+' | b'-' | b'.' | b'0'..=b'9', _) => return self.number(),
            (b'h' | b'b' | b't', Some(b'\'')) => return self.prefixed(c),
            (b'a'..=b'z' | b'A'..=b'Z' | b'_', _) => {
                let word = |c: &&u8| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-';
                let w = &self.src[at..at + b[at..].iter().take_while(word).count()];
                let tok = match w {
                    "true" | "false" => Tok::Lit(Literal::Bool(w == "true")),
                    _ if KEYWORDS.contains(&w) => Tok::Kw(w),
                    _ => Tok::Ident(w),
                };
                (w.len(), tok)
            }
            _ => {
                return err(
                    at,
                    format!(
                        "unexpected character {:?}",
                        self.src[at..].chars().next().unwrap_or_default()
                    ),
                );
            }
        };
        self.pos += len;
        Ok((at, tok))
    }

    /// Integers `[+-]?(0|[1-9][0-9]*)`, floats `[+-]?[0-9]*.[0-9]+`, or `.`.
    fn number(&mut self) -> Result<(usize, Tok<'a>), SyntaxError> {
        let (at, b) = (self.pos, self.src.as_bytes());
        let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        let start = at + usize::from(matches!(b[at], b'+' | b'-'));
        let end = start + digits(start);
        let sign = if b[at] == b'-' { "-" } else { "" };
        if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
            self.pos = end + 1 + digits(end + 1);
            return Ok((
                at,
                Tok::Lit(Literal::Float(format!(
                    "{sign}{}",
                    &self.src[start..self.pos]
                ))),
            ));
        }
        if end == start && b[at] == b'.' {
            self.pos += 1;
            return Ok((at, Tok::Punct(b'.')));
        } else if end == start || b[start] == b'0' && end - start > 1 {
            return err(at, "malformed number");
        }
        self.pos = end;
        Ok((
            at,
            Tok::Lit(Literal::Int(format!("{sign}{}", &self.src[start..end]))),
        ))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let (at, mut out) = (self.pos, String::new());
        let mut i = at + 1;
        loop {
            let rest = &self.src[i..];
            let Some(j) = rest.find(['\'', '\\']) else {
                return err(at, "unterminated string");
            };
            out.push_str(&rest[..j]);
            i += j;
            if rest.as_bytes()[j] == b'\'' {
                self.pos = i + 1;
                return Ok(out);
            }
            match self.src.as_bytes().get(i + 1) {
                Some(&c @ (b'\'' | b'\\')) => out.push(char::from(c)),
                Some(_) => return err(i, "a backslash in a string must be followed by ' or \\"),
                None => return err(at, "unterminated string"),
            }
            i += 2;
        }
    }

    /// `h'..'`, `b'..'` or `t'..'`.
    fn prefixed(&mut self, kind: u8) -> Result<(usize, Tok<'a>), SyntaxError> {
        let at = self.pos;
        let Some(len) = self.src[at + 2..].find('\'') else {
            return err(at, "unterminated literal");
        };
        let body = &self.src[at + 2..at + 2 + len];
        let (ok, lit, what): (bool, fn(String) -> Literal, &str) = match kind {
            b'h' => (
                len.is_multiple_of(2) && body.bytes().all(|c| c.is_ascii_hexdigit()),
                Literal::Hex,
                "hex literal",
            ),
            b'b' => (valid_base64(body), Literal::Binary, "base64 literal"),
            _ => (
                valid_timestamp(body),
                Literal::Timestamp,
                "timestamp (YYYY-MM-DDTHH:MM:SS[.s]Z)",
            ),
        };
        if !ok {
            return err(at, format!("malformed {what}"));
        }
        self.pos = at + 3 + len;
        Ok((at, Tok::Lit(lit(body.to_string()))))
    }
}

/// Parses a STIX 2.1 pattern.
pub fn parse(input: &str) -> Result<Pattern, SyntaxError> {
    let mut p = Parser {
        lex: Lexer { src: input, pos: 0 },
        tok: Tok::End,
        at: 0,
        depth: 0,
    };
    let parsed = p
        .advance()
        .and_then(|_| p.observations())
        .and_then(|expr| match p.tok {
            Tok::End => Ok(Pattern(expr)),
            _ => p.unexpected("FOLLOWEDBY, OR, AND, a qualifier or the end"),
        });
    parsed.map_err(|mut e| {
        e.offset = input
            .get(..e.offset)
            .map_or(e.offset, |s| s.chars().count());
        e
    })
}

struct Parser<'a> {
    lex: Lexer<'a>,
    /// The current token, and the byte offset it starts at.
    tok: Tok<'a>,
    at: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    /// Moves to the next token and returns the current one.
    fn advance(&mut self) -> Result<Tok<'a>, SyntaxError> {
        let (at, tok) = self.lex.next_token()?;
        self.at = at;
        Ok(std::mem::replace(&mut self.tok, tok))
    }

    fn unexpected<T>(&self, wanted: &str) -> Result<T, SyntaxError> {
        err(
            self.at,
            format!("expected {wanted}, found {}", describe(&self.tok)),
        )
    }

    /// Moves past the current token if it is `tok`.
    fn eat(&mut self, tok: &Tok<'_>) -> Result<bool, SyntaxError> {
        let here = self.tok == *tok;
        if here {
            self.advance()?;
        }
        Ok(here)
    }

    fn expect(&mut self, tok: &Tok<'_>, wanted: &str) -> Result<(), SyntaxError> {
        if self.eat(tok)? {
            Ok(())
        } else {
            self.unexpected(wanted)
        }
    }

    /// The current token through `pick`, moving past it; else an error.
    fn take<T>(
        &mut self,
        wanted: &str,
        pick: fn(Tok<'a>) -> Result<T, Tok<'a>>,
    ) -> Result<T, SyntaxError> {
        let at = self.at;
        pick(self.advance()?)
            .or_else(|tok| err(at, format!("expected {wanted}, found {}", describe(&tok))))
    }

    /// Steps into the current `(` or `[`.
    fn open(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(self.at, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.advance().map(drop)
    }

    /// Steps past the `close` of an `open`.
    fn close(&mut self, close: u8) -> Result<(), SyntaxError> {
        self.depth -= 1;
        if self.eat(&Tok::Punct(close))? {
            return Ok(());
        }
        self.unexpected(if close == b']' { "']'" } else { "')'" })
    }

    /// The keyword of `ops` that the current token is.
    fn level(&self, ops: &[&str]) -> Option<usize> {
        match self.tok {
            Tok::Kw(w) => ops.iter().position(|op| *op == w),
            _ => None,
        }
    }

    /// Operands joined by the keywords `ops` (weakest first) as n-ary chains,
    /// built with a stack per level rather than a call per level.
    fn chains<T, const N: usize>(
        &mut self,
        ops: [&str; N],
        operand: fn(&mut Self) -> Result<T, SyntaxError>,
        chain: fn(usize, Vec<T>) -> T,
    ) -> Result<T, SyntaxError> {
        let mut open: [Vec<T>; N] = std::array::from_fn(|_| Vec::new());
        let mut current = operand(self)?;
        loop {
            let level = self.level(&ops);
            current = close_chains(&mut open, level.map_or(0, |l| l + 1), current, chain);
            let Some(level) = level else {
                return Ok(current);
            };
            self.advance().map(drop)?;
            open[level].push(current);
            current = operand(self)?;
        }
    }

    fn observations(&mut self) -> Result<ObservationExpr, SyntaxError> {
        self.chains(["FOLLOWEDBY", "OR", "AND"], Self::qualified, |l, items| {
            [
                ObservationExpr::FollowedBy,
                ObservationExpr::Or,
                ObservationExpr::And,
            ][l](items)
        })
    }

    fn qualified(&mut self) -> Result<ObservationExpr, SyntaxError> {
        let (bracket, close) = match self.tok {
            Tok::Punct(b'[') => (true, b']'),
            Tok::Punct(b'(') => (false, b')'),
            _ => return self.unexpected("'[' or '('"),
        };
        self.open()?;
        let expr = if bracket {
            ObservationExpr::Observation(self.comparisons()?)
        } else {
            self.observations()?
        };
        self.close(close)?;
        self.qualifiers(expr)
    }

    fn qualifiers(&mut self, mut expr: ObservationExpr) -> Result<ObservationExpr, SyntaxError> {
        let mut quals = Vec::new();
        loop {
            quals.push(match self.tok {
                Tok::Kw("WITHIN") => Qualifier::Within(self.count(true, "SECONDS")?),
                Tok::Kw("REPEATS") => Qualifier::Repeats(self.count(false, "TIMES")?),
                Tok::Kw("START") => {
                    self.advance()?;
                    let start = self.take("a timestamp", timestamp)?;
                    self.expect(&Tok::Kw("STOP"), "STOP")?;
                    Qualifier::StartStop(start, self.take("a timestamp", timestamp)?)
                }
                _ => break,
            });
        }
        match &mut expr {
            _ if quals.is_empty() => {}
            ObservationExpr::Qualified(_, first) => first.append(&mut quals),
            _ => expr = ObservationExpr::Qualified(Box::new(expr), quals),
        }
        Ok(expr)
    }

    /// After WITHIN or REPEATS: a positive number (`float`: or a float), `unit`.
    fn count(&mut self, float: bool, unit: &str) -> Result<String, SyntaxError> {
        self.advance()?;
        let at = self.at;
        let n = match self.take("a number", literal)? {
            Literal::Int(n) if !n.starts_with('-') => n,
            Literal::Float(n) if float && !n.starts_with('-') => n,
            _ => return err(at, format!("expected a positive number before {unit}")),
        };
        self.expect(&Tok::Kw(unit), unit)?;
        Ok(n)
    }

    fn comparisons(&mut self) -> Result<ComparisonExpr, SyntaxError> {
        self.chains(["OR", "AND"], Self::prop_test, |l, items| {
            [ComparisonExpr::Or, ComparisonExpr::And][l](items)
        })
    }

    fn prop_test(&mut self) -> Result<ComparisonExpr, SyntaxError> {
        if self.tok != Tok::Punct(b'(') {
            return self.comparison().map(ComparisonExpr::Comparison);
        }
        self.open()?;
        let expr = self.comparisons()?;
        self.close(b')')?;
        Ok(expr)
    }

    fn comparison(&mut self) -> Result<Comparison, SyntaxError> {
        let (path, negated, op, values) = match self.tok {
            Tok::Kw("NOT" | "EXISTS") => {
                let negated = self.eat(&Tok::Kw("NOT"))?;
                self.expect(
                    &Tok::Kw("EXISTS"),
                    "EXISTS (NOT before an operator follows the path)",
                )?;
                (self.object_path()?, negated, Op::Exists, Vec::new())
            }
            Tok::Ident(_) => {
                let path = self.object_path()?;
                let negated = self.eat(&Tok::Kw("NOT"))?;
                let (op, values) = self.test()?;
                (path, negated, op, values)
            }
            _ => return self.unexpected("a comparison"),
        };
        Ok(Comparison {
            path,
            negated,
            op,
            values,
        })
    }

    /// The operator and value(s) after a path.
    fn test(&mut self) -> Result<(Op, Vec<Literal>), SyntaxError> {
        let op = self.take("an operator", |t| match t {
            Tok::Op(op) => Ok(op),
            Tok::Kw("IN") => Ok(Op::In),
            Tok::Kw("LIKE") => Ok(Op::Like),
            Tok::Kw("MATCHES") => Ok(Op::Matches),
            Tok::Kw("ISSUBSET") => Ok(Op::IsSubset),
            Tok::Kw("ISSUPERSET") => Ok(Op::IsSuperset),
            t => Err(t),
        })?;
        if op == Op::In {
            return Ok((op, self.set()?));
        }
        let at = self.at;
        let value = self.take("a value", literal)?;
        let fits = match value {
            Literal::Str(_) => true,
            Literal::Bool(_) => matches!(op, Op::Eq | Op::Ne),
            _ => matches!(op, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge),
        };
        if !fits {
            return err(
                at,
                format!("{} does not take {}", op.text(), clip(&value.to_string())),
            );
        }
        Ok((op, vec![value]))
    }

    /// `( value, .. )` after IN.
    fn set(&mut self) -> Result<Vec<Literal>, SyntaxError> {
        self.expect(&Tok::Punct(b'('), "'(' after IN")?;
        let mut set = Vec::new();
        if !self.eat(&Tok::Punct(b')'))? {
            set.push(self.take("a value", literal)?);
            while self.eat(&Tok::Punct(b','))? {
                set.push(self.take("a value", literal)?);
            }
            self.expect(&Tok::Punct(b')'), "',' or ')'")?;
        }
        Ok(set)
    }

    fn object_path(&mut self) -> Result<ObjectPath, SyntaxError> {
        let object_type = self.take("an object type", |t| match t {
            Tok::Ident(s) => Ok(s.to_string()),
            t => Err(t),
        })?;
        self.expect(&Tok::Punct(b':'), "':'")?;
        let mut steps = vec![self.take(KEY, key)?];
        loop {
            if self.eat(&Tok::Punct(b'.'))? {
                steps.push(self.take(KEY, key)?);
            } else if self.eat(&Tok::Punct(b'['))? {
                steps.push(self.take("an index or '*'", |t| match t {
                    Tok::Lit(Literal::Int(n)) => Ok(PathStep::Index(n)),
                    Tok::Punct(b'*') => Ok(PathStep::AnyIndex),
                    t => Err(t),
                })?);
                self.expect(&Tok::Punct(b']'), "']'")?;
            } else {
                return Ok(ObjectPath { object_type, steps });
            }
        }
    }
}

/// Closes the chains of `open` from level `from` on, around `current`.
fn close_chains<T>(
    open: &mut [Vec<T>],
    from: usize,
    mut current: T,
    chain: fn(usize, Vec<T>) -> T,
) -> T {
    for l in (from..open.len()).rev() {
        if !open[l].is_empty() {
            let mut items = std::mem::take(&mut open[l]);
            items.push(current);
            current = chain(l, items);
        }
    }
    current
}

const KEY: &str = "a property name (quoted if it has '-')";

fn key(tok: Tok<'_>) -> Result<PathStep, Tok<'_>> {
    match tok {
        Tok::Ident(s) if !s.contains('-') => Ok(PathStep::Key(s.to_string())),
        Tok::Lit(Literal::Str(s)) => Ok(PathStep::Key(s)),
        t => Err(t),
    }
}

fn literal(tok: Tok<'_>) -> Result<Literal, Tok<'_>> {
    if let Tok::Lit(lit) = tok {
        Ok(lit)
    } else {
        Err(tok)
    }
}

fn timestamp(tok: Tok<'_>) -> Result<String, Tok<'_>> {
    if let Tok::Lit(Literal::Timestamp(t)) = tok {
        Ok(t)
    } else {
        Err(tok)
    }
}
