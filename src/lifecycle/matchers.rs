//! The allowlist's lookup structures, one per kind of entry, each holding
//! every entry of that kind from every source (the built-in list, the
//! config's lists, each warninglist) with the source's id. Sources are
//! numbered in checking order, so the lowest id that matches is the first
//! match; a source also says which indicator types it applies to
//! ([`Kinds`]), checked per hit.
//!
//! - [`Exact`]: hash maps (one case-folded, one as written).
//! - [`Suffixes`]: a hash map of domains, walked from the full host name
//!   label by label to its top-level domain.
//! - [`Ranges`]: per address family, the entries cut into disjoint segments
//!   (binary search), each segment listing the sources that cover it.
//! - [`PerKind`]: for substrings (Aho-Corasick) and regular expressions
//!   (`RegexSet`), one automaton per indicator type holding exactly the
//!   patterns that apply to it (types with the same patterns share one).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::indicator::IndicatorType;

/// A source's number: its place in checking order (lower is checked first).
pub(super) type Src = u32;

/// A set of indicator types, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(super) struct Kinds(u16);

impl Kinds {
    pub const NONE: Kinds = Kinds(0);
    pub const ALL: Kinds = Kinds((1 << IndicatorType::ALL.len()) - 1);
    /// Types whose normalized value means the same in any case (addresses,
    /// names, hashes, AS numbers, e-mail addresses): compared lower-cased.
    pub const FOLDED: Kinds = Kinds::of(&[
        IndicatorType::Address,
        IndicatorType::Cidr,
        IndicatorType::Host,
        IndicatorType::EmailAddress,
        IndicatorType::File,
        IndicatorType::Asn,
    ]);

    const fn bit(k: IndicatorType) -> u16 {
        1 << Self::index(k)
    }

    /// The type's place in [`IndicatorType::ALL`].
    pub const fn index(k: IndicatorType) -> usize {
        match k {
            IndicatorType::Address => 0,
            IndicatorType::EmailAddress => 1,
            IndicatorType::File => 2,
            IndicatorType::Host => 3,
            IndicatorType::Url => 4,
            IndicatorType::Asn => 5,
            IndicatorType::Cidr => 6,
            IndicatorType::Mutex => 7,
            IndicatorType::RegistryKey => 8,
            IndicatorType::UserAgent => 9,
        }
    }

    pub const fn of(kinds: &[IndicatorType]) -> Kinds {
        let mut bits = 0;
        let mut i = 0;
        while i < kinds.len() {
            bits |= Self::bit(kinds[i]);
            i += 1;
        }
        Kinds(bits)
    }

    pub fn contains(self, k: IndicatorType) -> bool {
        self.0 & Self::bit(k) != 0
    }

    pub fn union(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    pub fn intersect(self, other: Kinds) -> Kinds {
        Kinds(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `k` compares case-folded.
    pub fn folds(k: IndicatorType) -> bool {
        Self::FOLDED.contains(k)
    }
}

/// The smallest source id seen so far.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Best(Option<Src>);

impl Best {
    pub fn offer(&mut self, src: Option<Src>) {
        if let Some(s) = src {
            self.0 = Some(self.0.map_or(s, |b| b.min(s)));
        }
    }

    pub fn get(self) -> Option<Src> {
        self.0
    }
}

/// The sources of one key, ascending (sources are added in order).
#[derive(Debug, Clone)]
enum Ids {
    One(Src),
    Many(Vec<Src>),
}

impl Ids {
    fn push(&mut self, src: Src) {
        match self {
            Ids::One(s) if *s == src => {}
            Ids::One(s) => *self = Ids::Many(vec![*s, src]),
            Ids::Many(v) if v.last() == Some(&src) => {}
            Ids::Many(v) => v.push(src),
        }
    }

    fn as_slice(&self) -> &[Src] {
        match self {
            Ids::One(s) => std::slice::from_ref(s),
            Ids::Many(v) => v,
        }
    }
}

/// The first of `ids` that applies to `kind`.
fn first(ids: &[Src], kind: IndicatorType, kinds: &[Kinds]) -> Option<Src> {
    ids.iter()
        .copied()
        .find(|&s| kinds.get(s as usize).is_some_and(|k| k.contains(kind)))
}

/// Values to their sources. Foldhash: the keys are the operator's lists,
/// so a lookup key from a feed cannot make the table degrade.
type Map = foldhash::HashMap<Box<str>, Ids>;

fn insert(map: &mut Map, key: &str, src: Src) {
    match map.get_mut(key) {
        Some(ids) => ids.push(src),
        None => {
            map.insert(key.into(), Ids::One(src));
        }
    }
}

/// Exact values: lower-cased for the [`Kinds::FOLDED`] types, as written
/// for the others.
#[derive(Debug, Default)]
pub(super) struct Exact {
    folded: Map,
    cased: Map,
    pub kinds: Kinds,
}

impl Exact {
    /// Adds `value` for `src`: `folded` (already in its lower-case,
    /// canonical form) serves the folded types among `kinds`, `value` as
    /// written the others.
    pub fn insert(&mut self, value: &str, folded: &str, src: Src, kinds: Kinds) {
        if !kinds.intersect(Kinds::FOLDED).is_empty() {
            insert(&mut self.folded, folded, src);
        }
        if kinds.intersect(Kinds::FOLDED) != kinds {
            insert(&mut self.cased, value, src);
        }
        self.kinds = self.kinds.union(kinds);
    }

    pub fn first(&self, value: &str, kind: IndicatorType, kinds: &[Kinds]) -> Option<Src> {
        let ids = if Kinds::folds(kind) {
            if value.bytes().any(|b| b.is_ascii_uppercase()) {
                self.folded.get(value.to_ascii_lowercase().as_str())
            } else {
                self.folded.get(value)
            }
        } else {
            self.cased.get(value)
        }?;
        first(ids.as_slice(), kind, kinds)
    }
}

/// Domains, each matching itself and every name under it.
#[derive(Debug, Default)]
pub(super) struct Suffixes {
    map: Map,
    pub kinds: Kinds,
}

impl Suffixes {
    /// Adds a normalized domain (lower-case ASCII, no trailing dot).
    pub fn insert(&mut self, domain: &str, src: Src, kinds: Kinds) {
        insert(&mut self.map, domain, src);
        self.kinds = self.kinds.union(kinds);
    }

    /// The first source with `host` or a domain above it: `a.b.example`
    /// looks up `a.b.example`, `b.example` and `example`.
    pub fn first(&self, host: &str, kind: IndicatorType, kinds: &[Kinds]) -> Option<Src> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let mut best = Best::default();
        let mut rest = host;
        loop {
            if let Some(ids) = self.map.get(rest) {
                best.offer(first(ids.as_slice(), kind, kinds));
            }
            match rest.split_once('.') {
                Some((_, tail)) => rest = tail,
                None => return best.get(),
            }
        }
    }
}

/// Which table an address goes to: IPv4-mapped IPv6 addresses
/// (`::ffff:a.b.c.d`) are their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

/// An address's family and number.
pub(super) fn address_key(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(a) => (Family::V4, u128::from(u32::from(a))),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (Family::V4, u128::from(u32::from(v4))),
            None => (Family::V6, u128::from(a)),
        },
    }
}

/// A network's family, first and last address (a network inside
/// `::ffff:0:0/96` as its IPv4 network).
pub(super) fn network_span(net: ipnet::IpNet) -> (Family, u128, u128) {
    match net {
        ipnet::IpNet::V4(n) => (
            Family::V4,
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        ipnet::IpNet::V6(n) => match (n.network().to_ipv4_mapped(), n.broadcast().to_ipv4_mapped())
        {
            (Some(a), Some(b)) if n.prefix_len() >= 96 => (
                Family::V4,
                u128::from(u32::from(a)),
                u128::from(u32::from(b)),
            ),
            _ => (
                Family::V6,
                u128::from(n.network()),
                u128::from(n.broadcast()),
            ),
        },
    }
}

/// Address ranges of one family, cut into disjoint segments: segment `i`
/// starts at `starts[i]` and ends where the next starts; `cover[spans[i]..
/// spans[i + 1]]` are the sources covering it, ascending, each with the end
/// of its own (merged) range there.
#[derive(Debug, Default)]
struct Table {
    starts: Vec<u128>,
    spans: Vec<u32>,
    cover: Vec<(Src, u128)>,
}

impl Table {
    /// Builds the segments from `(src, first, last)` ranges.
    fn build(mut ranges: Vec<(Src, u128, u128)>) -> Table {
        ranges.sort_unstable();
        // Each source's ranges merged, so a source covers a segment once
        // and a network spanning two adjacent entries is inside the source.
        let mut merged: Vec<(Src, u128, u128)> = Vec::with_capacity(ranges.len());
        for (src, a, b) in ranges {
            match merged.last_mut() {
                Some((s, _, end)) if *s == src && a <= end.saturating_add(1) => {
                    *end = (*end).max(b);
                }
                _ => merged.push((src, a, b)),
            }
        }
        let mut starts: Vec<u128> = merged
            .iter()
            .flat_map(|&(_, a, b)| [Some(a), b.checked_add(1)])
            .flatten()
            .collect();
        starts.sort_unstable();
        starts.dedup();
        let mut per_segment: Vec<Vec<(Src, u128)>> = vec![Vec::new(); starts.len()];
        for &(src, a, b) in &merged {
            let from = starts.partition_point(|&s| s < a);
            for (i, seg) in per_segment.iter_mut().enumerate().skip(from) {
                if starts[i] > b {
                    break;
                }
                seg.push((src, b));
            }
        }
        let mut spans = Vec::with_capacity(starts.len() + 1);
        let mut cover = Vec::new();
        spans.push(0);
        for seg in per_segment {
            cover.extend(seg);
            spans.push(u32::try_from(cover.len()).unwrap_or(u32::MAX));
        }
        Table {
            starts,
            spans,
            cover,
        }
    }

    /// The first source applying to `kind` whose range holds all of
    /// `first..=last`.
    fn first(&self, first: u128, last: u128, kind: IndicatorType, kinds: &[Kinds]) -> Option<Src> {
        let i = self
            .starts
            .partition_point(|&s| s <= first)
            .checked_sub(1)?;
        let (from, to) = (*self.spans.get(i)?, *self.spans.get(i + 1)?);
        self.cover
            .get(from as usize..to as usize)?
            .iter()
            .find(|&&(s, end)| {
                end >= last && kinds.get(s as usize).is_some_and(|k| k.contains(kind))
            })
            .map(|&(s, _)| s)
    }
}

/// Networks of both families.
#[derive(Debug, Default)]
pub(super) struct Ranges {
    v4: Table,
    v6: Table,
    pub kinds: Kinds,
}

/// Networks as they are added, before [`RangesBuilder::build`].
#[derive(Debug, Default)]
pub(super) struct RangesBuilder {
    v4: Vec<(Src, u128, u128)>,
    v6: Vec<(Src, u128, u128)>,
    kinds: Kinds,
}

impl RangesBuilder {
    pub fn insert(&mut self, net: ipnet::IpNet, src: Src, kinds: Kinds) {
        let (fam, a, b) = network_span(net.trunc());
        match fam {
            Family::V4 => self.v4.push((src, a, b)),
            Family::V6 => self.v6.push((src, a, b)),
        }
        self.kinds = self.kinds.union(kinds);
    }

    pub fn build(self) -> Ranges {
        Ranges {
            v4: Table::build(self.v4),
            v6: Table::build(self.v6),
            kinds: self.kinds,
        }
    }
}

impl Ranges {
    /// The first source holding the address.
    pub fn address(&self, ip: IpAddr, kind: IndicatorType, kinds: &[Kinds]) -> Option<Src> {
        let (fam, n) = address_key(ip);
        self.table(fam).first(n, n, kind, kinds)
    }

    /// The first source holding all of the network (not merely part of it).
    pub fn network(&self, net: ipnet::IpNet, kind: IndicatorType, kinds: &[Kinds]) -> Option<Src> {
        let (fam, a, b) = network_span(net.trunc());
        self.table(fam).first(a, b, kind, kinds)
    }

    fn table(&self, fam: Family) -> &Table {
        match fam {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

/// Automata per indicator type: `slot[t]` is the automaton holding exactly
/// the patterns applying to type `t` (`None`: no pattern applies), with the
/// source of each of its patterns.
#[derive(Debug)]
pub(super) struct PerKind<T> {
    slot: [Option<u16>; IndicatorType::ALL.len()],
    sets: Vec<(T, Vec<Src>)>,
}

impl<T> Default for PerKind<T> {
    fn default() -> Self {
        Self {
            slot: [None; IndicatorType::ALL.len()],
            sets: Vec::new(),
        }
    }
}

impl<T> PerKind<T> {
    /// Builds one automaton per distinct set of applicable patterns with
    /// `make(patterns, folded)`, `folded` when it serves folded types.
    ///
    /// # Errors
    /// The first error of `make`.
    pub fn build<E>(
        patterns: &[(String, Src)],
        kinds: &[Kinds],
        make: impl Fn(&[&str], bool) -> Result<T, E>,
    ) -> Result<Self, E> {
        let mut out = Self::default();
        let mut seen: HashMap<(Vec<usize>, bool), u16> = HashMap::new();
        for (t, kind) in IndicatorType::ALL.into_iter().enumerate() {
            let chosen: Vec<usize> = (0..patterns.len())
                .filter(|&i| {
                    kinds
                        .get(patterns[i].1 as usize)
                        .is_some_and(|k| k.contains(kind))
                })
                .collect();
            if chosen.is_empty() {
                continue;
            }
            let key = (chosen, Kinds::folds(kind));
            if let Some(&n) = seen.get(&key) {
                out.slot[t] = Some(n);
                continue;
            }
            let texts: Vec<&str> = key.0.iter().map(|&i| patterns[i].0.as_str()).collect();
            let srcs = key.0.iter().map(|&i| patterns[i].1).collect();
            let n = u16::try_from(out.sets.len()).unwrap_or(u16::MAX);
            out.sets.push((make(&texts, key.1)?, srcs));
            seen.insert(key, n);
            out.slot[t] = Some(n);
        }
        Ok(out)
    }

    /// The automaton for `kind` and the source of each of its patterns.
    pub fn get(&self, kind: IndicatorType) -> Option<(&T, &[Src])> {
        let (set, srcs) = self.sets.get(usize::from(self.slot[Kinds::index(kind)]?))?;
        Some((set, srcs.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: IndicatorType = IndicatorType::Address;
    const CIDR: IndicatorType = IndicatorType::Cidr;

    fn net(s: &str) -> ipnet::IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn nested_and_overlapping_ranges_keep_each_source() {
        let all = Kinds::of(&[ADDR, CIDR]);
        let only_cidr = Kinds::of(&[CIDR]);
        let kinds = [all, all, only_cidr, all];
        let mut b = RangesBuilder::default();
        b.insert(net("10.1.0.0/16"), 0, all);
        b.insert(net("10.0.0.0/8"), 1, all);
        b.insert(net("0.0.0.0/0"), 2, only_cidr);
        b.insert(net("::/0"), 3, all);
        b.insert(net("ff00::/8"), 0, all);
        let r = b.build();
        let addr = |s: &str| r.address(s.parse().unwrap(), ADDR, &kinds);
        assert_eq!(addr("10.1.2.3"), Some(0));
        assert_eq!(addr("10.2.0.0"), Some(1));
        assert_eq!(addr("9.255.255.255"), None);
        assert_eq!(addr("255.255.255.255"), None);
        assert_eq!(addr("2001:db8::1"), Some(3));
        assert_eq!(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Some(0));
        let network = |s: &str| r.network(net(s), CIDR, &kinds);
        assert_eq!(network("10.1.0.0/24"), Some(0));
        assert_eq!(network("10.0.0.0/15"), Some(1));
        assert_eq!(network("10.0.0.0/7"), Some(2));
        assert_eq!(network("0.0.0.0/0"), Some(2));
        assert_eq!(network("fe00::/7"), Some(3));
    }

    #[test]
    fn suffixes_walk_to_the_top_level_domain() {
        let kinds = [Kinds::ALL, Kinds::of(&[IndicatorType::Url])];
        let mut s = Suffixes::default();
        s.insert("example.org", 1, kinds[1]);
        s.insert("org", 0, kinds[0]);
        let host = IndicatorType::Host;
        assert_eq!(s.first("a.b.example.org", host, &kinds), Some(0));
        assert_eq!(
            s.first("a.example.org", IndicatorType::Url, &kinds),
            Some(0)
        );
        let mut s = Suffixes::default();
        s.insert("example.org", 1, kinds[1]);
        assert_eq!(s.first("a.example.org", host, &kinds), None);
        assert_eq!(s.first("example.org.", IndicatorType::Url, &kinds), Some(1));
        assert_eq!(s.first("badexample.org", IndicatorType::Url, &kinds), None);
    }

    #[test]
    fn kinds_index_is_the_order_of_all() {
        for (i, k) in IndicatorType::ALL.into_iter().enumerate() {
            assert_eq!(Kinds::index(k), i);
            assert!(Kinds::ALL.contains(k));
        }
    }
}
