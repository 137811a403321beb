//! The simulator's own capabilities that tests of the client rely on:
//! listing attributes, the lost-response fault, a restart on the same port.

use std::time::{Duration, Instant};
use tc_ingest::api::{ApiRequest, Endpoints, Method, Outcome};
use tc_ingest::indicator::{Indicator, IndicatorType as T, Payload};

use tc_ingest::sim::{Faults, SimConfig, Simulator};

use crate::helpers::*;

const OWNER: &str = "Common Community";

/// `GET .../<indicator>/attributes?owner=Common%20Community`, built like the
/// POST of an attribute (same path, same encoding).
fn list_attributes(i: &Indicator) -> ApiRequest {
    let post = Endpoints::default().attribute(i, &description("x"), OWNER);
    ApiRequest {
        method: Method::Get,
        path_and_query: post.path_and_query,
        body: None,
        upload: None,
    }
}

#[tokio::test]
async fn lists_the_attributes_of_an_indicator() {
    let app = TestApp::start().await;
    let (sim, c) = (&app.sim, app.client());
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
    let r = app.client_with("wrong").send(&list_attributes(&url)).await;
    assert_eq!(r.outcome, Outcome::SignatureMismatch);

    // Every GET was counted, whatever its answer.
    let stats = sim.stats();
    let target = list_attributes(&url).path_and_query;
    let path = target.split('?').next().unwrap();
    assert_eq!(stats.by_endpoint[&format!("GET {path}")], 3, "{stats:?}");
}

#[tokio::test]
async fn lost_response_stores_the_attribute_but_cuts_the_answer() {
    let app = TestApp::start().await;
    let (sim, c) = (&app.sim, app.client());
    let e = Endpoints::default();
    let host = ind(T::Host, "lost.example.com");
    let r = c.send(&e.create(&host, &Payload::default(), OWNER)).await;
    assert_eq!(r.outcome, Outcome::Success);

    sim.set_faults(Faults {
        lost_response_rate: 1.0,
        ..faults()
    });
    let r = c
        .send(&e.attribute(&host, &description("maybe"), OWNER))
        .await;
    assert!(
        matches!(r.outcome, Outcome::Transport { .. }),
        "{:?}",
        r.outcome
    );
    let held = sim.indicators();
    assert_eq!(held[0].attributes.len(), 1, "{held:?}");
    assert_eq!(held[0].attributes[0].value, "maybe");
    assert_eq!(sim.stats().by_class["lost_response"], 1);

    // A create under the fault is stored as well.
    let r = c
        .send(&e.create(&ind(T::Host, "b.example.com"), &Payload::default(), OWNER))
        .await;
    assert!(matches!(r.outcome, Outcome::Transport { .. }));
    assert_eq!(sim.indicators().len(), 2);

    // Without the fault, the listing shows the attribute once: a client can
    // find out there that its POST went through.
    sim.set_faults(faults());
    let r = c.send(&list_attributes(&host)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["data"]["resultCount"], 1, "{v}");
}

#[tokio::test]
async fn lost_response_rate_is_settable_at_run_time() {
    let app = TestApp::start().await;
    let sim = &app.sim;
    let status = post_sim_faults(sim, serde_json::json!({"lost_response_rate": 0.5})).await;
    assert_eq!(status, 200);
    assert_eq!(sim.faults().lost_response_rate, 0.5);
    assert_eq!(sim.faults().error_status, 500, "fields not given are kept");
}

#[tokio::test]
async fn restarts_on_the_same_port() {
    let app = TestApp::start().await;
    let c = app.client();
    let TestApp { sim, .. } = app;
    let addr = sim.addr;
    assert!(c.owners().await.is_ok());
    sim.stop().await;
    // The outage: the same client cannot connect.
    assert!(matches!(
        c.owners().await.unwrap_err(),
        Outcome::Transport { .. }
    ));

    let again = Simulator::start_on_addr(SimConfig::default(), addr)
        .await
        .expect("the port is free after stop");
    assert_eq!(again.addr, addr);
    assert!(c.owners().await.is_ok(), "the client reaches the new one");
    assert!(again.indicators().is_empty(), "a new store");
    again.stop().await;
}

#[tokio::test]
async fn restarts_on_the_same_port_while_a_request_hangs() {
    let app = TestApp::start().await;
    let mut cfg = app.config();
    let TestApp { sim, .. } = app;
    let addr = sim.addr;
    sim.set_faults(Faults {
        latency_ms: 60_000,
        ..faults()
    });
    // A client that would wait longer than stop() does.
    cfg.api.timeout_secs = 60;
    let c = tc_ingest::api::Client::new(&cfg.api, Default::default()).unwrap();
    let c2 = c.clone();
    let hanging = tokio::spawn(async move { c.owners().await });
    wait_until(
        Duration::from_secs(5),
        "the request's connection open at the simulator",
        async || connections_to(addr) > 0,
    )
    .await;
    let t = Instant::now();
    sim.stop().await;
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    // stop() has cut the hanging connection and freed the port.
    let cut = tokio::time::timeout(Duration::from_secs(1), hanging)
        .await
        .expect("the hanging request ends with stop()")
        .unwrap();
    assert!(matches!(cut.unwrap_err(), Outcome::Transport { .. }));
    let _again = Simulator::start_on_addr(SimConfig::default(), addr)
        .await
        .expect("the port is free after stop");
    assert!(c2.owners().await.is_ok());
}

/// Section 9 as the simulator serves it: a v3 PUT of the status by
/// summary and by id, the TQL look-up (inactive ones only when asked),
/// the v3 and v2 DELETE, and a batch `Delete` job (0x1007 for an item the
/// owner does not have).
#[tokio::test]
async fn serves_status_changes_deletes_and_look_ups() {
    use tc_ingest::api::V3Target;
    let app = TestApp::start().await;
    let (c, e) = (app.client(), Endpoints::default());
    let host = ind(T::Host, "retire-me.example-threat.net");
    let addr = ind(T::Address, "45.1.1.1");
    for i in [&host, &addr] {
        let r = c.send(&e.create(i, &Payload::default(), OWNER)).await;
        assert_eq!(r.outcome, Outcome::Success);
    }
    let r = c
        .send(&e.set_active(&host, OWNER, V3Target::Summary, false))
        .await;
    assert_eq!((r.outcome, r.status), (Outcome::Success, Some(200)));
    let held = |v: &str| app.sim.indicators().into_iter().find(|i| i.value == v);
    assert_eq!(
        held(host.summary()).map(|i| (i.active, i.deactivations)),
        Some((false, 1))
    );
    // Listings leave inactive indicators out unless asked.
    assert_eq!(c.lookup_id(&e.lookup(&host, OWNER, false)).await, Ok(None));
    let id = c
        .lookup_id(&e.lookup(&host, OWNER, true))
        .await
        .unwrap()
        .unwrap();
    let r = c
        .send(&e.set_active(&host, OWNER, V3Target::Id(id), true))
        .await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(
        held(host.summary()).map(|i| (i.active, i.reactivations)),
        Some((true, 1))
    );
    // Another owner's id is not found.
    let r = c
        .send(&e.set_active(&host, "Nobody Org", V3Target::Id(id), false))
        .await;
    assert_ne!(r.outcome, Outcome::Success);
    let r = c.send(&e.delete(&host, OWNER, V3Target::Summary)).await;
    assert_eq!((r.outcome, r.status), (Outcome::Success, Some(200)));
    assert!(held(host.summary()).is_none());
    let r = c.send(&e.delete(&host, OWNER, V3Target::Summary)).await;
    assert_eq!(r.status, Some(404), "deleted: found no more");

    // A batch Delete job: the address is deleted, the host is not found.
    let config = tc_ingest::config::BatchConfig::default();
    let mut create = tc_ingest::api::batch::create(OWNER, &config);
    create.body.as_mut().unwrap()["action"] = "Delete".into();
    let r = c.send(&create).await;
    assert_eq!(r.outcome, Outcome::Success);
    let created: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let batch_id = created["data"]["batchId"].as_i64().unwrap();
    let data = serde_json::json!({"indicator": [
        {"summary": "45.1.1.1", "type": "Address"},
        {"summary": "retire-me.example-threat.net", "type": "Host"},
    ]});
    let r = c
        .send(&tc_ingest::api::batch::upload(
            batch_id,
            serde_json::to_vec(&data).unwrap().into(),
        ))
        .await;
    assert_eq!(r.outcome, Outcome::Success);
    wait_until(
        Duration::from_secs(10),
        "the batch job completes",
        async || {
            let r = c.send(&tc_ingest::api::batch::status(batch_id)).await;
            String::from_utf8_lossy(&r.body).contains("Completed")
        },
    )
    .await;
    assert!(held("45.1.1.1").is_none());
    let deleted: Vec<String> = app.sim.deleted().into_iter().map(|i| i.value).collect();
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    let r = c.send(&tc_ingest::api::batch::results(batch_id)).await;
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains("0x1007") && text.contains("indicator[1]"),
        "{text}"
    );
}
