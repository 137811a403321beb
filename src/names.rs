//! Closed enums with fixed names: the names are what the database stores and
//! people type (`retry --class`), the enums are what the code matches on.
//! The string forms exist only at those edges (SQL, JSON, the command line).

/// A name that is not one of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}: expected one of {}", known.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub known: &'static [&'static str],
}

/// Declares a closed enum whose variants have fixed names: `as_str`,
/// `ALL`, `FromStr` (its error lists the names), `Display`, and serde as the
/// name.
macro_rules! named_enum {
    ($(#[$m:meta])* pub enum $name:ident ($what:literal) {
        $($(#[$vm:meta])* $v:ident => $s:literal,)+
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $v,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v,)+];
            pub const NAMES: &'static [&'static str] = &[$($s,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err($crate::names::UnknownName {
                        what: $what,
                        given: s.to_string(),
                        known: Self::NAMES,
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use named_enum;

crate::names::named_enum! {
    /// What an API answer, or a job's failure, was: stored as a job's
    /// `last_error_class` and a held owner's `class`, shown by `status`,
    /// counted by the metrics, and chosen with `retry --class`. `success` and
    /// `duplicate` are the classes of answers that succeeded (metrics only).
    pub enum ErrorClass ("error class") {
        Success => "success",
        Duplicate => "duplicate",
        Signature => "signature",
        Timestamp => "timestamp",
        AccessDenied => "access_denied",
        OwnerNotFound => "owner_not_found",
        Unauthorized => "unauthorized",
        Validation => "validation",
        NotFound => "not_found",
        RateLimited => "rate_limited",
        ServerError => "server_error",
        Transport => "transport",
        Unexpected => "unexpected",
        /// A job row that does not parse (inserted by hand with a bad type or payload).
        InvalidJob => "invalid_job",
        /// The job's owner is held: it waits without a request.
        Held => "held",
        /// The circuit breaker paused delivery.
        CircuitOpen => "circuit_open",
        /// The instance's batch API is off ("Batch job api is not available"):
        /// the owner's jobs go per indicator for a while.
        BatchUnavailable => "batch_unavailable",
        /// A batch upload was larger than the instance accepts: the batch is split.
        UploadTooLarge => "upload_too_large",
        /// A batch job failed as a whole (timed out, lost by the server, or
        /// stopped before processing every item): its unprocessed jobs go
        /// back to pending.
        BatchFailed => "batch_failed",
        /// The instance has no security label of this name: the indicator
        /// goes without it.
        SecurityLabel => "security_label",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for c in ErrorClass::ALL {
            assert_eq!(c.as_str().parse::<ErrorClass>(), Ok(*c));
            assert_eq!(
                serde_json::to_string(c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        let e = "bogus".parse::<ErrorClass>().unwrap_err();
        assert!(e.to_string().contains("validation"), "{e}");
        assert!(serde_json::from_str::<ErrorClass>("\"bogus\"").is_err());
    }
}

/// The tag `retire = "tag"` adds unless `retire_tag` says otherwise.
pub const DEFAULT_RETIRE_TAG: &str = "Retired";

named_enum! {
    /// How a feed retires what it dropped (`retire` on a feed rule,
    /// tc-api.md section 9).
    pub enum RetireMode ("retire mode") {
        /// Kept with its history, marked inactive (v3 PUT `active: false`).
        Inactive => "inactive",
        /// Deleted.
        Delete => "delete",
        /// A tag added (`retire_tag`), for instances where status changes
        /// are disabled.
        Tag => "tag",
    }
}

named_enum! {
    /// What a queue job does (`jobs.action`).
    pub enum JobAction ("job action") {
        /// Creates (or updates) the indicator, then its tags, attributes
        /// and labels.
        Create => "create",
        /// Marks it inactive.
        Deactivate => "deactivate",
        /// Deletes it.
        Delete => "delete",
        /// Adds the retire tag (the payload's one tag).
        Tag => "tag",
    }
}

impl JobAction {
    /// The job that retires an indicator in `mode`.
    pub fn retiring(mode: RetireMode) -> Self {
        match mode {
            RetireMode::Inactive => JobAction::Deactivate,
            RetireMode::Delete => JobAction::Delete,
            RetireMode::Tag => JobAction::Tag,
        }
    }

    /// Whether the job retires an indicator.
    pub fn retires(self) -> bool {
        self != JobAction::Create
    }
}
