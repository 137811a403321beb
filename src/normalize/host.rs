//! Host, URL and EmailAddress rules: domain names lower case and ASCII
//! (Punycode through IDNA UTS #46), everything else kept byte for byte.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::net::is_ip_literal;
use super::{Reject, RejectRule};

/// A domain name: trailing dot removed, lower case, internationalized labels
/// to Punycode, RFC 1035 label and length limits checked. IP literals are
/// refused (they are Addresses).
pub fn host(s: &str) -> Result<String, Reject> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(Reject::new(
            RejectRule::InvalidHost,
            "empty host name".to_string(),
        ));
    }
    if is_ip_literal(s) {
        return Err(Reject::new(
            RejectRule::HostIsIp,
            format!("{s:?} is an IP address, not a host name"),
        ));
    }
    let plain_ascii = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    let ascii = if plain_ascii {
        s.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(s).map_err(|_| {
            Reject::new(
                RejectRule::InvalidHost,
                format!("{s:?} is not a valid internationalized domain name"),
            )
        })?
    };
    check_dns_name(&ascii)
        .map_err(|why| Reject::new(RejectRule::InvalidHost, format!("{s:?} {why}")))?;
    Ok(ascii)
}

fn check_dns_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    let mut labels = 0;
    let mut last = "";
    for label in name.split('.') {
        labels += 1;
        if label.is_empty() {
            return Err("has an empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("has a label longer than 63 characters ({label:?})"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
        {
            return Err(format!(
                "has a label with characters not allowed in a host name ({label:?})"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "has a label that starts or ends with '-' ({label:?})"
            ));
        }
        last = label;
    }
    if labels < 2 {
        return Err("is not a fully qualified domain name (no dot)".into());
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("has an all-numeric top-level domain".into());
    }
    Ok(())
}

/// A URL: scheme and host lower case, host to Punycode; the user info, port,
/// path, query and fragment stay exactly as given (no slash added, nothing
/// re-encoded).
pub fn url(s: &str) -> Result<String, Reject> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Reject::new(
            RejectRule::InvalidUrl,
            format!("{s:?} contains whitespace or control characters"),
        ));
    }
    let Some(idx) = s.find("://") else {
        return Err(Reject::new(
            RejectRule::UrlWithoutScheme,
            format!("{s:?} has no scheme (such as http://)"),
        ));
    };
    let scheme = &s[..idx];
    let valid_scheme = scheme
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return Err(Reject::new(
            RejectRule::InvalidUrl,
            format!("{s:?} has an invalid scheme {scheme:?}"),
        ));
    }
    let rest = &s[idx + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host_part, port) = split_port(hostport)
        .ok_or_else(|| Reject::new(RejectRule::InvalidUrl, format!("{s:?} has an invalid port")))?;
    if host_part.is_empty() {
        return Err(Reject::new(
            RejectRule::UrlWithoutHost,
            format!("{s:?} has no host"),
        ));
    }
    let host_out = url_host(host_part)
        .map_err(|r| Reject::new(RejectRule::InvalidUrl, format!("{s:?}: host {}", r.message)))?;
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&scheme.to_ascii_lowercase());
    out.push_str("://");
    if let Some(u) = userinfo {
        out.push_str(u);
        out.push('@');
    }
    out.push_str(&host_out);
    if let Some(p) = port {
        out.push(':');
        out.push_str(p);
    }
    out.push_str(tail);
    Ok(out)
}

/// Splits `host:port`, handling `[v6]:port`. `None` when the port is not a number.
fn split_port(hostport: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => {
                let after = &hostport[i + 1..];
                match after.strip_prefix(':') {
                    Some(p) => (&hostport[..=i], Some(p)),
                    None if after.is_empty() => (hostport, None),
                    None => return None,
                }
            }
            None => return None,
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    match port {
        Some(p) if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) => None,
        Some(p) if p.parse::<u32>().ok()? > 65535 => None,
        _ => Some((host, port)),
    }
}

fn url_host(h: &str) -> Result<String, Reject> {
    if let Some(v6) = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let ip: Ipv6Addr = v6.parse().map_err(|_| {
            Reject::new(
                RejectRule::InvalidUrl,
                format!("{h:?} is not a valid IPv6 literal"),
            )
        })?;
        return Ok(format!("[{ip}]"));
    }
    if let Ok(ip) = h.parse::<Ipv4Addr>() {
        return Ok(ip.to_string());
    }
    host(h)
}

/// An email address: the domain lower case and Punycode, the local part kept.
pub fn email(s: &str) -> Result<String, Reject> {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(Reject::new(
            RejectRule::InvalidEmail,
            format!("{s:?} has no '@'"),
        ));
    };
    if local.is_empty()
        || local.len() > 64
        || local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
    {
        return Err(Reject::new(
            RejectRule::InvalidEmail,
            format!("{s:?} has an invalid local part"),
        ));
    }
    let domain = host(domain).map_err(|r| {
        Reject::new(
            RejectRule::InvalidEmail,
            format!("{s:?}: domain {}", r.message),
        )
    })?;
    Ok(format!("{local}@{domain}"))
}
