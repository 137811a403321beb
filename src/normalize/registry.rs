//! Registry Key rule: a full hive name first, short forms expanded, a value
//! name (a space when empty) and one of the eleven value types.

use crate::indicator::{HIVES, SUMMARY_SEPARATOR, VALUE_TYPES};

use super::{Reject, RejectRule};

const SHORT_HIVES: [(&str, &str); 5] = [
    ("HKLM", "HKEY_LOCAL_MACHINE"),
    ("HKCU", "HKEY_CURRENT_USER"),
    ("HKCR", "HKEY_CLASSES_ROOT"),
    ("HKU", "HKEY_USERS"),
    ("HKCC", "HKEY_CURRENT_CONFIG"),
];

/// The full hive name for the first path component, if it is a hive.
fn hive(first: &str) -> Option<&'static str> {
    let upper = first.to_ascii_uppercase();
    HIVES.iter().find(|h| **h == upper).copied().or_else(|| {
        SHORT_HIVES
            .iter()
            .find(|(s, _)| *s == upper)
            .map(|(_, h)| *h)
    })
}

/// Whether `s` starts with a hive (for type detection).
pub fn looks_like_registry_key(s: &str) -> bool {
    let first = s.split(['\\', '/']).next().unwrap_or("");
    first.len() < s.len() && hive(first).is_some()
}

/// The key name with its hive expanded and upper case, `\` after the hive.
pub fn key_name(s: &str) -> Result<String, Reject> {
    let s = s.trim();
    let (first, rest) = match s.find(['\\', '/']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let Some(full) = hive(first) else {
        return Err(Reject::new(
            RejectRule::InvalidRegistryHive,
            format!(
                "{s:?} does not start with a registry hive; accepted: {} (or HKLM, HKCU, HKCR, HKU, HKCC)",
                HIVES.join(", ")
            ),
        ));
    };
    // A path written with `/` throughout (`hklm/Software/Run`) is the same
    // path with `\` separators; one that already uses `\` keeps any `/` as
    // part of a key name.
    Ok(match rest {
        Some(r) if !r.is_empty() && !s.contains('\\') => {
            format!("{full}\\{}", r.replace('/', "\\"))
        }
        Some(r) if !r.is_empty() => format!("{full}\\{r}"),
        _ => full.to_string(),
    })
}

/// The three fields joined into a summary: `key : value name : value type`.
pub fn registry_key(
    key: &str,
    value_name: Option<&str>,
    value_type: Option<&str>,
) -> Result<String, Reject> {
    let key = key_name(key)?;
    // `key : name : type` must split back into the same three parts
    // (found by fuzzing: `HKCC/ :` gave `HKEY_CURRENT_CONFIG\ : :   : REG_NONE`).
    if key.contains(SUMMARY_SEPARATOR) || key.ends_with(SUMMARY_SEPARATOR.trim_end()) {
        return Err(Reject::new(
            RejectRule::InvalidRegistryKeyName,
            format!("key name {key:?} contains {SUMMARY_SEPARATOR:?}, the summary separator"),
        ));
    }
    let name = match value_name.map(str::trim) {
        None | Some("") => " ",
        Some(n) => n,
    };
    if name.chars().any(char::is_control) {
        return Err(Reject::new(
            RejectRule::InvalidRegistryValueName,
            format!("value name {name:?} contains control characters"),
        ));
    }
    let vtype = match value_type.map(str::trim) {
        None | Some("") => "REG_NONE".to_string(),
        Some(t) => {
            let upper = t.to_ascii_uppercase();
            if !VALUE_TYPES.contains(&upper.as_str()) {
                return Err(Reject::new(
                    RejectRule::InvalidRegistryValueType,
                    format!("value type {t:?} is not one of {}", VALUE_TYPES.join(", ")),
                ));
            }
            upper
        }
    };
    Ok(format!(
        "{key}{SUMMARY_SEPARATOR}{name}{SUMMARY_SEPARATOR}{vtype}"
    ))
}

/// A registry key given as one value: a bare key, or `key : name : type`.
pub fn from_summary(s: &str) -> Result<String, Reject> {
    match s.split_once(SUMMARY_SEPARATOR) {
        None => registry_key(s, None, None),
        Some((key, rest)) => match rest.rsplit_once(SUMMARY_SEPARATOR) {
            Some((name, vtype)) => registry_key(key, Some(name), Some(vtype)),
            None => registry_key(key, Some(rest), None),
        },
    }
}
