//! The simulator's own check of ThreatConnect's format rules (tc-api.md
//! section 6). Written independently of `normalize`: it checks that a value
//! is already in the accepted form and never rewrites anything, so a test that
//! runs normalized values through it checks the normalizer against the spec.

use std::net::IpAddr;

use crate::indicator::IndicatorType;
use crate::indicator::{HIVES, VALUE_TYPES};

/// Whether a summary (`type`'s value in ThreatConnect's form) would be accepted.
///
/// # Errors
/// The rule it breaks.
pub fn summary(kind: IndicatorType, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty value".into());
    }
    match kind {
        IndicatorType::Address => s
            .parse::<IpAddr>()
            .map(|_| ())
            .map_err(|_| "not an IP address".into()),
        IndicatorType::Host => host(s),
        IndicatorType::Url => {
            let (scheme, rest) = s.split_once("://").ok_or("no scheme")?;
            if scheme.is_empty() || scheme.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err("scheme must be lower case".into());
            }
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let hostport = authority.rsplit('@').next().unwrap_or("");
            if hostport.is_empty() {
                return Err("no host".into());
            }
            if !hostport.is_ascii() || hostport.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err("the domain must be lower case and ASCII".into());
            }
            Ok(())
        }
        IndicatorType::EmailAddress => {
            let (local, domain) = s.rsplit_once('@').ok_or("no @")?;
            if local.is_empty() {
                return Err("empty local part".into());
            }
            host(domain)
        }
        IndicatorType::File => {
            for part in s.split(" : ") {
                if !matches!(part.len(), 32 | 40 | 64)
                    || !part.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(format!("{part:?} is not an MD5, SHA1 or SHA256"));
                }
            }
            Ok(())
        }
        IndicatorType::Asn => {
            let digits = s.strip_prefix("ASN").ok_or("must start with ASN")?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err("ASN must be followed by digits and nothing else".into());
            }
            Ok(())
        }
        IndicatorType::Cidr => cidr(s),
        IndicatorType::RegistryKey => {
            let (key, rest) = s
                .split_once(" : ")
                .ok_or("needs Key Name : Value Name : Value Type")?;
            let (name, vtype) = rest
                .rsplit_once(" : ")
                .ok_or("needs Key Name : Value Name : Value Type")?;
            registry(key, name, vtype)
        }
        IndicatorType::Mutex | IndicatorType::UserAgent => {
            if s.trim().is_empty() {
                Err("empty value".into())
            } else {
                Ok(())
            }
        }
    }
}

/// Registry Key fields: a full hive first, a value name, one of the value types.
///
/// # Errors
/// The rule broken.
pub fn registry(key: &str, name: &str, vtype: &str) -> Result<(), String> {
    let hive = key.split('\\').next().unwrap_or("");
    if !HIVES.contains(&hive) {
        return Err(format!(
            "Key Name must start with one of {}",
            HIVES.join(", ")
        ));
    }
    if name.is_empty() {
        return Err("Value Name is required".into());
    }
    if !VALUE_TYPES.contains(&vtype) {
        return Err(format!(
            "Value Type must be one of {}",
            VALUE_TYPES.join(", ")
        ));
    }
    Ok(())
}

fn host(s: &str) -> Result<(), String> {
    if !s.is_ascii() {
        return Err("host names must be ASCII (Punycode for IDN)".into());
    }
    if s.len() > 253 || !s.contains('.') {
        return Err("not a domain name".into());
    }
    for label in s.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("bad label length".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("bad characters in label {label:?}"));
        }
    }
    Ok(())
}

fn cidr(s: &str) -> Result<(), String> {
    let (addr, prefix) = s.split_once('/').ok_or("no /prefix")?;
    let prefix: u8 = prefix.parse().map_err(|_| "bad prefix")?;
    if addr.contains(':') {
        if prefix > 128 {
            return Err("prefix over 128".into());
        }
        let groups: Vec<&str> = addr.split(':').collect();
        if groups.len() != 8 {
            return Err("IPv6 blocks must have all eight groups written out (no ::)".into());
        }
        for g in groups {
            let ok = (1..=4).contains(&g.len())
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && (g == "0" || !g.starts_with('0'));
            if !ok {
                return Err(format!(
                    "IPv6 group {g:?} must be lower-case hex without leading zeros"
                ));
            }
        }
        Ok(())
    } else {
        let ip: std::net::Ipv4Addr = addr.parse().map_err(|_| "bad IPv4 network")?;
        if prefix > 32 {
            return Err("prefix over 32".into());
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        if u32::from(ip) & !mask != 0 {
            return Err("host bits set".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::IndicatorType as T;

    #[test]
    fn tc_api_examples_right_and_wrong() {
        assert!(summary(T::Asn, "ASN12345").is_ok());
        for wrong in ["12345", "AS12345", "AS 12345", "ASN 12345"] {
            assert!(summary(T::Asn, wrong).is_err(), "{wrong}");
        }
        assert!(summary(T::Cidr, "abc:def:10:0:0:0:0:0/48").is_ok());
        for wrong in [
            "abc:def:10::/48",
            "0abc:def:10:0:0:0:0:0/48",
            "abc:def:0010:0:0:0:0:0/48",
            "abc:def:10:0000:0000:0000:0000:0000/48",
        ] {
            assert!(summary(T::Cidr, wrong).is_err(), "{wrong}");
        }
        assert!(summary(T::Host, "xn--sterreich-z7a.icom.museum").is_ok());
        assert!(summary(T::Host, "österreich.icom.museum").is_err());
        assert!(summary(T::Url, "http://example.com").is_ok());
        assert!(summary(T::Url, "http://EXAMPLE.com").is_err());
        assert!(
            summary(
                T::RegistryKey,
                "HKEY_LOCAL_MACHINE\\Software :   : REG_NONE"
            )
            .is_ok()
        );
        assert!(summary(T::RegistryKey, "HKLM\\Software :   : REG_NONE").is_err());
        assert!(summary(T::File, &"a".repeat(32)).is_ok());
        assert!(summary(T::File, &"a".repeat(31)).is_err());
    }
}
