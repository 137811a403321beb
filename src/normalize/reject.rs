//! Why a value or row was refused: a [`RejectRule`] from a closed set, whose
//! names are stored in the queue's rejects and shown to people, and a message.

use std::fmt;

/// Why a value or row was refused: a short stable rule name (for counting)
/// and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Reject {
    pub rule: RejectRule,
    pub message: String,
}

impl Reject {
    pub fn new(rule: RejectRule, message: String) -> Self {
        Self { rule, message }
    }
}

/// Every rule a row can break. [`RejectRule::as_str`] is the stable name
/// stored in the database: never change one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectRule {
    AddressHasPrefix,
    CannotDetermineType,
    CidrHostBits,
    CidrWithoutPrefix,
    ConflictingHashes,
    ControlCharacters,
    EmptyValue,
    HostIsIp,
    InvalidAsn,
    InvalidCidr,
    InvalidConfidence,
    InvalidEmail,
    InvalidHash,
    InvalidHost,
    InvalidIpv4,
    InvalidIpv6,
    InvalidRating,
    InvalidRegistryHive,
    InvalidRegistryValueName,
    InvalidRegistryValueType,
    /// A `first_seen` or `last_seen` that is not a timestamp.
    InvalidTimestamp,
    InvalidUrl,
    TagTooLong,
    UnknownType,
    UrlWithoutHost,
    UrlWithoutScheme,
    ValueTooLong,
    /// A row a reader could not split into fields (`feed::Item::Bad`).
    UnreadableRow,
}

impl RejectRule {
    pub const ALL: [RejectRule; 28] = [
        RejectRule::AddressHasPrefix,
        RejectRule::CannotDetermineType,
        RejectRule::CidrHostBits,
        RejectRule::CidrWithoutPrefix,
        RejectRule::ConflictingHashes,
        RejectRule::ControlCharacters,
        RejectRule::EmptyValue,
        RejectRule::HostIsIp,
        RejectRule::InvalidAsn,
        RejectRule::InvalidCidr,
        RejectRule::InvalidConfidence,
        RejectRule::InvalidEmail,
        RejectRule::InvalidHash,
        RejectRule::InvalidHost,
        RejectRule::InvalidIpv4,
        RejectRule::InvalidIpv6,
        RejectRule::InvalidRating,
        RejectRule::InvalidRegistryHive,
        RejectRule::InvalidRegistryValueName,
        RejectRule::InvalidRegistryValueType,
        RejectRule::InvalidTimestamp,
        RejectRule::InvalidUrl,
        RejectRule::TagTooLong,
        RejectRule::UnknownType,
        RejectRule::UrlWithoutHost,
        RejectRule::UrlWithoutScheme,
        RejectRule::ValueTooLong,
        RejectRule::UnreadableRow,
    ];

    /// The rule's stable name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectRule::AddressHasPrefix => "address-has-prefix",
            RejectRule::CannotDetermineType => "cannot-determine-type",
            RejectRule::CidrHostBits => "cidr-host-bits",
            RejectRule::CidrWithoutPrefix => "cidr-without-prefix",
            RejectRule::ConflictingHashes => "conflicting-hashes",
            RejectRule::ControlCharacters => "control-characters",
            RejectRule::EmptyValue => "empty-value",
            RejectRule::HostIsIp => "host-is-ip",
            RejectRule::InvalidAsn => "invalid-asn",
            RejectRule::InvalidCidr => "invalid-cidr",
            RejectRule::InvalidConfidence => "invalid-confidence",
            RejectRule::InvalidEmail => "invalid-email",
            RejectRule::InvalidHash => "invalid-hash",
            RejectRule::InvalidHost => "invalid-host",
            RejectRule::InvalidIpv4 => "invalid-ipv4",
            RejectRule::InvalidIpv6 => "invalid-ipv6",
            RejectRule::InvalidRating => "invalid-rating",
            RejectRule::InvalidRegistryHive => "invalid-registry-hive",
            RejectRule::InvalidRegistryValueName => "invalid-registry-value-name",
            RejectRule::InvalidRegistryValueType => "invalid-registry-value-type",
            RejectRule::InvalidTimestamp => "invalid-timestamp",
            RejectRule::InvalidUrl => "invalid-url",
            RejectRule::TagTooLong => "tag-too-long",
            RejectRule::UnknownType => "unknown-type",
            RejectRule::UrlWithoutHost => "url-without-host",
            RejectRule::UrlWithoutScheme => "url-without-scheme",
            RejectRule::ValueTooLong => "value-too-long",
            RejectRule::UnreadableRow => "unreadable-row",
        }
    }
}

impl fmt::Display for RejectRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares by the stable name, so `assert_eq!(reject.rule, "invalid-url")` reads well.
impl PartialEq<str> for RejectRule {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RejectRule {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_distinct() {
        let names: Vec<&str> = RejectRule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "address-has-prefix",
                "cannot-determine-type",
                "cidr-host-bits",
                "cidr-without-prefix",
                "conflicting-hashes",
                "control-characters",
                "empty-value",
                "host-is-ip",
                "invalid-asn",
                "invalid-cidr",
                "invalid-confidence",
                "invalid-email",
                "invalid-hash",
                "invalid-host",
                "invalid-ipv4",
                "invalid-ipv6",
                "invalid-rating",
                "invalid-registry-hive",
                "invalid-registry-value-name",
                "invalid-registry-value-type",
                "invalid-timestamp",
                "invalid-url",
                "tag-too-long",
                "unknown-type",
                "url-without-host",
                "url-without-scheme",
                "value-too-long",
                "unreadable-row",
            ]
        );
        for r in RejectRule::ALL {
            assert_eq!(r.to_string(), r.as_str());
            assert_eq!(r, r.as_str());
        }
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }
}
