//! Type detection for values that come without a type.

use crate::indicator::IndicatorType;

use super::{asn, hash, net, registry};

/// Guesses the type of a cleaned, refanged value, or `None` when it could be
/// anything. The order matters: a URL may contain an `@`, an IPv4 address is
/// also a syntactically valid host name, and a hash is also a host label.
pub fn detect(s: &str) -> Option<IndicatorType> {
    if s.contains("://") {
        return Some(IndicatorType::Url);
    }
    if s.contains('/') && !s.contains('\\') {
        let (addr, _) = s.split_once('/').expect("contains '/'");
        if addr.parse::<std::net::IpAddr>().is_ok() {
            return Some(IndicatorType::Cidr);
        }
    }
    if registry::looks_like_registry_key(s) {
        return Some(IndicatorType::RegistryKey);
    }
    if s.contains(':') && !s.contains(' ') && s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some(IndicatorType::Address);
    }
    if net::looks_like_ipv4(s) {
        return Some(IndicatorType::Address);
    }
    if hash::looks_like_hashes(s) {
        return Some(IndicatorType::File);
    }
    if asn::looks_like_asn(s) {
        return Some(IndicatorType::Asn);
    }
    if s.contains('@') {
        return Some(IndicatorType::EmailAddress);
    }
    if s.contains('.') && !s.contains(char::is_whitespace) && super::host::host(s).is_ok() {
        return Some(IndicatorType::Host);
    }
    None
}
