//! The allowlist: values that must never become ThreatConnect indicators
//! (public resolvers, the empty file's hashes, the big sites, the company's
//! own ranges), checked on a normalized indicator before it is queued.
//!
//! Sources, checked in this order (the first that matches names the
//! match): the built-in list, the config's `values`, `cidrs`, `domains`
//! and `regex`, then each MISP warninglist in load order. Every entry of
//! every source sits in one structure per kind of entry (see `matchers`),
//! so a check costs a few lookups however many lists are loaded.
//!
//! What each kind of entry matches:
//! - exact values (`values`, warninglists of type `string`, the empty
//!   hashes): the value. Addresses, CIDRs, host names, e-mail addresses,
//!   hashes and AS numbers compare case-insensitively (both sides
//!   lower-cased; a list's addresses, CIDRs and AS numbers are first put
//!   in the normalized form, so `AS13335` finds `ASN13335`); URLs, mutexes,
//!   registry keys and user agents compare exactly as written.
//! - networks (`cidrs`, `cidr` lists, the built-in ranges): an Address
//!   inside one; a CIDR whose whole network is inside one source's
//!   networks (not one that merely contains an entry); a URL whose host is
//!   an IP literal inside one. An IPv4-mapped address (`::ffff:a.b.c.d`)
//!   is its IPv4 address.
//! - domains (`domains`, `hostname` lists, the built-in names): a Host, a
//!   URL's host or an e-mail's domain that is the domain or a name under it.
//! - substrings and regular expressions: the value (substrings ignore ASCII
//!   case for the case-insensitive types above).
//!
//! The value is the summary, except that a File is checked hash by hash (a
//! File whose MD5, SHA-1 or SHA-256 is listed matches) and a Registry Key
//! both whole and by its key name. Pure, except that [`Allowlist::build`]
//! reads the warninglists.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use ipnet::IpNet;
use regex::RegexSet;

use super::build;
use super::matchers::{Best, Exact, Kinds, PerKind, Ranges, Suffixes};
use crate::indicator::{Indicator, IndicatorType, SUMMARY_SEPARATOR};

pub use crate::config::AllowlistConfig;

/// What matched: the source's short, stable name, for counts and reports:
/// `builtin`, `values`, `cidrs`, `domains`, `regex`, or a warninglist's
/// `name` (`List of known IPv4 public DNS resolvers`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Matched(pub Arc<str>);

impl Matched {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Matched {
    fn from(s: &str) -> Self {
        Matched(Arc::from(s))
    }
}

impl fmt::Display for Matched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The allowlist, built once from the config; [`Allowlist::check`] is
/// cheap and pure.
pub struct Allowlist {
    /// Each source's name and the indicator types it applies to, by id.
    pub(super) names: Vec<Matched>,
    pub(super) kinds: Vec<Kinds>,
    /// Every type some source applies to.
    pub(super) any: Kinds,
    pub(super) exact: Exact,
    pub(super) suffixes: Suffixes,
    pub(super) ranges: Ranges,
    pub(super) substrings: PerKind<AhoCorasick>,
    pub(super) regexes: PerKind<RegexSet>,
    pub(super) entries: usize,
    pub(super) lists: usize,
}

impl fmt::Debug for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allowlist")
            .field("entries", &self.entries)
            .field("lists", &self.lists)
            .field("sources", &self.names)
            .finish_non_exhaustive()
    }
}

impl Default for Allowlist {
    fn default() -> Self {
        Self::empty()
    }
}

impl Allowlist {
    /// Builds every matcher; loads the warninglists. Returns the allowlist
    /// and warnings (a CIDR with host bits, a warninglist's entries of the
    /// wrong shape, skipped and counted once per list, a list applying to
    /// no type tc-ingest sends, not loaded).
    ///
    /// # Errors
    /// Every entry or file that cannot be used, each naming it and why:
    /// `allowlist.values[0]: "1.2.3": <reason>`,
    /// `allowlist.regex[2]: "(": <regex error>`,
    /// `allowlist.misp_warninglists: /path/list.json: not a MISP warninglist: <serde error>`.
    pub fn build(cfg: &AllowlistConfig) -> Result<(Allowlist, Vec<String>), Vec<String>> {
        build::build(cfg)
    }

    /// An empty allowlist (matches nothing, costs nothing).
    pub fn empty() -> Allowlist {
        Allowlist {
            names: Vec::new(),
            kinds: Vec::new(),
            any: Kinds::NONE,
            exact: Exact::default(),
            suffixes: Suffixes::default(),
            ranges: Ranges::default(),
            substrings: PerKind::default(),
            regexes: PerKind::default(),
            entries: 0,
            lists: 0,
        }
    }

    /// Whether nothing can match (no entry loaded).
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// What filters `ind`, if anything: the first source that matches, in
    /// the order built-in, values, cidrs, domains, regex, then the
    /// warninglists in load order.
    pub fn check(&self, ind: &Indicator) -> Option<&Matched> {
        let kind = ind.kind();
        if !self.any.contains(kind) {
            return None;
        }
        let mut best = Best::default();
        self.by_place(ind, &mut best);
        self.by_value(ind, &mut best);
        best.get().and_then(|s| self.names.get(s as usize))
    }

    /// How many entries and warninglists were loaded (for a log line):
    /// `(entries, lists)`.
    pub fn size(&self) -> (usize, usize) {
        (self.entries, self.lists)
    }

    /// Networks and domains: where the indicator points.
    fn by_place(&self, ind: &Indicator, best: &mut Best) {
        let (kind, s) = (ind.kind(), ind.summary());
        let kinds = self.kinds.as_slice();
        match kind {
            IndicatorType::Address if self.ranges.kinds.contains(kind) => {
                if let Ok(ip) = s.parse::<IpAddr>() {
                    best.offer(self.ranges.address(ip, kind, kinds));
                }
            }
            IndicatorType::Cidr if self.ranges.kinds.contains(kind) => {
                if let Ok(net) = s.parse::<IpNet>() {
                    best.offer(self.ranges.network(net, kind, kinds));
                }
            }
            IndicatorType::Host if self.suffixes.kinds.contains(kind) => {
                best.offer(self.suffixes.first(s, kind, kinds));
            }
            IndicatorType::EmailAddress if self.suffixes.kinds.contains(kind) => {
                if let Some((_, domain)) = s.rsplit_once('@') {
                    best.offer(self.suffixes.first(domain, kind, kinds));
                }
            }
            IndicatorType::Url
                if self.ranges.kinds.contains(kind) || self.suffixes.kinds.contains(kind) =>
            {
                match url_host(s) {
                    Some(Place::Ip(ip)) => best.offer(self.ranges.address(ip, kind, kinds)),
                    Some(Place::Name(name)) => best.offer(self.suffixes.first(&name, kind, kinds)),
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// Exact values, substrings and regular expressions: what it says.
    fn by_value(&self, ind: &Indicator, best: &mut Best) {
        let kind = ind.kind();
        let exact = self.exact.kinds.contains(kind);
        let substrings = self.substrings.get(kind);
        let regexes = self.regexes.get(kind);
        if !exact && substrings.is_none() && regexes.is_none() {
            return;
        }
        each_value(ind, |v| {
            if exact {
                best.offer(self.exact.first(v, kind, &self.kinds));
            }
            if let Some((ac, srcs)) = substrings
                && let Ok(found) = ac.try_find_overlapping_iter(v)
            {
                best.offer(
                    found
                        .filter_map(|m| srcs.get(m.pattern().as_usize()))
                        .copied()
                        .min(),
                );
            }
            if let Some((set, srcs)) = regexes {
                best.offer(
                    set.matches(v)
                        .iter()
                        .filter_map(|i| srcs.get(i))
                        .copied()
                        .min(),
                );
            }
        });
    }
}

/// Calls `f` with each value of `ind` that value lists compare: a File's
/// hashes one by one, a Registry Key whole and its key name, anything
/// else its summary.
pub(super) fn each_value<'a>(ind: &'a Indicator, mut f: impl FnMut(&'a str)) {
    let s = ind.summary();
    match ind.kind() {
        IndicatorType::File => s.split(SUMMARY_SEPARATOR).for_each(f),
        IndicatorType::RegistryKey => {
            f(s);
            let key = ind.registry_parts().key_name;
            if key.len() < s.len() {
                f(key);
            }
        }
        _ => f(s),
    }
}

/// A URL's host.
enum Place<'a> {
    Ip(IpAddr),
    Name(Cow<'a, str>),
}

/// The host of a normalized URL: after `://` and any user info, before
/// the port and the path. Normalization left nothing there that a browser
/// reads otherwise, but for a `\` (a path separator to the `url` crate
/// and browsers in `http` URLs): such a URL's host is the `url` crate's.
/// `None` when there is none, so nothing is filtered on a guess.
fn url_host(s: &str) -> Option<Place<'_>> {
    let rest = &s[s.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('\\') {
        return url_crate_host(s);
    }
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let (v6, _) = bracketed.split_once(']')?;
        return v6.parse().ok().map(Place::Ip);
    }
    let host = hostport.split_once(':').map_or(hostport, |(h, _)| h);
    Some(match host.parse::<IpAddr>() {
        Ok(ip) => Place::Ip(ip),
        Err(_) if host.is_empty() => return None,
        Err(_) => Place::Name(Cow::Borrowed(host)),
    })
}

/// The host as the `url` crate (and a browser) reads the URL.
fn url_crate_host(s: &str) -> Option<Place<'static>> {
    let url = url::Url::parse(s).ok()?;
    Some(match url.host()? {
        url::Host::Ipv4(a) => Place::Ip(IpAddr::V4(a)),
        url::Host::Ipv6(a) => Place::Ip(IpAddr::V6(a)),
        // A non-special scheme's host is opaque: it may still be an address.
        url::Host::Domain(d) => match d.parse::<IpAddr>() {
            Ok(ip) => Place::Ip(ip),
            Err(_) => Place::Name(Cow::Owned(d.to_ascii_lowercase())),
        },
    })
}
