//! Generated patterns: supported values written in the ways the grammar
//! allows, and random ASTs that must print and parse back.

use super::super::*;
use super::{check_any, file, reg};
use proptest::prelude::*;

/// Pattern text with `\u{1}` where whitespace may go and `\u{2}` where it must.
type Text = (String, Vec<Found>, Vec<String>);

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ./:'\\\\_@é中-]{1,12}"
}

fn hex(len: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&b"0123456789abcdefABCDEF"[..]), len)
        .prop_map(|b| String::from_utf8(b).unwrap_or_default())
}

/// One-value properties: `=`, `==`, `IN`, or ISSUBSET on an address.
fn one_value() -> impl Strategy<Value = Text> {
    type Make = fn(String) -> Found;
    let paths: [(&str, Make); 9] = [
        ("ipv4-addr:value", Found::Address),
        ("ipv6-addr:'value'", Found::Address),
        ("domain-name:value", Found::Host),
        ("url:value", Found::Url),
        ("email-addr:value", Found::Email),
        ("mutex:name", Found::Mutex),
        (
            "network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'",
            Found::UserAgent,
        ),
        (
            "network-traffic:'extensions'.'http-request-ext'.'request_header'.'user-agent'",
            Found::UserAgent,
        ),
        ("ipv4-addr:value", Found::Cidr),
    ];
    (
        0..paths.len(),
        prop::collection::vec(value(), 1..4),
        any::<bool>(),
    )
        .prop_map(move |(i, values, double)| {
            let (path, make) = paths[i];
            let quoted: Vec<String> = values.iter().map(|v| quote(v)).collect();
            let text = match (i, quoted.as_slice()) {
                (8, _) => format!("{path}\u{2}ISSUBSET\u{1}{}", quoted[0]),
                (_, [one]) => format!("{path}\u{1}{}\u{1}{one}", if double { "==" } else { "=" }),
                (_, many) => format!("{path}\u{2}IN\u{1}(\u{1}{}\u{1})", many.join("\u{1},\u{1}")),
            };
            let found = if i == 8 {
                vec![make(values[0].clone())]
            } else {
                values.into_iter().map(make).collect()
            };
            (text, found, Vec::new())
        })
}

fn asn() -> impl Strategy<Value = Text> {
    (any::<u32>(), 0..3usize).prop_map(|(n, form)| {
        let literal: String = [n.to_string(), format!("+{n}"), format!("'00{n}'")][form].clone();
        (
            format!("autonomous-system:number\u{1}=\u{1}{literal}"),
            vec![Found::Asn(n.to_string())],
            Vec::new(),
        )
    })
}

/// An AND-group on one file: hashes under any spelling, plus ignored comparisons.
fn file_group() -> impl Strategy<Value = Text> {
    let names = [
        ["MD5", "md5", "'MD5'", "'md5'", "Md5"],
        ["SHA1", "sha1", "'SHA-1'", "'sha-1'", "'SHA1'"],
        ["SHA256", "sha256", "'SHA-256'", "'sha-256'", "'Sha256'"],
    ];
    let hashes = (
        prop::option::of(hex(32)),
        prop::option::of(hex(40)),
        prop::option::of(hex(64)),
    );
    let hashes = hashes.prop_filter("one hash", |h| {
        h.0.is_some() || h.1.is_some() || h.2.is_some()
    });
    (hashes, [0..5usize, 0..5, 0..5], 0..3usize, any::<bool>()).prop_map(
        move |((a, b, c), spell, extra, reverse)| {
            let mut parts = Vec::new();
            for (i, h) in [&a, &b, &c].into_iter().enumerate() {
                if let Some(h) = h {
                    parts.push(format!(
                        "file:hashes.{}\u{1}=\u{1}'{h}'",
                        names[i][spell[i]]
                    ));
                }
            }
            let extras = [
                "file:name\u{1}=\u{1}'x.exe'",
                "file:size\u{1}>\u{1}5",
                "file:hashes.'SHA-512'\u{1}=\u{1}'ab'",
            ];
            parts.extend(extras[..extra].iter().map(|e| e.to_string()));
            if reverse {
                parts.reverse();
            }
            let mut ignored: Vec<String> = ["file:name", "file:size", "file:hashes.'SHA-512'"]
                [..extra]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if reverse {
                ignored.reverse();
            }
            let found = file(a.as_deref(), b.as_deref(), c.as_deref());
            (parts.join("\u{2}AND\u{2}"), vec![found], ignored)
        },
    )
}

fn registry_group() -> impl Strategy<Value = Text> {
    let parts = (
        value(),
        prop::option::of("[a-zA-Z ]{0,8}"),
        prop::option::of("REG_[A-Z]{2,6}"),
        any::<bool>(),
    );
    parts.prop_map(|(key, name, data_type, star)| {
        let index = if star { "[*]" } else { "[\u{1}0\u{1}]" };
        let mut text = format!("windows-registry-key:key\u{1}=\u{1}{}", quote(&key));
        for (field, v) in [("name", &name), ("data_type", &data_type)] {
            if let Some(v) = v {
                text += &format!(
                    "\u{2}AND\u{2}windows-registry-key:values{index}.{field}\u{1}=\u{1}{}",
                    quote(v)
                );
            }
        }
        (
            text,
            vec![reg(&key, name.as_deref(), data_type.as_deref())],
            Vec::new(),
        )
    })
}

/// Units joined by OR inside brackets, observations joined by OR.
fn supported_pattern() -> impl Strategy<Value = Text> {
    let unit = prop_oneof![3 => one_value(), 1 => asn(), 2 => file_group(), 1 => registry_group()];
    let unit = (unit, any::<bool>())
        .prop_map(|((t, f, i), paren)| (if paren { format!("(\u{1}{t}\u{1})") } else { t }, f, i));
    let observation = prop::collection::vec(unit, 1..4).prop_map(|units| {
        let text = units
            .iter()
            .map(|u| u.0.clone())
            .collect::<Vec<_>>()
            .join("\u{2}OR\u{2}");
        let found: Vec<Found> = units.iter().flat_map(|u| u.1.clone()).collect();
        (
            format!("[\u{1}{text}\u{1}]"),
            found,
            units.into_iter().flat_map(|u| u.2).collect::<Vec<_>>(),
        )
    });
    prop::collection::vec((observation, any::<bool>()), 1..4).prop_map(|obs| {
        let text = obs.iter().map(|(o, paren)| {
            if *paren {
                format!("(\u{1}{}\u{1})", o.0)
            } else {
                o.0.clone()
            }
        });
        let found = obs.iter().flat_map(|o| o.0.1.clone()).collect();
        (
            text.collect::<Vec<_>>().join("\u{2}OR\u{2}"),
            found,
            obs.into_iter().flat_map(|o| o.0.2).collect(),
        )
    })
}

/// Replaces the whitespace marks with picks from `choices`.
fn spaced(text: &str, choices: &[usize]) -> String {
    let optional = ["", " ", "\n", "\t", "/**/", "  "];
    let required = [" ", "\r\n", "\t ", " /* c */ ", "\u{3000}", "// c\n"];
    let mut picks = choices.iter().cycle();
    text.chars()
        .map(|c| match c {
            '\u{1}' => optional[picks.next().copied().unwrap_or(0) % 6].to_string(),
            '\u{2}' => required[picks.next().copied().unwrap_or(0) % 6].to_string(),
            c => c.to_string(),
        })
        .collect()
}

proptest! {
    #[test]
    fn supported_values_come_back((text, found, ignored) in supported_pattern(), choices in prop::collection::vec(0..6usize, 1..40)) {
        let text = spaced(&text, &choices);
        let p = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let ex = extract(&p);
        prop_assert_eq!(&ex, &Extraction { found, unsupported: Vec::new(), ignored }, "{}", text);
        prop_assert_eq!(parse(&p.to_string()), Ok(p.clone()));
        prop_assert_eq!(extract(&parse(&p.to_string()).unwrap()), ex);
    }

    #[test]
    fn edited_patterns_never_panic((text, ..) in supported_pattern(), edits in prop::collection::vec((any::<prop::sample::Index>(), 0..4usize, "[\\[\\]()':.=,\\\\ A-Z]{0,3}"), 1..4)) {
        let mut chars: Vec<char> = spaced(&text, &[1]).chars().collect();
        for (at, how, insert) in edits {
            let i = at.index(chars.len() + 1);
            match how {
                0 => chars.truncate(i),
                1 => { chars.drain(i..(i + 3).min(chars.len())); }
                _ => { chars.splice(i..i, insert.chars()); }
            }
        }
        check_any(&chars.into_iter().collect::<String>());
    }
}

// ---- Random ASTs ----

fn timestamp() -> impl Strategy<Value = String> {
    (
        0..10_000u32,
        1..=12u32,
        1..=31u32,
        0..24u32,
        0..60u32,
        0..=60u32,
        "(\\.[0-9]{1,4})?",
    )
        .prop_map(|(y, mo, d, h, mi, s, frac)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z")
        })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..8)
            .prop_map(|c| Literal::Str(c.into_iter().collect())),
        "-?(0|[1-9][0-9]{0,25})".prop_map(Literal::Int),
        "-?[0-9]{0,3}\\.[0-9]{1,3}".prop_map(Literal::Float),
        any::<bool>().prop_map(Literal::Bool),
        "([0-9a-fA-F]{2}){0,3}".prop_map(Literal::Hex),
        "([A-Za-z0-9+/]{4}){0,2}([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)"
            .prop_map(Literal::Binary),
        timestamp().prop_map(Literal::Timestamp),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z_][A-Za-z0-9_]{0,6}",
        prop::sample::select(&KEYWORDS[..]).prop_map(str::to_string),
        prop::collection::vec(any::<char>(), 0..5).prop_map(|c| c.into_iter().collect()),
    ]
}

fn path() -> impl Strategy<Value = ObjectPath> {
    let step = prop_oneof![
        key().prop_map(PathStep::Key),
        "-?(0|[1-9][0-9]{0,5})".prop_map(PathStep::Index),
        Just(PathStep::AnyIndex),
    ];
    let object_type = "[a-zA-Z_][a-z0-9_-]{0,8}".prop_filter("not a keyword", |t| {
        !KEYWORDS.contains(&t.as_str()) && t != "true" && t != "false"
    });
    (object_type, key(), prop::collection::vec(step, 0..3)).prop_map(
        |(object_type, first, mut steps)| {
            steps.insert(0, PathStep::Key(first));
            ObjectPath { object_type, steps }
        },
    )
}

fn comparison() -> impl Strategy<Value = ComparisonExpr> {
    let ops = [
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::In,
        Op::Like,
        Op::Matches,
        Op::IsSubset,
        Op::IsSuperset,
        Op::Exists,
    ];
    let values = prop::collection::vec(literal(), 0..3);
    (
        path(),
        any::<bool>(),
        prop::sample::select(ops.to_vec()),
        values,
        any::<String>(),
    )
        .prop_map(|(path, negated, op, mut values, s)| {
            match op {
                Op::In => {}
                Op::Exists => values.clear(),
                Op::Like | Op::Matches | Op::IsSubset | Op::IsSuperset => {
                    values = vec![Literal::Str(s)]
                }
                _ => {
                    let ordered = !matches!(op, Op::Eq | Op::Ne);
                    let first = values
                        .pop()
                        .filter(|v| !(ordered && matches!(v, Literal::Bool(_))));
                    values = vec![first.unwrap_or(Literal::Int("7".into()))];
                }
            }
            ComparisonExpr::Comparison(Comparison {
                path,
                negated,
                op,
                values,
            })
        })
}

fn qualifier() -> impl Strategy<Value = Qualifier> {
    prop_oneof![
        "(0|[1-9][0-9]{0,4})(\\.[0-9]{1,2})?".prop_map(Qualifier::Within),
        "0|[1-9][0-9]{0,4}".prop_map(Qualifier::Repeats),
        (timestamp(), timestamp()).prop_map(|(a, b)| Qualifier::StartStop(a, b)),
    ]
}

fn observations() -> impl Strategy<Value = ObservationExpr> {
    let comparisons = comparison().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(ComparisonExpr::Or),
            prop::collection::vec(inner, 2..4).prop_map(ComparisonExpr::And),
        ]
    });
    comparisons
        .prop_map(ObservationExpr::Observation)
        .prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(ObservationExpr::FollowedBy),
                prop::collection::vec(inner.clone(), 2..4).prop_map(ObservationExpr::Or),
                prop::collection::vec(inner.clone(), 2..4).prop_map(ObservationExpr::And),
                (inner, prop::collection::vec(qualifier(), 1..3)).prop_map(|(base, mut quals)| {
                    match base {
                        ObservationExpr::Qualified(base, mut first) => {
                            first.append(&mut quals);
                            ObservationExpr::Qualified(base, first)
                        }
                        base => ObservationExpr::Qualified(Box::new(base), quals),
                    }
                }),
            ]
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn random_asts_print_and_parse_back(expr in observations()) {
        let p = Pattern(expr);
        let text = p.to_string();
        prop_assert_eq!(parse(&text), Ok(p.clone()), "{}", text);
        extract(&p);
    }
}
