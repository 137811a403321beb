//! The simulator's own capabilities that tests of the client rely on.

use tc_ingest::api::{ApiRequest, Endpoints, Method, Outcome};
use tc_ingest::indicator::{Attribute, Indicator, IndicatorType as T, Payload};

use crate::helpers::*;

const OWNER: &str = "Common Community";

fn ind(kind: T, s: &str) -> Indicator {
    tc_ingest::normalize::value(s, Some(kind)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn description(value: &str) -> Attribute {
    Attribute {
        kind: "Description".into(),
        value: value.into(),
    }
}

/// `GET .../<indicator>/attributes?owner=Common%20Community`, built like the
/// POST of an attribute (same path, same encoding).
fn list_attributes(i: &Indicator) -> ApiRequest {
    let post = Endpoints::default().attribute(i, &description("x"), OWNER);
    ApiRequest {
        method: Method::Get,
        path_and_query: post.path_and_query,
        body: None,
    }
}

#[tokio::test]
async fn lists_the_attributes_of_an_indicator() {
    let sim = sim().await;
    let c = client(&sim);
    let e = Endpoints::default();
    let url = ind(T::Url, "http://example.com/a%20b?q=1");
    let r = c.send(&e.create(&url, &Payload::default(), OWNER)).await;
    assert_eq!(r.outcome, Outcome::Success);
    for v in ["first", "second"] {
        let r = c.send(&e.attribute(&url, &description(v), OWNER)).await;
        assert_eq!(r.outcome, Outcome::Success, "{v}");
    }

    let r = c.send(&list_attributes(&url)).await;
    assert_eq!((r.outcome, r.status), (Outcome::Success, Some(200)));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["status"], "Success", "{v}");
    assert_eq!(v["data"]["resultCount"], 2, "{v}");
    let listed = v["data"]["attribute"].as_array().unwrap();
    let values: Vec<&str> = listed
        .iter()
        .map(|a| a["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["first", "second"]);
    for a in listed {
        assert_eq!(a["type"], "Description", "{a}");
        assert!(a["id"].as_u64().is_some_and(|id| id > 0), "{a}");
        assert!(
            a["dateAdded"].as_str().is_some_and(|d| d.ends_with('Z')),
            "{a}"
        );
    }
    assert_ne!(listed[0]["id"], listed[1]["id"]);
    // The store agrees with the answer.
    let held = &sim.indicators()[0];
    assert_eq!(held.attributes.len(), 2);
    assert_eq!(held.attributes[0].id, listed[0]["id"].as_u64().unwrap());

    // An indicator that was never created: 404.
    let r = c.send(&list_attributes(&ind(T::Host, "never.com"))).await;
    assert_eq!((r.outcome, r.status), (Outcome::NotFound, Some(404)));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["message"], "The requested resource was not found");

    // The owner is checked: an unknown one is refused.
    let mut other = list_attributes(&url);
    other.path_and_query = other.path_and_query.replace("Common%20Community", "Nobody");
    let r = c.send(&other).await;
    assert_eq!((r.outcome, r.status), (Outcome::OwnerNotFound, Some(403)));

    // A wrong signature is refused.
    let r = client_with(&sim, "wrong")
        .send(&list_attributes(&url))
        .await;
    assert_eq!(r.outcome, Outcome::SignatureMismatch);

    // Every GET was counted, whatever its answer.
    let stats = sim.stats();
    let target = list_attributes(&url).path_and_query;
    let path = target.split('?').next().unwrap();
    assert_eq!(stats.by_endpoint[&format!("GET {path}")], 3, "{stats:?}");
}
