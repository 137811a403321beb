//! Cleaning and refanging of raw values.
//!
//! Threat feeds wrap values in quotes and brackets, carry zero-width characters
//! copied from web pages, and defang URLs so nobody clicks them. These functions
//! undo all of that before any type rule runs.

use std::borrow::Cow;

/// Characters that are never part of an indicator: BOM and zero-width ones.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{feff}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{00ad}'
    )
}

/// Trims whitespace, invisible characters, and surrounding quotes or angle
/// brackets (repeatedly: `"<http://x>"` loses both layers).
pub fn clean(raw: &str) -> Cow<'_, str> {
    let owned;
    let mut s: &str = if raw.chars().any(is_invisible) {
        owned = raw
            .chars()
            .filter(|c| !is_invisible(*c))
            .collect::<String>();
        owned.as_str()
    } else {
        raw
    };
    loop {
        let t = s.trim();
        let stripped = t
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| t.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
            .or_else(|| t.strip_prefix('`').and_then(|x| x.strip_suffix('`')))
            .or_else(|| t.strip_prefix('<').and_then(|x| x.strip_suffix('>')));
        match stripped {
            Some(inner) => s = inner,
            None => {
                s = t;
                break;
            }
        }
    }
    if s.len() == raw.len() {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(s.to_string())
    }
}

/// Bracketed replacements, longest first so `[://]` wins over `[:]`.
const BRACKETED: [(&str, &str); 12] = [
    ("[://]", "://"),
    ("[dot]", "."),
    ("(dot)", "."),
    ("{dot}", "."),
    ("[.]", "."),
    ("(.)", "."),
    ("{.}", "."),
    ("[:]", ":"),
    ("[@]", "@"),
    ("[at]", "@"),
    ("(at)", "@"),
    ("[/]", "/"),
];

/// Scheme spellings used to defang, and what they stand for.
const SCHEMES: [(&str, &str); 3] = [("hxxps", "https"), ("hxxp", "http"), ("fxp", "ftp")];

/// Undoes defanging: `hxxp://`, `hxxps://`, `fxp://`, `[.]`, `(.)`, `{.}`,
/// `[dot]`, `[:]`, `[://]`, `[@]`, `[at]`. Values with nothing to undo are
/// returned borrowed, which is the common case and costs one scan.
pub fn refang(s: &str) -> Cow<'_, str> {
    let has_bracket = s.bytes().any(|b| matches!(b, b'[' | b'(' | b'{'));
    let scheme = SCHEMES.iter().find(|(defanged, _)| {
        s.len() > defanged.len()
            && s.as_bytes()[..defanged.len()].eq_ignore_ascii_case(defanged.as_bytes())
            && s[defanged.len()..].starts_with([':', '['])
    });
    if !has_bracket && scheme.is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    if let Some((defanged, fanged)) = scheme {
        out.push_str(fanged);
        rest = &s[defanged.len()..];
    }
    'outer: while !rest.is_empty() {
        if rest.starts_with(['[', '(', '{']) {
            for (pat, rep) in BRACKETED {
                if rest.len() >= pat.len()
                    && rest.as_bytes()[..pat.len()].eq_ignore_ascii_case(pat.as_bytes())
                {
                    out.push_str(rep);
                    rest = &rest[pat.len()..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().expect("non-empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_refang(input: &str, expected: &str) {
        assert_eq!(refang(input), expected, "refang({input:?})");
    }

    #[test]
    fn refangs_every_documented_form() {
        check_refang("hxxp://evil[.]com/a", "http://evil.com/a");
        check_refang("hXXps://evil(.)com", "https://evil.com");
        check_refang("fxp://files{.}evil[dot]com", "ftp://files.evil.com");
        check_refang("http[:]//evil.com", "http://evil.com");
        check_refang("http[://]evil.com", "http://evil.com");
        check_refang("hxxp[://]evil.com", "http://evil.com");
        check_refang("bad[@]evil.com", "bad@evil.com");
        check_refang("bad[at]evil[.]com", "bad@evil.com");
        check_refang("1.2.3[.]4", "1.2.3.4");
        check_refang("plain.example.com", "plain.example.com");
        check_refang("hxxpfoo.com", "hxxpfoo.com");
    }

    #[test]
    fn cleans_wrapping_and_invisible_characters() {
        assert_eq!(clean("  \"<http://x.com/>\"  "), "http://x.com/");
        assert_eq!(clean("\u{feff}evil.com\u{200b}"), "evil.com");
        assert_eq!(clean("'1.2.3.4'"), "1.2.3.4");
        assert!(matches!(clean("evil.com"), Cow::Borrowed(_)));
    }
}
