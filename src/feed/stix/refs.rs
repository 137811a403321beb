//! The first pass: what indicators refer to by id, collected from the
//! marking definitions and identities of the file (the standard's fixed TLP
//! ids are known without them).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// At most this many marking definitions and identities are kept: a file of
/// millions of them refers to the ones past it without their names.
const MAX_REFS: usize = 100_000;

/// Longest id kept.
const MAX_ID_BYTES: usize = 128;

/// Longest identity name kept.
const MAX_NAME_BYTES: usize = 256;

/// The TLP 1.0 marking-definition ids (STIX 2.1 7.2.1.4).
const TLP1: [(&str, &str); 4] = [
    (
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        "white",
    ),
    (
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        "green",
    ),
    (
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        "amber",
    ),
    (
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        "red",
    ),
];

/// The TLP 2.0 marking-definition ids (cti-stix-common-objects).
const TLP2: [(&str, &str); 5] = [
    (
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        "clear",
    ),
    (
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        "green",
    ),
    (
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        "amber",
    ),
    (
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        "amber+strict",
    ),
    (
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        "red",
    ),
];

/// The TLP 2.0 extension's id.
const TLP2_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

/// Marking ids to TLP levels (as `TLP:<LEVEL>`), identity ids to names.
#[derive(Debug, Default)]
pub(in crate::feed) struct Refs {
    tlp: HashMap<String, &'static str>,
    identities: HashMap<String, String>,
}

/// The head of an object: enough to tell whether the first pass wants it.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
}

impl Refs {
    /// Takes what it needs from one object of the first pass.
    pub(in crate::feed) fn collect(&mut self, bytes: &[u8]) {
        // Most objects are neither (an indicator names them only as
        // `"...--<uuid>"` references): told apart without parsing.
        if memchr::memmem::find(bytes, b"\"marking-definition\"").is_none()
            && memchr::memmem::find(bytes, b"\"identity\"").is_none()
        {
            return;
        }
        let Ok(head) = serde_json::from_slice::<Head<'_>>(bytes) else {
            return;
        };
        if !matches!(head.kind, Some("marking-definition" | "identity"))
            || self.tlp.len() + self.identities.len() >= MAX_REFS
        {
            return;
        }
        let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(bytes) else {
            return;
        };
        // A standard id is about 60 bytes: a longer one is not kept.
        let Some(id) = o
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| id.len() <= MAX_ID_BYTES)
        else {
            return;
        };
        if head.kind == Some("identity") {
            if let Some(name) = o.get("name").and_then(Value::as_str) {
                let cut = super::super::floor_char_boundary(name, MAX_NAME_BYTES);
                self.identities
                    .insert(id.to_string(), name[..cut].to_string());
            }
        } else if let Some(level) = tlp_of_definition(&o) {
            self.tlp.insert(id.to_string(), level);
        }
    }

    /// The TLP label (`TLP:AMBER`) of a marking id, if it is a TLP marking.
    pub(in crate::feed) fn tlp(&self, id: &str) -> Option<&'static str> {
        TLP1.iter()
            .chain(TLP2.iter())
            .find(|(known, _)| *known == id)
            .map(|(_, level)| label(level))
            .or_else(|| self.tlp.get(id).copied())
    }

    /// The name of an identity id, if the file holds it.
    pub(in crate::feed) fn identity(&self, id: &str) -> Option<&str> {
        self.identities.get(id).map(String::as_str)
    }
}

/// `TLP:<LEVEL>` for a level as written in lower case.
fn label(level: &str) -> &'static str {
    match level {
        "clear" => "TLP:CLEAR",
        "white" => "TLP:WHITE",
        "green" => "TLP:GREEN",
        "amber" => "TLP:AMBER",
        "amber+strict" => "TLP:AMBER+STRICT",
        _ => "TLP:RED",
    }
}

/// The TLP level a marking definition states: TLP 1.0 (`definition_type:
/// "tlp"`), the TLP 2.0 extension under any id, or OpenCTI's statement
/// marking (`x_opencti_definition_type: "TLP"`). Anything else: `None`.
fn tlp_of_definition(o: &serde_json::Map<String, Value>) -> Option<&'static str> {
    let level = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix("tlp:").unwrap_or(&s).to_string();
        ["clear", "white", "green", "amber", "amber+strict", "red"]
            .into_iter()
            .find(|l| *l == s)
            .map(label)
    };
    if o.get("definition_type").and_then(Value::as_str) == Some("tlp") {
        return o
            .get("definition")
            .and_then(|d| d.get("tlp"))
            .and_then(Value::as_str)
            .and_then(level);
    }
    if let Some(ext) = o.get("extensions").and_then(|e| e.get(TLP2_EXTENSION)) {
        return ext.get("tlp_2_0").and_then(Value::as_str).and_then(level);
    }
    if o.get("x_opencti_definition_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("tlp"))
    {
        return o
            .get("x_opencti_definition")
            .and_then(Value::as_str)
            .and_then(level);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlp_markings_are_known_by_fixed_id_or_by_definition() {
        let mut r = Refs::default();
        assert_eq!(
            r.tlp("marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"),
            Some("TLP:AMBER")
        );
        assert_eq!(
            r.tlp("marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"),
            Some("TLP:AMBER+STRICT")
        );
        r.collect(br#"{"type":"marking-definition","id":"marking-definition--own","extensions":{"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d":{"extension_type":"property-extension","tlp_2_0":"amber+strict"}}}"#);
        r.collect(br#"{"type":"marking-definition","id":"marking-definition--octi","definition_type":"statement","definition":{"statement":"x"},"x_opencti_definition_type":"TLP","x_opencti_definition":"TLP:RED"}"#);
        r.collect(br#"{"type":"marking-definition","id":"marking-definition--stmt","definition_type":"statement","definition":{"statement":"Copyright"}}"#);
        r.collect(br#"{"type":"identity","id":"identity--1","name":"ACME CERT"}"#);
        assert_eq!(r.tlp("marking-definition--own"), Some("TLP:AMBER+STRICT"));
        assert_eq!(r.tlp("marking-definition--octi"), Some("TLP:RED"));
        assert_eq!(r.tlp("marking-definition--stmt"), None);
        assert_eq!(r.identity("identity--1"), Some("ACME CERT"));
        assert_eq!(r.identity("identity--2"), None);
    }
}
