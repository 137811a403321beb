//! The names an instance gives its custom indicator types (`[api.types.*]`).

use serde::{Deserialize, Serialize};

/// Branch and field names of a custom indicator type with one value field,
/// and its type name where it is not ThreatConnect's default (the v3 and
/// batch APIs name the type in the body: `"type": "Mutex"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomType {
    pub branch: String,
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Branch and field names of the Registry Key custom type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryKeyType {
    pub branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub key_name: String,
    pub value_name: String,
    pub value_type: String,
}

/// The custom types' names, which an instance may define differently
/// (`GET /v2/types/indicatorTypes` lists them). Config: `[api.types.*]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TypeNames {
    pub asn: CustomType,
    pub cidr: CustomType,
    pub mutex: CustomType,
    pub user_agent: CustomType,
    pub registry_key: RegistryKeyType,
}

impl Default for TypeNames {
    fn default() -> Self {
        let custom = |branch: &str, field: &str| CustomType {
            branch: branch.into(),
            field: field.into(),
            name: None,
        };
        Self {
            asn: custom("asns", "AS Number"),
            cidr: custom("cidrBlocks", "Block"),
            mutex: custom("mutexes", "Mutex"),
            user_agent: custom("userAgents", "User Agent String"),
            registry_key: RegistryKeyType {
                branch: "registryKeys".into(),
                name: None,
                key_name: "Key Name".into(),
                value_name: "Value Name".into(),
                value_type: "Value Type".into(),
            },
        }
    }
}
