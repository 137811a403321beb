//! The client against the simulator: every type, every failure class, the
//! fault modes, signing over the exact target.

use std::time::Duration;

use tc_ingest::api::{ApiRequest, Endpoints, Method, Outcome};
use tc_ingest::indicator::{Indicator, IndicatorType as T, Payload};
use tc_ingest::sim::Faults;

use crate::helpers::*;

#[tokio::test]
async fn creates_every_type_with_tags_and_attributes() {
    let app = TestApp::start().await;
    let client = app.client();
    let e = Endpoints::default();
    let payload = Payload {
        rating: Some(3.0),
        confidence: Some(70),
        tags: vec!["APT 28/x".into()],
        attributes: vec![description("seen")],
        ..Payload::default()
    };
    let cases = [
        (T::Address, "1.2.3.4"),
        (T::EmailAddress, "a@b.com"),
        (
            T::File,
            "d41d8cd98f00b204e9800998ecf8427e : da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
        (T::Host, "österreich.icom.museum"),
        (T::Url, "http://example.com/a%20b?q=1"),
        (T::Asn, "AS 123"),
        (T::Cidr, "2001:db8::/32"),
        (T::Mutex, "Global\\Evil"),
        (T::RegistryKey, "HKLM\\Software\\Run : v : REG_SZ"),
        (T::UserAgent, "Mozilla/5.0 (Evil)"),
    ];
    for (kind, value) in cases {
        let i = ind(kind, value);
        for step in 0..payload.steps() {
            let req = e.step(&i, &payload, "Common Community", step).unwrap();
            let resp = client.send(&req).await;
            assert_eq!(
                resp.outcome,
                Outcome::Success,
                "{kind} step {step}: {:?}",
                String::from_utf8_lossy(&resp.body)
            );
            if step == 0 {
                assert_eq!(resp.status, Some(201));
                let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
                assert!(v["data"][kind.entity()]["id"].is_u64(), "{v}");
            }
        }
    }
    let held = app.sim.indicators();
    assert_eq!(held.len(), 10);
    for s in &held {
        assert_eq!(s.tags.iter().collect::<Vec<_>>(), vec!["APT 28/x"], "{s:?}");
        assert_eq!(s.attributes.len(), 1);
        assert_eq!(s.owner, "Common Community");
        assert_eq!(s.rating, Some(3.0));
    }
    assert!(
        held.iter()
            .any(|s| s.value == "xn--sterreich-z7a.icom.museum")
    );
    assert!(held.iter().any(|s| s.value == "2001:db8:0:0:0:0:0:0/32"));
    // A repeated create updates in place.
    let again = client
        .send(&e.create(&ind(T::Address, "1.2.3.4"), &payload, "Common Community"))
        .await;
    assert_eq!(again.outcome, Outcome::Success);
    assert_eq!(
        app.sim
            .indicators()
            .iter()
            .find(|s| s.value == "1.2.3.4")
            .unwrap()
            .create_count,
        2
    );
}

#[tokio::test]
async fn sandbox_base_path_is_signed_too() {
    let app = TestApp::builder().base_path("/api").start().await;
    assert!(app.sim.base_url().ends_with("/api"));
    let owners = app.client().owners().await.unwrap();
    assert_eq!(owners.len(), 2);
    let resp = app
        .client()
        .send(&Endpoints::default().create(
            &ind(T::Host, "a.com"),
            &Payload::default(),
            "Common Community",
        ))
        .await;
    assert_eq!(resp.outcome, Outcome::Success);
}

/// Every failure class the simulator answers with, as the client
/// classifies it, one test a kind of trouble.
mod every_failure_class_from_the_simulator {
    use super::*;

    /// The simulator counted each of `classes` at least once.
    fn counted(app: &TestApp, classes: &[&str]) {
        let stats = app.sim.stats();
        for class in classes {
            assert!(
                stats.by_class.get(*class).copied().unwrap_or(0) >= 1,
                "{class} missing from {stats:?}"
            );
        }
    }

    #[tokio::test]
    async fn signature_and_timestamp() {
        let app = TestApp::start().await;
        let good = app.client();

        // Signature: wrong secret.
        assert_eq!(
            app.client_with("wrong").owners().await.unwrap_err(),
            Outcome::SignatureMismatch
        );

        // Timestamp: a server clock 10 minutes ahead, with its Date header.
        app.sim.set_faults(Faults {
            clock_skew_secs: 600,
            ..faults()
        });
        match good.owners().await.unwrap_err() {
            Outcome::TimestampOutOfRange {
                server_date: Some(t),
            } => {
                let ahead = t
                    .duration_since(std::time::SystemTime::now())
                    .unwrap()
                    .as_secs();
                assert!((590..=610).contains(&ahead), "{ahead}");
                good.clock().correct_to(t);
                assert!(good.owners().await.is_ok(), "a corrected clock signs in");
                good.clock().set_offset(0);
            }
            o => panic!("{o:?}"),
        }
        counted(&app, &["signature", "timestamp"]);
    }

    #[tokio::test]
    async fn owner_not_found_and_access_denied() {
        let app = TestApp::start().await;
        let (e, good) = (Endpoints::default(), app.client());
        let host = ind(T::Host, "a.com");
        let r = good
            .send(&e.create(&host, &Payload::default(), "Nobody"))
            .await;
        assert_eq!((r.outcome, r.status), (Outcome::OwnerNotFound, Some(403)));
        app.sim.set_faults(Faults {
            denied_owners: vec!["Common Community".into()],
            ..faults()
        });
        let r = good
            .send(&e.create(&host, &Payload::default(), "Common Community"))
            .await;
        assert!(
            matches!(r.outcome, Outcome::AccessDenied { .. }),
            "{:?}",
            r.outcome
        );
        counted(&app, &["owner_not_found", "access_denied"]);
    }

    #[tokio::test]
    async fn validation_not_found_and_duplicate() {
        let app = TestApp::start().await;
        let (e, good) = (Endpoints::default(), app.client());

        // Validation: a value the simulator's rules refuse (sent raw, as the
        // normalizer never would).
        let bad = Indicator::from_normalized(T::Asn, "AS 12".into());
        let r = good
            .send(&e.create(&bad, &Payload::default(), "Common Community"))
            .await;
        assert_eq!(
            r.outcome,
            Outcome::Validation {
                message: "Please enter a valid ASN".into()
            }
        );

        // Not found: a tag on an indicator that was never created.
        let r = good
            .send(&e.tag(&ind(T::Host, "never.com"), "x", "Common Community"))
            .await;
        assert_eq!(r.outcome, Outcome::NotFound);

        // Duplicate: a repeated File create answered the v2 way.
        app.sim.set_faults(Faults {
            file_exists_400: true,
            ..faults()
        });
        let file = ind(T::File, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            good.send(&e.create(&file, &Payload::default(), "Common Community"))
                .await
                .outcome,
            Outcome::Success
        );
        let r = good
            .send(&e.create(&file, &Payload::default(), "Common Community"))
            .await;
        assert!(
            matches!(r.outcome, Outcome::Duplicate { .. }),
            "{:?}",
            r.outcome
        );
        counted(&app, &["validation", "not_found", "duplicate"]);
    }

    #[tokio::test]
    async fn rate_limited_server_errors_and_a_dropped_connection() {
        let app = TestApp::start().await;
        let good = app.client();
        app.sim.set_faults(Faults {
            rate_limit_next: 1,
            retry_after_secs: 7,
            ..faults()
        });
        assert_eq!(
            good.owners().await.unwrap_err(),
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        app.sim.set_faults(Faults {
            fail_next: 1,
            error_status: 503,
            ..faults()
        });
        assert!(matches!(
            good.owners().await.unwrap_err(),
            Outcome::ServerError { status: 503, .. }
        ));
        app.sim.set_faults(Faults {
            drop_next: 1,
            ..faults()
        });
        assert!(matches!(
            good.owners().await.unwrap_err(),
            Outcome::Transport { .. }
        ));
        assert!(good.owners().await.is_ok(), "faults are used up");
        counted(&app, &["rate_limited", "injected_error", "dropped"]);
    }

    #[tokio::test]
    async fn unauthorized_an_expired_token() {
        // The simulator issues no token: any is refused as expired.
        let app = TestApp::start().await;
        let raw = http()
            .get(format!("{}/v2/owners", app.sim.base_url()))
            .header("Authorization", "TC-Token APIV2:430:c8mTcH:1")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status().as_u16(), 401);
        let body = raw.bytes().await.unwrap();
        assert_eq!(
            tc_ingest::api::outcome::classify(401, Some("application/json"), &body, None, None),
            Outcome::Unauthorized
        );
    }
}

/// POSTs `body` to `target` as sent on the wire, with a given signature.
async fn post_signed(
    sim: &tc_ingest::sim::Simulator,
    target: &str,
    sig: &str,
    ts: i64,
    body: &serde_json::Value,
) -> u16 {
    http()
        .post(format!("http://{}{target}", sim.addr))
        .header("Timestamp", ts.to_string())
        .header(
            "Authorization",
            format!("TC {}:{sig}", tc_ingest::sim::DEFAULT_ACCESS_ID),
        )
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn transport_errors_when_nothing_listens_or_answers_slowly() {
    // A port with nothing behind it.
    let port = free_port();
    let app = TestApp::builder()
        .faults(Faults {
            latency_ms: 1500,
            ..faults()
        })
        .start()
        .await;
    let mut cfg = app.config();
    cfg.api.base_url = format!("http://127.0.0.1:{port}");
    let c = tc_ingest::api::Client::new(&cfg.api, Default::default()).unwrap();
    assert!(matches!(
        c.owners().await.unwrap_err(),
        Outcome::Transport { .. }
    ));

    // Latency beyond the client's timeout.
    let mut cfg = app.config();
    cfg.api.timeout_secs = 1;
    let c = tc_ingest::api::Client::new(&cfg.api, Default::default()).unwrap();
    match c.owners().await.unwrap_err() {
        Outcome::Transport { message } => assert!(message.contains("timeout"), "{message}"),
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn simulator_verifies_the_raw_target_in_both_owner_encodings() {
    let app = TestApp::start().await;
    let body = serde_json::json!({"hostName": "enc.example.com"});
    for target in [
        "/v2/indicators/hosts?owner=Common%20Community",
        "/v2/indicators/hosts?owner=Common+Community",
    ] {
        let ts = tc_ingest::api::sign::unix_now();
        let sig = tc_ingest::api::sign::signature(
            tc_ingest::sim::DEFAULT_SECRET.as_bytes(),
            target,
            "POST",
            ts,
        );
        assert_eq!(
            post_signed(&app.sim, target, &sig, ts, &body).await,
            201,
            "{target}"
        );
        // Signed over one encoding, sent with the other: refused.
        let other = if target.contains("%20") {
            target.replace("%20", "+")
        } else {
            target.replace('+', "%20")
        };
        assert_eq!(post_signed(&app.sim, &other, &sig, ts, &body).await, 401);
    }
    // The control endpoint changes faults at run time.
    let status = post_sim_faults(&app.sim, serde_json::json!({"fail_next": 2})).await;
    assert_eq!(status, 200);
    assert_eq!(app.sim.faults().fail_next, 2);
    assert_eq!(
        app.sim.faults().error_status,
        500,
        "fields not given are kept"
    );
    let c = app.client();
    let req = ApiRequest {
        method: Method::Get,
        path_and_query: "/v2/owners".into(),
        body: None,
        upload: None,
    };
    assert!(matches!(
        c.send(&req).await.outcome,
        Outcome::ServerError { status: 500, .. }
    ));
}

#[tokio::test]
async fn random_error_rate_fails_about_that_fraction() {
    let app = TestApp::builder()
        .faults(Faults {
            error_rate: 0.3,
            error_status: 503,
            ..faults()
        })
        .start()
        .await;
    let c = app.client();
    let mut failed = 0;
    for _ in 0..400 {
        if c.owners().await.is_err() {
            failed += 1;
        }
    }
    assert!(
        (70..=170).contains(&failed),
        "{failed} of 400 failed at a 30% error rate"
    );
}
