//! Building an [`Allowlist`]: the built-in list, each config entry
//! normalized (or an error naming it), each warninglist loaded as one
//! source, every entry into its structure (see `matchers`).

use std::collections::HashMap;
use std::net::IpAddr;

use aho_corasick::AhoCorasick;
use ipnet::IpNet;
use regex::RegexSetBuilder;

use super::allowlist::{Allowlist, AllowlistConfig, Matched, each_value};
use super::matchers::{Exact, Kinds, PerKind, RangesBuilder, Src, Suffixes};
use super::warninglist::{self, ListType, Warninglist};
use crate::indicator::IndicatorType;
use crate::normalize;

/// [`Allowlist::build`].
pub(super) fn build(cfg: &AllowlistConfig) -> Result<(Allowlist, Vec<String>), Vec<String>> {
    let mut b = Builder::default();
    if cfg.builtin {
        b.builtin();
    }
    b.values(&cfg.values);
    b.cidrs(&cfg.cidrs);
    b.domains(&cfg.domains);
    b.regex(&cfg.regex);
    for path in &cfg.misp_warninglists {
        match warninglist::list_files(path) {
            Ok(files) => {
                for file in files {
                    match warninglist::load(&file) {
                        Ok(list) => b.warninglist(&list),
                        Err(e) => b.errors.push(e),
                    }
                }
            }
            Err(e) => b.errors.push(e),
        }
    }
    b.finish()
}

/// The built-in networks: IANA's IPv4 and IPv6 special-purpose address
/// registries, the blocks no threat indicator lives in. Left out on
/// purpose: `2002::/16` (6to4) and `64:ff9b::/96` (NAT64), whose addresses
/// embed public IPv4 addresses, so they can be real indicators; and
/// `::ffff:0:0/96` (IPv4-mapped), whose addresses are checked as the IPv4
/// address they map (`::ffff:10.0.0.1` is private, `::ffff:8.8.8.8` is
/// not). `2001::/23` (IETF protocol assignments) holds Teredo
/// (`2001::/32`), deprecated and kept in.
const BUILTIN_NETWORKS: [&str; 27] = [
    "0.0.0.0/8",       // "this network", unspecified
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // shared address space (CGNAT)
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation (TEST-NET-1)
    "192.88.99.0/24",  // 6to4 relay anycast (deprecated)
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation (TEST-NET-2)
    "203.0.113.0/24",  // documentation (TEST-NET-3)
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, with 255.255.255.255 (broadcast)
    "::/128",          // unspecified
    "::1/128",         // loopback
    "64:ff9b:1::/48",  // local-use IPv4/IPv6 translation
    "100::/64",        // discard-only
    "2001::/23",       // IETF protocol assignments (Teredo, benchmarking, ORCHID)
    "2001:db8::/32",   // documentation
    "3fff::/20",       // documentation (RFC 9637)
    "5f00::/16",       // SRv6 SIDs, not globally reachable
    "fc00::/7",        // unique local
    "fe80::/10",       // link-local
    "fec0::/10",       // site-local (deprecated)
    "ff00::/8",        // multicast
];

/// The MD5, SHA-1 and SHA-256 of zero bytes.
const EMPTY_HASHES: [&str; 3] = [
    "d41d8cd98f00b204e9800998ecf8427e",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
];

/// Special-use names (RFC 6761, RFC 8375, ICANN's `.internal`) and the
/// documentation domains of RFC 2606, each with every name under it.
const BUILTIN_DOMAINS: [&str; 10] = [
    "localhost",
    "local",
    "invalid",
    "test",
    "example",
    "example.com",
    "example.net",
    "example.org",
    "home.arpa",
    "internal",
];

const ADDRESSES: Kinds = Kinds::of(&[
    IndicatorType::Address,
    IndicatorType::Cidr,
    IndicatorType::Url,
]);
const NAMES: Kinds = Kinds::of(&[
    IndicatorType::Host,
    IndicatorType::Url,
    IndicatorType::EmailAddress,
]);

/// A domain as the allowlist keeps it: trimmed, dots around it and a
/// leading `*.` dropped, lower-case, internationalized labels in Punycode,
/// each label letters, digits, `-` or `_`. One label (`local`) is a domain
/// too.
///
/// # Errors
/// Why it is not a domain.
fn domain_entry(raw: &str) -> Result<String, String> {
    let s = raw.trim().trim_matches('.');
    let s = s.strip_prefix("*.").unwrap_or(s);
    if s.is_empty() {
        return Err("empty".into());
    }
    let bracketed = s.strip_prefix('[').and_then(|x| x.strip_suffix(']'));
    if s.parse::<IpAddr>().is_ok() || bracketed.is_some_and(|x| x.parse::<IpAddr>().is_ok()) {
        return Err("an IP address, not a domain (give it as a CIDR)".into());
    }
    let ascii = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(s).map_err(|_| "not a valid internationalized domain name")?
    };
    if ascii.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    let mut last = "";
    for label in ascii.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
        if !ok {
            return Err(format!("{label:?} is not a host name label"));
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("ends in a number: not a domain".into());
    }
    Ok(ascii)
}

/// A network entry: a CIDR block or a bare address (one-address block),
/// taken as its network, and whether it had host bits set.
fn net_entry(raw: &str) -> Option<(IpNet, bool)> {
    let s = raw.trim();
    if s.contains('/') {
        let net: IpNet = s.parse().ok()?;
        let trunc = net.trunc();
        Some((trunc, trunc != net))
    } else {
        s.parse::<IpAddr>().ok().map(|ip| (IpNet::from(ip), false))
    }
}

/// The lower-case form a list's exact value is compared in for the
/// case-insensitive types: an address, CIDR block or AS number in its
/// normalized form (`AS13335` as `asn13335`), anything else lower-cased.
fn folded_entry(s: &str) -> String {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return ip.to_string();
    }
    let kind = if s.contains('/') && s.parse::<IpNet>().is_ok() {
        Some(IndicatorType::Cidr)
    } else if looks_like_as(s) {
        Some(IndicatorType::Asn)
    } else {
        None
    };
    match kind.and_then(|k| normalize::value(s, Some(k)).ok()) {
        Some(ind) => ind.summary().to_ascii_lowercase(),
        None => s.to_ascii_lowercase(),
    }
}

/// `AS123` or `ASN123`, any case.
fn looks_like_as(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 3 || !b[..2].eq_ignore_ascii_case(b"as") {
        return false;
    }
    let rest = &b[2..];
    let digits = match rest.first() {
        Some(b'n' | b'N') => &rest[1..],
        _ => rest,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// The sources and entries as they are added, then [`Builder::finish`].
#[derive(Default)]
struct Builder {
    names: Vec<Matched>,
    kinds: Vec<Kinds>,
    exact: Exact,
    suffixes: Suffixes,
    ranges: RangesBuilder,
    substrings: Vec<(String, Src)>,
    regexes: Vec<(String, Src)>,
    entries: usize,
    lists: usize,
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Builder {
    /// A new source, checked after every one before it.
    fn source(&mut self, name: &Matched, kinds: Kinds) -> Src {
        self.names.push(name.clone());
        self.kinds.push(kinds);
        Src::try_from(self.names.len() - 1).unwrap_or(Src::MAX)
    }

    fn builtin(&mut self) {
        let name = Matched::from("builtin");
        let nets = self.source(&name, ADDRESSES);
        for net in BUILTIN_NETWORKS
            .iter()
            .filter_map(|n| n.parse::<IpNet>().ok())
        {
            self.ranges.insert(net, nets, ADDRESSES);
            self.entries += 1;
        }
        let files = Kinds::of(&[IndicatorType::File]);
        let hashes = self.source(&name, files);
        for h in EMPTY_HASHES {
            self.exact.insert(h, h, hashes, files);
            self.entries += 1;
        }
        let domains = self.source(&name, NAMES);
        for d in BUILTIN_DOMAINS {
            self.suffixes.insert(d, domains, NAMES);
            self.entries += 1;
        }
    }

    /// Each value normalized; one source per indicator type, so a value
    /// matches its own type only.
    fn values(&mut self, values: &[String]) {
        let name = Matched::from("values");
        let mut by_kind: HashMap<IndicatorType, Src> = HashMap::new();
        for (i, raw) in values.iter().enumerate() {
            let ind = match normalize::value(raw, None) {
                Ok(ind) => ind,
                Err(r) => {
                    self.errors
                        .push(format!("allowlist.values[{i}]: {raw:?}: {r}"));
                    continue;
                }
            };
            let kind = ind.kind();
            let kinds = Kinds::of(&[kind]);
            let src = match by_kind.get(&kind) {
                Some(&s) => s,
                None => {
                    let s = self.source(&name, kinds);
                    by_kind.insert(kind, s);
                    s
                }
            };
            each_value(&ind, |v| {
                if kind != IndicatorType::RegistryKey || v == ind.summary() {
                    self.exact.insert(v, &v.to_ascii_lowercase(), src, kinds);
                }
            });
            self.entries += 1;
        }
    }

    fn cidrs(&mut self, cidrs: &[String]) {
        if cidrs.is_empty() {
            return;
        }
        let src = self.source(&Matched::from("cidrs"), ADDRESSES);
        for (i, raw) in cidrs.iter().enumerate() {
            match net_entry(raw) {
                Some((net, host_bits)) => {
                    if host_bits {
                        self.warnings.push(format!(
                            "allowlist.cidrs[{i}]: {raw:?} has host bits set: its network {net} is used"
                        ));
                    }
                    self.ranges.insert(net, src, ADDRESSES);
                    self.entries += 1;
                }
                None => self.errors.push(format!(
                    "allowlist.cidrs[{i}]: {raw:?}: not an IP address or CIDR block"
                )),
            }
        }
    }

    fn domains(&mut self, domains: &[String]) {
        if domains.is_empty() {
            return;
        }
        let src = self.source(&Matched::from("domains"), NAMES);
        for (i, raw) in domains.iter().enumerate() {
            match domain_entry(raw) {
                Ok(d) => {
                    self.suffixes.insert(&d, src, NAMES);
                    self.entries += 1;
                }
                Err(why) => self
                    .errors
                    .push(format!("allowlist.domains[{i}]: {raw:?}: {why}")),
            }
        }
    }

    fn regex(&mut self, patterns: &[String]) {
        if patterns.is_empty() {
            return;
        }
        let src = self.source(&Matched::from("regex"), Kinds::ALL);
        for (i, p) in patterns.iter().enumerate() {
            match regex::Regex::new(p) {
                Ok(_) => {
                    self.regexes.push((p.clone(), src));
                    self.entries += 1;
                }
                Err(e) => self
                    .errors
                    .push(format!("allowlist.regex[{i}]: {p:?}: {}", regex_error(&e))),
            }
        }
    }

    /// A loaded list as one source; entries of the wrong shape for its
    /// type skipped, with one warning.
    fn warninglist(&mut self, list: &Warninglist) {
        let at = list.path.display();
        let kinds = list.kinds();
        if kinds.is_empty() {
            self.warnings.push(format!(
                "allowlist.misp_warninglists: {at}: {:?} applies to no indicator type tc-ingest sends (matching_attributes {:?}): not loaded",
                list.name, list.matching_attributes
            ));
            return;
        }
        let src = self.source(&Matched::from(list.name.as_str()), kinds);
        self.lists += 1;
        let mut skipped = 0;
        let mut first_bad = None;
        for e in &list.entries {
            if self.entry(list.kind, e, src, kinds) {
                self.entries += 1;
            } else {
                skipped += 1;
                first_bad.get_or_insert(e);
            }
        }
        if let Some(bad) = first_bad {
            self.warnings.push(format!(
                "allowlist.misp_warninglists: {at}: {:?}: skipped {skipped} of {} entries that are not {} (the first: {bad:?})",
                list.name,
                list.entries.len(),
                list.kind.entry_shape()
            ));
        }
    }

    /// Adds one warninglist entry; `false` when it has the wrong shape.
    fn entry(&mut self, kind: ListType, e: &str, src: Src, kinds: Kinds) -> bool {
        match kind {
            ListType::String => {
                let t = e.trim();
                !t.is_empty() && {
                    self.exact.insert(t, &folded_entry(t), src, kinds);
                    true
                }
            }
            ListType::Substring => {
                !e.trim().is_empty() && {
                    self.substrings.push((e.to_string(), src));
                    true
                }
            }
            ListType::Hostname => domain_entry(e)
                .map(|d| self.suffixes.insert(&d, src, kinds))
                .is_ok(),
            ListType::Cidr => net_entry(e)
                .map(|(net, _)| self.ranges.insert(net, src, kinds))
                .is_some(),
            ListType::Regex => match warninglist::pcre_pattern(e.trim()) {
                Ok(p) if regex::Regex::new(&p).is_ok() => {
                    self.regexes.push((p, src));
                    true
                }
                _ => false,
            },
        }
    }

    fn finish(self) -> Result<(Allowlist, Vec<String>), Vec<String>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let substrings = PerKind::build(&self.substrings, &self.kinds, |p, folded| {
            AhoCorasick::builder()
                .ascii_case_insensitive(folded)
                .build(p)
        })
        .map_err(|e| {
            vec![format!(
                "allowlist: the substrings do not fit one automaton: {e}"
            )]
        })?;
        let regexes = PerKind::build(&self.regexes, &self.kinds, |p, _| {
            RegexSetBuilder::new(p)
                .size_limit(256 << 20)
                .dfa_size_limit(64 << 20)
                .build()
        })
        .map_err(|e| {
            vec![format!(
                "allowlist: the regular expressions do not fit one set: {}",
                regex_error(&e)
            )]
        })?;
        let any = self.kinds.iter().fold(Kinds::NONE, |a, k| a.union(*k));
        let list = Allowlist {
            names: self.names,
            kinds: self.kinds,
            any,
            exact: self.exact,
            suffixes: self.suffixes,
            ranges: self.ranges.build(),
            substrings,
            regexes,
            entries: self.entries,
            lists: self.lists,
        };
        Ok((list, self.warnings))
    }
}

/// A regex error on one line: a syntax error's last line (`unclosed
/// group`), anything else as it says.
fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .map_or_else(|| s.clone(), str::to_string),
        other => other.to_string(),
    }
}
