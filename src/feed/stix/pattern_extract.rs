//! [`extract`](super::extract): the indicator values of a parsed pattern.

use std::collections::HashSet;

use super::{
    Comparison, ComparisonExpr, Literal, ObjectPath, ObservationExpr, Op, PathStep, Pattern,
    Qualifier, clip,
};

/// Most comparisons the AND-groups of one observation may hold once `OR`s
/// inside `AND`s are distributed; past it the observation is unsupported.
const MAX_ATOMS: usize = 1 << 20;

/// What a pattern gives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extraction {
    /// One per supported comparison (or AND-group on one object), in pattern order.
    pub found: Vec<Found>,
    /// Each unsupported construct met (once), named for a person, such as
    /// "LIKE on url:value", "FOLLOWEDBY" or "the path process:name".
    pub unsupported: Vec<String>,
    /// Comparisons ignored inside a supported AND-group (such as
    /// "file:name"), one per comparison: counted, not an error.
    pub ignored: Vec<String>,
}

/// An indicator value; strings as the pattern wrote them.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// `ipv4-addr:value` / `ipv6-addr:value` `=` (or IN member): may be a CIDR.
    Address(String),
    /// ISSUBSET on `ipv4-addr:value` / `ipv6-addr:value`: the network.
    Cidr(String),
    /// `domain-name:value`
    Host(String),
    /// `url:value`
    Url(String),
    /// `email-addr:value`
    Email(String),
    /// `file:hashes` MD5, SHA-1, SHA-256: at least one is `Some`.
    File {
        md5: Option<String>,
        sha1: Option<String>,
        sha256: Option<String>,
    },
    /// `autonomous-system:number` (an integer, or a string of digits) in decimal.
    Asn(String),
    /// `mutex:name`
    Mutex(String),
    /// `windows-registry-key:key`, with `values[..].name` and `values[..].data_type`
    /// from the same AND-group.
    RegistryKey {
        key: String,
        value_name: Option<String>,
        data_type: Option<String>,
    },
    /// `network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'`
    UserAgent(String),
}

/// A supported property.
#[derive(Clone, Copy)]
enum Kind {
    Address,
    /// A property that gives one value, made by the function.
    Value(fn(String) -> Found),
    Asn,
    /// MD5, SHA-1, SHA-256: 0, 1, 2.
    Hash(usize),
    /// key, values[..].name, values[..].data_type: 0, 1, 2.
    Reg(usize),
}

fn kind(path: &ObjectPath) -> Option<Kind> {
    let n = path.steps.len();
    if n > 4 {
        return None;
    }
    let mut keys: [Option<&str>; 4] = [None; 4];
    for (slot, step) in keys.iter_mut().zip(&path.steps) {
        if let PathStep::Key(k) = step {
            *slot = Some(k);
        }
    }
    let hash = |h: &str| {
        let name = h
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase());
        ["MD5", "SHA1", "SHA256"]
            .iter()
            .position(|n| name.clone().eq(n.chars()))
    };
    Some(match (path.object_type.as_str(), &keys[..n]) {
        ("ipv4-addr" | "ipv6-addr", [Some("value")]) => Kind::Address,
        ("domain-name", [Some("value")]) => Kind::Value(Found::Host),
        ("url", [Some("value")]) => Kind::Value(Found::Url),
        ("email-addr", [Some("value")]) => Kind::Value(Found::Email),
        ("mutex", [Some("name")]) => Kind::Value(Found::Mutex),
        ("autonomous-system", [Some("number")]) => Kind::Asn,
        ("file", [Some("hashes"), Some(h)]) => Kind::Hash(hash(h)?),
        ("windows-registry-key", [Some("key")]) => Kind::Reg(0),
        ("windows-registry-key", [Some("values"), None, Some("name")]) => Kind::Reg(1),
        ("windows-registry-key", [Some("values"), None, Some("data_type")]) => Kind::Reg(2),
        (
            "network-traffic",
            [
                Some("extensions"),
                Some("http-request-ext"),
                Some("request_header"),
                Some(h),
            ],
        ) if h.eq_ignore_ascii_case("User-Agent") => Kind::Value(Found::UserAgent),
        _ => return None,
    })
}

/// One comparison of an AND-group: its `=` value (one member of an `IN`),
/// its `ISSUBSET` network, or neither.
#[derive(Clone, Copy)]
struct Atom<'a>(&'a Comparison, Option<&'a Literal>, Option<&'a str>);

/// An OR of AND-groups, with the number of atoms in all.
struct Dnf<'a>(Vec<Vec<Atom<'a>>>, usize);

/// The comparisons as an OR of AND-groups; `None` past [`MAX_ATOMS`].
fn expand(expr: &ComparisonExpr) -> Option<Dnf<'_>> {
    let items = match expr {
        ComparisonExpr::Comparison(c) => {
            let groups: Vec<_> = match (c.op, c.values.as_slice()) {
                _ if c.negated => vec![vec![Atom(c, None, None)]],
                (Op::Eq, [v]) => vec![vec![Atom(c, Some(v), None)]],
                (Op::In, set) if !set.is_empty() && kind(&c.path).is_some() => {
                    set.iter().map(|v| vec![Atom(c, Some(v), None)]).collect()
                }
                (Op::IsSubset, [Literal::Str(s)]) => vec![vec![Atom(c, None, Some(s))]],
                _ => vec![vec![Atom(c, None, None)]],
            };
            let n = groups.len();
            return Some(Dnf(groups, n));
        }
        ComparisonExpr::Or(items) | ComparisonExpr::And(items) => items,
    };
    let mut out: Option<Dnf<'_>> = None;
    for item in items {
        let Dnf(groups, atoms) = expand(item)?;
        out = Some(match out {
            None => Dnf(groups, atoms),
            Some(Dnf(mut all, n)) if matches!(expr, ComparisonExpr::Or(_)) => {
                all.extend(groups);
                Dnf(all, n + atoms)
            }
            Some(left) => conjoin(left, &Dnf(groups, atoms))?,
        });
    }
    out
}

/// `left AND right`, distributed.
fn conjoin<'a>(Dnf(mut left, n): Dnf<'a>, right: &Dnf<'a>) -> Option<Dnf<'a>> {
    let atoms = right
        .1
        .checked_mul(left.len())?
        .checked_add(n.checked_mul(right.0.len())?)?;
    if atoms > MAX_ATOMS {
        return None;
    }
    if let [one] = right.0.as_slice() {
        left.iter_mut().for_each(|g| g.extend_from_slice(one));
        return Some(Dnf(left, atoms));
    }
    let groups = left
        .iter()
        .flat_map(|l| right.0.iter().map(move |r| [l.as_slice(), r].concat()));
    Some(Dnf(groups.collect(), atoms))
}

/// The indicator values of a parsed pattern.
pub fn extract(pattern: &Pattern) -> Extraction {
    let mut out = Out::default();
    let mut observations = Vec::new();
    let mut refused = Vec::new();
    collect(&pattern.0, &mut observations, &mut refused);
    if !refused.is_empty() {
        refused.into_iter().for_each(|name| out.refuse(name));
        return out.ex;
    }
    for obs in observations {
        match expand(obs) {
            Some(dnf) => {
                for group in &dnf.0 {
                    if out.ex.found.len() >= MAX_FOUND {
                        out.refuse(format!("more than {MAX_FOUND} values in one pattern"));
                        return out.ex;
                    }
                    extract_group(group, &mut out);
                }
            }
            None => out.refuse(format!(
                "more than {MAX_ATOMS} comparisons once OR and IN are expanded"
            )),
        }
    }
    out.ex
}

/// The most values one pattern gives (each may hold a copy of a long
/// string): past it the rest are refused, not built.
pub const MAX_FOUND: usize = 4095;

/// An extraction being made: each unsupported construct is named once.
#[derive(Default)]
struct Out {
    ex: Extraction,
    named: HashSet<String>,
}

impl Out {
    fn refuse(&mut self, name: String) {
        if !self.named.contains(&name) {
            self.named.insert(name.clone());
            self.ex.unsupported.push(name);
        }
    }
}

/// The observations of an OR of observations, naming what else is met.
fn collect<'a>(
    expr: &'a ObservationExpr,
    out: &mut Vec<&'a ComparisonExpr>,
    refused: &mut Vec<String>,
) {
    let items = match expr {
        ObservationExpr::Observation(c) => return out.push(c),
        ObservationExpr::Or(items) => items,
        ObservationExpr::FollowedBy(items) | ObservationExpr::And(items) => {
            let and = matches!(expr, ObservationExpr::And(_));
            refused.push(
                if and {
                    "AND between observations"
                } else {
                    "FOLLOWEDBY"
                }
                .into(),
            );
            items
        }
        ObservationExpr::Qualified(base, quals) => {
            collect(base, out, refused);
            return refused.extend(quals.iter().map(|q| match q {
                Qualifier::Within(_) => "WITHIN qualifier".into(),
                Qualifier::Repeats(_) => "REPEATS qualifier".into(),
                Qualifier::StartStop(..) => "START/STOP qualifier".into(),
            }));
        }
    };
    items.iter().for_each(|e| collect(e, out, refused));
}

fn extract_group(group: &[Atom<'_>], out: &mut Out) {
    let Some(Atom(first, ..)) = group.first() else {
        return;
    };
    let ty = first.path.object_type.as_str();
    if group.iter().any(|a| a.0.path.object_type != ty) {
        out.refuse("AND of different object types".into());
    } else if ty == "file" || ty == "windows-registry-key" {
        merge_group(group, ty == "file", out);
    } else if group.len() == 1 || group.iter().all(|a| kind(&a.0.path).is_none()) {
        each_single(group, out);
    } else if group.iter().all(|a| a.0.path == first.path) {
        out.refuse(format!("AND of several {}", first.path));
    } else {
        out.refuse(format!("AND of several {ty} comparisons"));
    }
}

fn each_single(group: &[Atom<'_>], out: &mut Out) {
    for atom in group {
        match single(atom) {
            Ok(found) => out.ex.found.push(found),
            Err(name) => out.refuse(name),
        }
    }
}

/// A group on `file` (slots MD5, SHA-1, SHA-256; one needed) or on
/// `windows-registry-key` (slots key, value name, data type; key needed).
fn merge_group(group: &[Atom<'_>], file: bool, out: &mut Out) {
    let mut slots: [Option<&str>; 3] = [None; 3];
    let mut ignored = Vec::new();
    for &Atom(cmp, value, _) in group {
        let slot = match (kind(&cmp.path), value) {
            (Some(Kind::Hash(i) | Kind::Reg(i)), Some(Literal::Str(s)))
                if !s.is_empty() || i == 1 && !file =>
            {
                Some((i, s.as_str()))
            }
            _ => None,
        };
        match slot.map(|(i, s)| (i, s, slots[i])) {
            None => ignored.push(cmp.path.to_string()),
            Some((_, s, Some(had))) if !had.eq_ignore_ascii_case(s) => {
                return out.refuse(format!("conflicting {}", cmp.path));
            }
            Some((i, s, _)) => slots[i] = Some(s),
        }
    }
    let [a, b, c] = slots.map(|s| s.map(str::to_string));
    out.ex.found.push(match (file, a) {
        (true, a) if a.is_some() || b.is_some() || c.is_some() => Found::File {
            md5: a,
            sha1: b,
            sha256: c,
        },
        (false, Some(key)) => Found::RegistryKey {
            key,
            value_name: b,
            data_type: c,
        },
        _ => return each_single(group, out),
    });
    out.ex.ignored.extend(ignored);
}

/// A group of one comparison: its value, or `Err` naming what is unsupported.
fn single(&Atom(cmp, value, subset): &Atom<'_>) -> Result<Found, String> {
    let path = &cmp.path;
    let Some(kind) = kind(path).filter(|k| !matches!(k, Kind::Reg(1 | 2))) else {
        let hash = path.object_type == "file"
            && path.steps.len() == 2
            && path.steps[0] == PathStep::Key("hashes".into());
        return Err(format!("the {} {path}", if hash { "hash" } else { "path" }));
    };
    let bad = |lit: &Literal| format!("the value {} on {path}", clip(&lit.to_string()));
    let s = match (value, subset, kind) {
        (Some(lit @ (Literal::Int(s) | Literal::Str(s))), _, Kind::Asn) => {
            let digits = !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
            let n = match s.trim_start_matches('0') {
                "" => Some(0),
                n => n.parse::<u32>().ok(),
            };
            return n
                .filter(|_| digits)
                .map(|n| Found::Asn(n.to_string()))
                .ok_or_else(|| bad(lit));
        }
        (Some(Literal::Str(s)), ..) if !s.is_empty() => s.clone(),
        (Some(lit), ..) => return Err(bad(lit)),
        (_, Some(s), Kind::Address) if !s.is_empty() => return Ok(Found::Cidr(s.to_string())),
        _ => {
            let op = if cmp.op == Op::In && cmp.values.is_empty() {
                "empty IN"
            } else {
                cmp.op.text()
            };
            return Err(format!(
                "{}{op} on {path}",
                if cmp.negated { "NOT " } else { "" }
            ));
        }
    };
    Ok(match kind {
        Kind::Address => Found::Address(s),
        Kind::Value(make) => make(s),
        Kind::Hash(i) => {
            let [md5, sha1, sha256] = [0, 1, 2].map(|j| (i == j).then(|| s.clone()));
            Found::File { md5, sha1, sha256 }
        }
        // Reg(0); Asn has returned above.
        Kind::Asn | Kind::Reg(_) => Found::RegistryKey {
            key: s,
            value_name: None,
            data_type: None,
        },
    })
}
