//! Request builders: branch, path, query and JSON body of every call the
//! daemon makes (tc-api.md section 3).

use crate::config::TypeNames;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::indicator::{Attribute, Indicator, IndicatorType, Payload};

/// Everything but the unreserved characters is encoded, as the official SDK's
/// `quote(value, safe='')` does: `http://x/` becomes `http%3A%2F%2Fx%2F`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// One API call: the path and query after the base URL (starting `/v2/` or
/// `/v3/`), already percent-encoded, and the body if any: JSON, or the bytes
/// of a batch data file (`application/octet-stream`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    pub method: Method,
    pub path_and_query: String,
    pub body: Option<Value>,
    pub upload: Option<bytes::Bytes>,
}

/// Builds the requests; holds the instance's type names.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    types: TypeNames,
}

impl Endpoints {
    pub fn new(types: TypeNames) -> Self {
        Self { types }
    }

    /// The URL branch of a type (`addresses`, `hosts`, ...).
    pub fn branch(&self, kind: IndicatorType) -> &str {
        match kind {
            IndicatorType::Address => "addresses",
            IndicatorType::EmailAddress => "emailAddresses",
            IndicatorType::File => "files",
            IndicatorType::Host => "hosts",
            IndicatorType::Url => "urls",
            IndicatorType::Asn => &self.types.asn.branch,
            IndicatorType::Cidr => &self.types.cidr.branch,
            IndicatorType::Mutex => &self.types.mutex.branch,
            IndicatorType::RegistryKey => &self.types.registry_key.branch,
            IndicatorType::UserAgent => &self.types.user_agent.branch,
        }
    }

    /// A type's name in v3 and batch bodies: ThreatConnect's, or the
    /// instance's name for a custom type (`api.types.<type>.name`).
    pub fn type_name(&self, kind: IndicatorType) -> &str {
        let custom = match kind {
            IndicatorType::Asn => &self.types.asn.name,
            IndicatorType::Cidr => &self.types.cidr.name,
            IndicatorType::Mutex => &self.types.mutex.name,
            IndicatorType::RegistryKey => &self.types.registry_key.name,
            IndicatorType::UserAgent => &self.types.user_agent.name,
            _ => &None,
        };
        custom.as_deref().unwrap_or(kind.tc_name())
    }

    /// `GET /v2/owners`: the connectivity check and owner probe.
    pub fn owners(&self) -> ApiRequest {
        ApiRequest {
            method: Method::Get,
            path_and_query: "/v2/owners".into(),
            body: None,
            upload: None,
        }
    }

    /// `GET /v2/securityLabels`: the instance's labels.
    pub fn security_labels(&self) -> ApiRequest {
        ApiRequest {
            method: Method::Get,
            path_and_query: "/v2/securityLabels".into(),
            body: None,
            upload: None,
        }
    }

    /// `POST .../<indicator>/securityLabels/<label>` with no body.
    pub fn security_label(&self, ind: &Indicator, label: &str, owner: &str) -> ApiRequest {
        ApiRequest {
            method: Method::Post,
            path_and_query: format!(
                "{}/securityLabels/{}{}",
                self.indicator_path(ind),
                encode_component(label),
                owner_query(owner)
            ),
            body: None,
            upload: None,
        }
    }

    /// `POST /v2/indicators/<branch>?owner=...&createActivityLog=false` with
    /// the type's value fields, rating and confidence.
    pub fn create(&self, ind: &Indicator, payload: &Payload, owner: &str) -> ApiRequest {
        let mut body = self.value_fields(ind);
        if let Some(r) = payload.rating {
            body.insert("rating".into(), json!(r));
        }
        if let Some(c) = payload.confidence {
            body.insert("confidence".into(), json!(c));
        }
        if let Some(a) = payload.active {
            body.insert("active".into(), json!(a));
        }
        ApiRequest {
            method: Method::Post,
            path_and_query: format!(
                "/v2/indicators/{}{}",
                self.branch(ind.kind()),
                owner_query(owner)
            ),
            body: Some(Value::Object(body)),
            upload: None,
        }
    }

    /// `POST .../<indicator>/tags/<tag>` with no body.
    pub fn tag(&self, ind: &Indicator, tag: &str, owner: &str) -> ApiRequest {
        ApiRequest {
            method: Method::Post,
            path_and_query: format!(
                "{}/tags/{}{}",
                self.indicator_path(ind),
                encode_component(tag),
                owner_query(owner)
            ),
            body: None,
            upload: None,
        }
    }

    /// `POST .../<indicator>/attributes` with `{"type","value","displayed":true}`.
    pub fn attribute(&self, ind: &Indicator, attr: &Attribute, owner: &str) -> ApiRequest {
        ApiRequest {
            method: Method::Post,
            path_and_query: format!(
                "{}/attributes{}",
                self.indicator_path(ind),
                owner_query(owner)
            ),
            body: Some(json!({"type": attr.kind, "value": attr.value, "displayed": true})),
            upload: None,
        }
    }

    /// `GET .../<indicator>/attributes?owner=...`: what an attribute call
    /// whose outcome is unknown may already have added.
    pub fn attributes(&self, ind: &Indicator, owner: &str) -> ApiRequest {
        ApiRequest {
            method: Method::Get,
            path_and_query: format!(
                "{}/attributes{}",
                self.indicator_path(ind),
                owner_query(owner)
            ),
            body: None,
            upload: None,
        }
    }

    /// Step `n` of delivering an indicator: 0 is the create, then one per tag,
    /// then one per attribute, then one per security label, then the status
    /// change (a v3 PUT: v2 has none). `None` past the last step.
    pub fn step(
        &self,
        ind: &Indicator,
        payload: &Payload,
        owner: &str,
        n: usize,
    ) -> Option<ApiRequest> {
        let tags = payload.tags.len();
        let attributes = payload.attributes.len();
        match n {
            0 => Some(self.create(ind, payload, owner)),
            n if n <= tags => Some(self.tag(ind, &payload.tags[n - 1], owner)),
            n if n <= tags + attributes => payload
                .attributes
                .get(n - 1 - tags)
                .map(|a| self.attribute(ind, a, owner)),
            // The status change is the last step, when `active` is set.
            n if n + 1 == payload.steps() && payload.active.is_some() => payload
                .active
                .map(|a| self.set_active(ind, owner, super::V3Target::Summary, a)),
            n => payload
                .label_of_step(n)
                .map(|l| self.security_label(ind, l, owner)),
        }
    }

    /// `POST /v3/indicators?owner=...`: one request with the type's value
    /// fields, rating, confidence, first and last seen, the source's dates,
    /// every tag, and the `attributes` and `labels` given (tc-api.md
    /// sections 7 and 9). A create of an existing indicator updates it.
    pub fn v3_create(
        &self,
        ind: &Indicator,
        payload: &Payload,
        owner: &str,
        attributes: &[&Attribute],
        labels: &[&str],
    ) -> ApiRequest {
        let mut body = Map::new();
        body.insert("type".into(), json!(self.type_name(ind.kind())));
        body.extend(self.value_fields(ind));
        if let Some(r) = payload.rating {
            body.insert("rating".into(), json!(r));
        }
        if let Some(c) = payload.confidence {
            body.insert("confidence".into(), json!(c));
        }
        if let Some(t) = &payload.first_seen {
            body.insert("firstSeen".into(), json!(t));
        }
        if let Some(t) = &payload.last_seen {
            body.insert("lastSeen".into(), json!(t));
        }
        if !payload.tags.is_empty() {
            let tags: Vec<Value> = payload.tags.iter().map(|t| json!({"name": t})).collect();
            body.insert("tags".into(), json!({ "data": tags }));
        }
        if !attributes.is_empty() {
            let attrs: Vec<Value> = attributes
                .iter()
                .map(|a| json!({"type": a.kind, "value": a.value}))
                .collect();
            body.insert("attributes".into(), json!({ "data": attrs }));
        }
        if !labels.is_empty() {
            let labels: Vec<Value> = labels.iter().map(|l| json!({"name": l})).collect();
            body.insert("securityLabels".into(), json!({ "data": labels }));
        }
        external_dates(&mut body, payload);
        if let Some(a) = payload.active {
            body.insert("active".into(), json!(a));
        }
        ApiRequest {
            method: Method::Post,
            path_and_query: format!("/v3/indicators?owner={}", encode_component(owner)),
            body: Some(Value::Object(body)),
            upload: None,
        }
    }

    /// One item of a batch data file (tc-api.md sections 5 and 9): summary,
    /// type, rating, confidence, tags, attributes, the `labels` given and the
    /// source's dates.
    pub fn batch_item(&self, ind: &Indicator, payload: &Payload, labels: &[&str]) -> Value {
        let mut item = Map::new();
        item.insert("summary".into(), json!(ind.summary()));
        item.insert("type".into(), json!(self.type_name(ind.kind())));
        if let Some(r) = payload.rating {
            item.insert("rating".into(), json!(r));
        }
        if let Some(c) = payload.confidence {
            item.insert("confidence".into(), json!(c));
        }
        if !payload.tags.is_empty() {
            let tags: Vec<Value> = payload.tags.iter().map(|t| json!({"name": t})).collect();
            item.insert("tag".into(), Value::Array(tags));
        }
        if !payload.attributes.is_empty() {
            let attrs: Vec<Value> = payload
                .attributes
                .iter()
                .map(|a| json!({"type": a.kind, "value": a.value}))
                .collect();
            item.insert("attribute".into(), Value::Array(attrs));
        }
        if !labels.is_empty() {
            let labels: Vec<Value> = labels.iter().map(|l| json!({"name": l})).collect();
            item.insert("securityLabel".into(), Value::Array(labels));
        }
        external_dates(&mut item, payload);
        if let Some(a) = payload.active {
            item.insert("active".into(), json!(a));
        }
        Value::Object(item)
    }

    fn indicator_path(&self, ind: &Indicator) -> String {
        format!(
            "/v2/indicators/{}/{}",
            self.branch(ind.kind()),
            encode_component(ind.path_identifier())
        )
    }

    fn value_fields(&self, ind: &Indicator) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: &str| {
            m.insert(k.to_string(), Value::String(v.to_string()));
        };
        let s = ind.summary();
        match ind.kind() {
            IndicatorType::Address => put("ip", s),
            IndicatorType::EmailAddress => put("address", s),
            IndicatorType::Host => put("hostName", s),
            IndicatorType::Url => put("text", s),
            IndicatorType::Asn => put(&self.types.asn.field, s),
            IndicatorType::Cidr => put(&self.types.cidr.field, s),
            IndicatorType::Mutex => put(&self.types.mutex.field, s),
            IndicatorType::UserAgent => put(&self.types.user_agent.field, s),
            IndicatorType::File => {
                let h = ind.file_hashes();
                for (k, v) in [("md5", h.md5), ("sha1", h.sha1), ("sha256", h.sha256)] {
                    if let Some(v) = v {
                        put(k, &v);
                    }
                }
            }
            IndicatorType::RegistryKey => {
                let p = ind.registry_parts();
                let t = &self.types.registry_key;
                put(&t.key_name, p.key_name);
                put(&t.value_name, p.value_name);
                put(&t.value_type, p.value_type);
            }
        }
        m
    }
}

/// The attribute that step `n` adds, when step `n` is an attribute call
/// (the one kind of call a blind retry would duplicate).
pub fn attribute_of_step(payload: &Payload, n: usize) -> Option<&Attribute> {
    n.checked_sub(1 + payload.tags.len())
        .and_then(|i| payload.attributes.get(i))
}

/// The source's dates of a v3 body or batch item: `externalDateExpires`
/// (STIX `valid_until`) and `externalLastModified` (the object's version).
fn external_dates(body: &mut Map<String, Value>, payload: &Payload) {
    if let Some(t) = &payload.external_expires {
        body.insert("externalDateExpires".into(), json!(t));
    }
    if let Some(t) = &payload.external_modified {
        body.insert("externalLastModified".into(), json!(t));
    }
}

/// `?owner=<owner>&createActivityLog=false`, the owner fully percent-encoded
/// (a space as `%20`).
fn owner_query(owner: &str) -> String {
    format!("?owner={}&createActivityLog=false", encode_component(owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CustomType;
    use crate::indicator::IndicatorType as T;

    fn ind(kind: T, s: &str) -> Indicator {
        Indicator::from_normalized(kind, s.into())
    }

    #[test]
    fn create_paths_and_bodies_for_every_type() {
        let e = Endpoints::default();
        let payload = Payload {
            rating: Some(3.5),
            confidence: Some(60),
            ..Payload::default()
        };
        let cases = [
            (T::Address, "1.2.3.4", "addresses", json!({"ip": "1.2.3.4"})),
            (
                T::EmailAddress,
                "a@b.com",
                "emailAddresses",
                json!({"address": "a@b.com"}),
            ),
            (T::Host, "b.com", "hosts", json!({"hostName": "b.com"})),
            (
                T::Url,
                "http://b.com/",
                "urls",
                json!({"text": "http://b.com/"}),
            ),
            (T::Asn, "ASN1", "asns", json!({"AS Number": "ASN1"})),
            (
                T::Cidr,
                "10.0.0.0/8",
                "cidrBlocks",
                json!({"Block": "10.0.0.0/8"}),
            ),
            (T::Mutex, "m", "mutexes", json!({"Mutex": "m"})),
            (
                T::UserAgent,
                "ua",
                "userAgents",
                json!({"User Agent String": "ua"}),
            ),
            (
                T::File,
                "d41d8cd98f00b204e9800998ecf8427e",
                "files",
                json!({"md5": "d41d8cd98f00b204e9800998ecf8427e"}),
            ),
            (
                T::RegistryKey,
                "HKEY_USERS\\x :   : REG_NONE",
                "registryKeys",
                json!({"Key Name": "HKEY_USERS\\x", "Value Name": " ", "Value Type": "REG_NONE"}),
            ),
        ];
        for (kind, value, branch, mut body) in cases {
            let r = e.create(&ind(kind, value), &payload, "Common Community");
            assert_eq!(r.method, Method::Post);
            assert_eq!(
                r.path_and_query,
                format!("/v2/indicators/{branch}?owner=Common%20Community&createActivityLog=false")
            );
            body["rating"] = json!(3.5);
            body["confidence"] = json!(60);
            assert_eq!(r.body.unwrap(), body, "{kind}");
        }
    }

    #[test]
    fn tag_and_attribute_paths_are_fully_encoded() {
        let e = Endpoints::default();
        let url = ind(T::Url, "http://example.com/");
        let r = e.tag(&url, "APT 28/x", "Org");
        assert_eq!(
            r.path_and_query,
            "/v2/indicators/urls/http%3A%2F%2Fexample.com%2F/tags/APT%2028%2Fx?owner=Org&createActivityLog=false"
        );
        let a = Attribute {
            kind: "Description".into(),
            value: "d".into(),
        };
        let r = e.attribute(&url, &a, "Org");
        assert!(
            r.path_and_query
                .starts_with("/v2/indicators/urls/http%3A%2F%2Fexample.com%2F/attributes?")
        );
        assert_eq!(
            r.body.unwrap(),
            json!({"type": "Description", "value": "d", "displayed": true})
        );
    }

    #[test]
    fn steps_run_create_tags_attributes() {
        let e = Endpoints::default();
        let p = Payload {
            tags: vec!["a".into(), "b".into()],
            attributes: vec![Attribute {
                kind: "Description".into(),
                value: "x".into(),
            }],
            ..Payload::default()
        };
        let i = ind(T::Host, "b.com");
        let paths: Vec<String> = (0..5)
            .map_while(|n| e.step(&i, &p, "O", n))
            .map(|r| r.path_and_query)
            .collect();
        assert_eq!(paths.len(), 4);
        assert!(paths[1].contains("/tags/a?") && paths[2].contains("/tags/b?"));
        assert!(paths[3].contains("/attributes?"));
    }

    #[test]
    fn custom_type_names_are_used() {
        let types = TypeNames {
            asn: CustomType {
                branch: "autonomousSystems".into(),
                field: "ASN".into(),
                name: Some("Autonomous System".into()),
            },
            ..TypeNames::default()
        };
        let e = Endpoints::new(types);
        let asn = ind(T::Asn, "ASN5");
        let r = e.create(&asn, &Payload::default(), "O");
        assert!(
            r.path_and_query
                .starts_with("/v2/indicators/autonomousSystems?")
        );
        assert_eq!(r.body.unwrap(), json!({"ASN": "ASN5"}));
        // v3 and batch name the type in the body.
        let v3 = e.v3_create(&asn, &Payload::default(), "O", &[], &[]);
        assert_eq!(
            v3.body.unwrap(),
            json!({"type": "Autonomous System", "ASN": "ASN5"})
        );
        let item = e.batch_item(&asn, &Payload::default(), &[]);
        assert_eq!(item["type"], "Autonomous System");
        let mutex = ind(T::Mutex, "m");
        assert_eq!(
            e.batch_item(&mutex, &Payload::default(), &[])["type"],
            "Mutex"
        );
    }
}
