//! The fields of a feed row that a column (or JSON key) can fill: a closed
//! set, so a feed rule's `columns` is checked once, in `config`, and a typo in
//! code does not compile.

use std::cmp::Ordering;
use std::fmt;

/// A field of [`RawRecord`](super::RawRecord) a column can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Value,
    Type,
    Rating,
    Confidence,
    Tags,
    Description,
    Owner,
    Md5,
    Sha1,
    Sha256,
    KeyName,
    ValueName,
    ValueType,
    Source,
    FirstSeen,
    LastSeen,
    SecurityLabel,
    ExternalId,
    ValidUntil,
    RangeStart,
    RangeEnd,
    PrefixLength,
}

impl Field {
    /// Every field, in the order error messages list them.
    pub const ALL: [Field; 22] = [
        Field::Value,
        Field::Type,
        Field::Rating,
        Field::Confidence,
        Field::Tags,
        Field::Description,
        Field::Owner,
        Field::Md5,
        Field::Sha1,
        Field::Sha256,
        Field::KeyName,
        Field::ValueName,
        Field::ValueType,
        Field::Source,
        Field::FirstSeen,
        Field::LastSeen,
        Field::SecurityLabel,
        Field::ExternalId,
        Field::ValidUntil,
        Field::RangeStart,
        Field::RangeEnd,
        Field::PrefixLength,
    ];

    /// The field's name as a feed rule's `columns` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Value => "value",
            Field::Type => "type",
            Field::Rating => "rating",
            Field::Confidence => "confidence",
            Field::Tags => "tags",
            Field::Description => "description",
            Field::Owner => "owner",
            Field::Md5 => "md5",
            Field::Sha1 => "sha1",
            Field::Sha256 => "sha256",
            Field::KeyName => "key_name",
            Field::ValueName => "value_name",
            Field::ValueType => "value_type",
            Field::Source => "source",
            Field::FirstSeen => "first_seen",
            Field::LastSeen => "last_seen",
            Field::SecurityLabel => "security_label",
            Field::ExternalId => "external_id",
            Field::ValidUntil => "valid_until",
            Field::RangeStart => "range_start",
            Field::RangeEnd => "range_end",
            Field::PrefixLength => "prefix_length",
        }
    }

    /// The inverse of [`Field::as_str`], exact spelling only.
    pub fn parse(name: &str) -> Option<Field> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether the field alone names an indicator (a CSV header needs one).
    pub fn is_indicator(self) -> bool {
        matches!(
            self,
            Field::Value
                | Field::Md5
                | Field::Sha1
                | Field::Sha256
                | Field::KeyName
                | Field::RangeStart
        )
    }
}

/// Ordered by name, so maps keyed by fields iterate as they did when keyed by
/// the names.
impl Ord for Field {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Field {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names of a column by what it holds (abuse.ch, DataPlane, Spamhaus
/// JSON), squashed: the value, unless the table names one of the value's
/// own names (`indicator`, `value`, `ioc`...). Not `domain`: beside an AS
/// number it is the AS's (Spamhaus's ASN-DROP), not an indicator.
const VALUE_ALIASES: [&str; 9] = [
    "url",
    "ip",
    "ipaddr",
    "ipaddress",
    "dstip",
    "srcip",
    "saddr",
    "daddr",
    "cidr",
];

fn value_alias(squashed: &str) -> bool {
    VALUE_ALIASES.contains(&squashed)
}

/// Whether `name` is the value only by what it holds (see
/// [`VALUE_ALIASES`]): a column of that name gives way to one named
/// `indicator`, `value` or `ioc`.
pub fn is_value_alias(name: &str) -> bool {
    value_alias(&squash(name))
}

fn squash(name: &str) -> String {
    name.trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The field a column or JSON key stands for, by common names (case, spaces,
/// `_` and `-` ignored).
pub fn field_for_name(name: &str) -> Option<Field> {
    let n = squash(name);
    Some(match n.as_str() {
        "indicator" | "value" | "ioc" | "summary" | "observable" | "indicatorvalue"
        | "iocvalue" => Field::Value,
        // Columns named by what they hold (abuse.ch, DataPlane, Spamhaus
        // JSON): the first such column of a table is its value.
        n if value_alias(n) => Field::Value,
        "type" | "indicatortype" | "ioctype" | "kind" => Field::Type,
        "rating" | "threatrating" => Field::Rating,
        "confidence" | "confidencerating" => Field::Confidence,
        "tags" | "tag" | "labels" | "label" => Field::Tags,
        "description" | "desc" | "comment" | "comments" => Field::Description,
        "owner" | "ownername" => Field::Owner,
        "md5" => Field::Md5,
        "sha1" => Field::Sha1,
        "sha256" => Field::Sha256,
        "keyname" | "registrykey" | "regkey" | "key" => Field::KeyName,
        "valuename" => Field::ValueName,
        "valuetype" => Field::ValueType,
        "source" => Field::Source,
        "firstseen" => Field::FirstSeen,
        "lastseen" => Field::LastSeen,
        "securitylabel" | "securitylabels" | "tlp" => Field::SecurityLabel,
        "externalid" => Field::ExternalId,
        "validuntil" => Field::ValidUntil,
        // Address ranges (DShield's block list: Start, End, Netblock).
        "rangestart" | "start" | "startip" | "firstip" | "fromip" => Field::RangeStart,
        "rangeend" | "end" | "endip" | "lastip" | "toip" => Field::RangeEnd,
        "prefixlength" | "prefixlen" | "netblock" | "cidrbits" => Field::PrefixLength,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips_through_its_name() {
        for f in Field::ALL {
            assert_eq!(Field::parse(f.as_str()), Some(f), "{f}");
            assert_eq!(f.to_string(), f.as_str());
            assert_eq!(field_for_name(f.as_str()), Some(f), "{f}");
        }
        let mut names: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Field::ALL.len(), "names are distinct");
    }

    #[test]
    fn parse_table() {
        for (name, field) in [
            ("value", Some(Field::Value)),
            ("type", Some(Field::Type)),
            ("rating", Some(Field::Rating)),
            ("confidence", Some(Field::Confidence)),
            ("tags", Some(Field::Tags)),
            ("description", Some(Field::Description)),
            ("owner", Some(Field::Owner)),
            ("md5", Some(Field::Md5)),
            ("sha1", Some(Field::Sha1)),
            ("sha256", Some(Field::Sha256)),
            ("key_name", Some(Field::KeyName)),
            ("value_name", Some(Field::ValueName)),
            ("value_type", Some(Field::ValueType)),
            ("source", Some(Field::Source)),
            ("first_seen", Some(Field::FirstSeen)),
            ("last_seen", Some(Field::LastSeen)),
            ("security_label", Some(Field::SecurityLabel)),
            ("external_id", Some(Field::ExternalId)),
            ("valid_until", Some(Field::ValidUntil)),
            ("range_start", Some(Field::RangeStart)),
            ("range_end", Some(Field::RangeEnd)),
            ("prefix_length", Some(Field::PrefixLength)),
            // Exact spelling only: aliases are for feed headers, not config keys.
            ("firstSeen", None),
            ("Value", None),
            (" value", None),
            ("indicator", None),
            ("", None),
            ("valu", None),
        ] {
            assert_eq!(Field::parse(name), field, "{name:?}");
        }
    }

    #[test]
    fn seen_aliases() {
        for name in [
            "first_seen",
            "firstSeen",
            "first seen",
            "First-Seen",
            "FIRSTSEEN",
        ] {
            assert_eq!(field_for_name(name), Some(Field::FirstSeen), "{name:?}");
        }
        for name in ["last_seen", "lastSeen", "last seen", "Last-Seen"] {
            assert_eq!(field_for_name(name), Some(Field::LastSeen), "{name:?}");
        }
    }

    #[test]
    fn ordered_by_name() {
        let mut all = Field::ALL;
        all.sort();
        let names: Vec<&str> = all.iter().map(|f| f.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
