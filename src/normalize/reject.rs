//! Why a value or row was refused: a [`RejectRule`] from a closed set, whose
//! names are stored in the queue's rejects and shown to people, and a message.

/// Why a value or row was refused: a short stable rule name (for counting)
/// and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Reject {
    pub rule: RejectRule,
    pub message: String,
}

impl Reject {
    /// A reject whose message quotes at most [`crate::feed::ECHO_BYTES`]
    /// (messages quote the value, which the reader bounded already).
    pub fn new(rule: RejectRule, message: String) -> Self {
        let message = if message.len() > crate::feed::ECHO_BYTES {
            crate::feed::cut(&message)
        } else {
            message
        };
        Self { rule, message }
    }
}

crate::names::named_enum! {
    /// Every rule a row can break. The name is what the database stores:
    /// never change one.
    pub enum RejectRule ("reject rule") {
        AddressHasPrefix => "address-has-prefix",
        CannotDetermineType => "cannot-determine-type",
        CidrHostBits => "cidr-host-bits",
        CidrWithoutPrefix => "cidr-without-prefix",
        ConflictingHashes => "conflicting-hashes",
        ControlCharacters => "control-characters",
        EmptyValue => "empty-value",
        HostIsIp => "host-is-ip",
        InvalidAsn => "invalid-asn",
        InvalidCidr => "invalid-cidr",
        InvalidConfidence => "invalid-confidence",
        InvalidEmail => "invalid-email",
        InvalidHash => "invalid-hash",
        InvalidHost => "invalid-host",
        InvalidIpv4 => "invalid-ipv4",
        InvalidIpv6 => "invalid-ipv6",
        InvalidRating => "invalid-rating",
        InvalidRegistryHive => "invalid-registry-hive",
        InvalidRegistryValueName => "invalid-registry-value-name",
        InvalidRegistryValueType => "invalid-registry-value-type",
        /// A `first_seen` or `last_seen` that is not a timestamp.
        InvalidTimestamp => "invalid-timestamp",
        InvalidUrl => "invalid-url",
        TagTooLong => "tag-too-long",
        UnknownType => "unknown-type",
        UrlWithoutHost => "url-without-host",
        UrlWithoutScheme => "url-without-scheme",
        ValueTooLong => "value-too-long",
        /// A row a reader could not split into fields (`feed::Item::Bad`).
        UnreadableRow => "unreadable-row",
        /// A whole file, or its rest past a line, that could not be read
        /// (the last line of its errors report).
        FileUnreadable => "file-unreadable",
        /// A registry key name holding the summary's separator (` : `, or
        /// ` :` at its end): its summary would read back differently.
        InvalidRegistryKeyName => "invalid-registry-key-name",
        /// A value or tag of only `.` or `..`: URL parsing resolves such a
        /// path segment away (`%2E` too), so its calls would go elsewhere.
        DotSegment => "dot-segment",
        /// A STIX pattern construct or object path not turned into
        /// indicators (`feed::Refusal::StixUnsupported`).
        StixUnsupported => "stix-unsupported",
        /// A STIX indicator whose `pattern_type` is not `stix`.
        StixPatternType => "stix-pattern-type",
        /// A STIX object that breaks the standard.
        StixInvalid => "stix-invalid",
        /// A MISP event or attribute that breaks MISP's format.
        MispInvalid => "misp-invalid",
        /// An address range (start and end) that is not exactly one CIDR
        /// block: never widened to one.
        RangeNotOneCidr => "range-not-one-cidr",
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
                "file-unreadable",
                "invalid-registry-key-name",
                "dot-segment",
                "stix-unsupported",
                "stix-pattern-type",
                "stix-invalid",
                "misp-invalid",
                "range-not-one-cidr",
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
