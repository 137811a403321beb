//! Address and CIDR rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Reject, RejectRule};

/// An IPv4 address in strict dotted decimal (no leading zeros, no shorthand,
/// no integers: std's parser refuses all three), or an IPv6 address written in
/// its RFC 5952 form (lower case, longest zero run compressed).
pub fn address(s: &str) -> Result<String, Reject> {
    if s.contains('/') {
        return Err(Reject::new(
            RejectRule::AddressHasPrefix,
            format!("{s:?} has a /prefix: it is a CIDR block, not an Address"),
        ));
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(ip.to_string()),
        Err(_) if s.contains(':') => Err(Reject::new(
            RejectRule::InvalidIpv6,
            format!("{s:?} is not a valid IPv6 address"),
        )),
        Err(_) => Err(Reject::new(
            RejectRule::InvalidIpv4,
            format!(
                "{s:?} is not a valid IPv4 address (four decimal octets 0-255, no leading zeros)"
            ),
        )),
    }
}

/// An address written with a port (`192.0.2.1:443`, `[2001:db8::1]:443`)
/// without it; anything else as it is.
pub fn without_port(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').map_or(s, |(a, _)| a);
    }
    match s.rsplit_once(':') {
        Some((a, port)) if !a.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => a,
        _ => s,
    }
}

/// The one CIDR block an address range is: `start` with a prefix length,
/// or `start` to `end` when that is exactly one block; a range that is not
/// (it would take several blocks, or widen to one) is refused, never
/// widened.
pub fn range(start: &str, end: Option<&str>, prefix: Option<&str>) -> Result<String, Reject> {
    let bad = |why: String| Reject::new(RejectRule::RangeNotOneCidr, why);
    let first: IpAddr = start
        .trim()
        .parse()
        .map_err(|_| bad(format!("range start {start:?} is not an IP address")))?;
    if let Some(p) = prefix.map(str::trim).filter(|p| !p.is_empty()) {
        // A column holding the whole block (`192.0.2.0/24`) is one too.
        let block = cidr(&if p.contains('/') {
            p.to_string()
        } else {
            format!("{first}/{p}")
        })?;
        // With an end too, the block must end there: never widened.
        if let Some(end) = end.map(str::trim).filter(|e| !e.is_empty()) {
            let last = block.parse::<ipnet::IpNet>().ok().map(|n| n.broadcast());
            if end.parse::<IpAddr>().ok() != last {
                return Err(bad(format!(
                    "{start} - {end} is not the block {block} (prefix length {p})"
                )));
            }
        }
        return Ok(block);
    }
    let Some(end) = end.map(str::trim).filter(|e| !e.is_empty()) else {
        return cidr(&format!(
            "{first}/{}",
            if first.is_ipv4() { 32 } else { 128 }
        ));
    };
    let last: IpAddr = end
        .parse()
        .map_err(|_| bad(format!("range end {end:?} is not an IP address")))?;
    let blocks: Vec<ipnet::IpNet> = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => ipnet::Ipv4Subnets::new(a, b, 0)
            .take(2)
            .map(ipnet::IpNet::V4)
            .collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => ipnet::Ipv6Subnets::new(a, b, 0)
            .take(2)
            .map(ipnet::IpNet::V6)
            .collect(),
        _ => return Err(bad(format!("{start} - {end} is not an address range"))),
    };
    match blocks.as_slice() {
        [one] => cidr(&format!("{}/{}", one.network(), one.prefix_len())),
        _ => Err(bad(format!(
            "{start} - {end} is not one CIDR block (it takes several): give the blocks, or a prefix length"
        ))),
    }
}

/// A network block. IPv6 is written with all eight groups, no `::`, no
/// leading zeros and lower case, as ThreatConnect demands; a block with host
/// bits set is refused rather than silently masked.
pub fn cidr(s: &str) -> Result<String, Reject> {
    let Some((addr, prefix)) = s.split_once('/') else {
        return Err(Reject::new(
            RejectRule::CidrWithoutPrefix,
            format!("{s:?} has no /prefix length"),
        ));
    };
    let ip: IpAddr = addr.parse().map_err(|_| {
        Reject::new(
            RejectRule::InvalidCidr,
            format!("{s:?}: {addr:?} is not a valid IP address"),
        )
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = match prefix.parse::<u8>() {
        Ok(p) if p <= max && (prefix == "0" || !prefix.starts_with('0')) => p,
        _ => {
            return Err(Reject::new(
                RejectRule::InvalidCidr,
                format!("{s:?}: the prefix length must be a number from 0 to {max}"),
            ));
        }
    };
    let net = ipnet::IpNet::new(ip, prefix).expect("prefix checked above");
    if net.network() != ip {
        return Err(Reject::new(
            RejectRule::CidrHostBits,
            format!(
                "{s:?} has host bits set: the network is {}/{prefix}",
                display_network(net.network())
            ),
        ));
    }
    Ok(format!("{}/{prefix}", display_network(ip)))
}

fn display_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => full_ipv6(v6),
    }
}

/// All eight groups, lower-case hex without leading zeros: `2001:db8:0:0:0:0:0:0`.
pub fn full_ipv6(ip: Ipv6Addr) -> String {
    let s = ip.segments();
    format!(
        "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
        s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
    )
}

/// Whether `s` is an IP literal (used to refuse it as a Host).
pub fn is_ip_literal(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
        || s.strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .is_some_and(|x| x.parse::<Ipv6Addr>().is_ok())
}

/// Whether `s` looks like dotted decimal (four dot-separated runs of digits),
/// so that an invalid one is reported as a bad IPv4 rather than a bad host.
pub fn looks_like_ipv4(s: &str) -> bool {
    s.split('.').count() == 4
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        || s.parse::<Ipv4Addr>().is_ok()
}
