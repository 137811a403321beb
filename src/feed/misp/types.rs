//! MISP attribute types to ThreatConnect indicator types (the table in
//! `shared/ti-formats.md` s.5): which part of a composite value (`a|b`) is
//! the indicator, and which field of a row it fills.

use crate::feed::RawRecord;

/// The field of a row a MISP value fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    /// The value, of this ThreatConnect type.
    Value(&'static str),
    Md5,
    Sha1,
    Sha256,
    /// A registry key (value name and type left to their defaults).
    RegistryKey,
}

/// The rows an attribute of MISP type `kind` gives: `None` for a type with
/// no ThreatConnect indicator (counted per type, not rejected).
pub(super) fn values(kind: &str, value: &str) -> Option<Vec<(Fill, String)>> {
    let first = || value.split_once('|').map_or(value, |(a, _)| a).to_string();
    let second = || value.split_once('|').map_or("", |(_, b)| b).to_string();
    let address = |v: String| {
        let t = if v.contains('/') { "CIDR" } else { "Address" };
        (Fill::Value(t), v)
    };
    Some(match kind {
        "ip-src" | "ip-dst" => vec![address(value.to_string())],
        // The port is the part after the last `|` (an IPv6 address has
        // no `|`).
        "ip-src|port" | "ip-dst|port" => {
            vec![address(
                value.rsplit_once('|').map_or(value, |(a, _)| a).to_string(),
            )]
        }
        "domain" | "hostname" => vec![(Fill::Value("Host"), value.to_string())],
        "hostname|port" => vec![(Fill::Value("Host"), first())],
        "domain|ip" => vec![(Fill::Value("Host"), first()), address(second())],
        "url" => vec![(Fill::Value("URL"), value.to_string())],
        "email" | "email-src" | "email-dst" => {
            vec![(Fill::Value("EmailAddress"), value.to_string())]
        }
        "md5" => vec![(Fill::Md5, value.to_string())],
        "sha1" => vec![(Fill::Sha1, value.to_string())],
        "sha256" => vec![(Fill::Sha256, value.to_string())],
        "filename|md5" | "malware-sample" => vec![(Fill::Md5, second())],
        "filename|sha1" => vec![(Fill::Sha1, second())],
        "filename|sha256" => vec![(Fill::Sha256, second())],
        "AS" => vec![(Fill::Value("ASN"), value.to_string())],
        "mutex" => vec![(Fill::Value("Mutex"), value.to_string())],
        "regkey" => vec![(Fill::RegistryKey, value.to_string())],
        "regkey|value" => vec![(Fill::RegistryKey, first())],
        "user-agent" => vec![(Fill::Value("User Agent"), value.to_string())],
        _ => return None,
    })
}

/// Fills `rec` with one value.
pub(super) fn fill(rec: &mut RawRecord, how: Fill, v: String) {
    match how {
        Fill::Value(kind) => {
            rec.kind = Some(kind.into());
            rec.value = Some(v);
        }
        Fill::Md5 | Fill::Sha1 | Fill::Sha256 => {
            rec.kind = Some("File".into());
            let slot = match how {
                Fill::Md5 => &mut rec.md5,
                Fill::Sha1 => &mut rec.sha1,
                _ => &mut rec.sha256,
            };
            *slot = Some(v);
        }
        Fill::RegistryKey => {
            rec.kind = Some("Registry Key".into());
            rec.key_name = Some(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_values_give_the_indicator_part() {
        let v = |k, val| values(k, val).unwrap();
        assert_eq!(
            v("ip-dst|port", "203.0.113.5|443"),
            [(Fill::Value("Address"), "203.0.113.5".into())]
        );
        assert_eq!(
            v("ip-src|port", "2001:db8::1|8080"),
            [(Fill::Value("Address"), "2001:db8::1".into())]
        );
        assert_eq!(
            v("ip-src", "198.51.100.0/24"),
            [(Fill::Value("CIDR"), "198.51.100.0/24".into())]
        );
        assert_eq!(
            v("domain|ip", "evil.example|198.51.100.7"),
            [
                (Fill::Value("Host"), "evil.example".into()),
                (Fill::Value("Address"), "198.51.100.7".into())
            ]
        );
        assert_eq!(
            v("filename|sha256", "a.exe|abc"),
            [(Fill::Sha256, "abc".into())]
        );
        assert_eq!(
            v("regkey|value", "HKLM\\Run|evil.exe"),
            [(Fill::RegistryKey, "HKLM\\Run".into())]
        );
        assert_eq!(
            v("hostname|port", "c2.example|8443"),
            [(Fill::Value("Host"), "c2.example".into())]
        );
        for none in [
            "link",
            "text",
            "comment",
            "filename",
            "vulnerability",
            "yara",
            "snort",
            "ssdeep",
            "sha512",
        ] {
            assert_eq!(values(none, "x"), None, "{none}");
        }
    }
}
