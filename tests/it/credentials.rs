//! Credentials as ThreatConnect users have them: tcex's environment
//! variables, and API token auth (`TC-Token`) with the pause an expired
//! token causes.

use std::path::Path;
use std::time::Duration;

use tc_ingest::names::ErrorClass;
use tc_ingest::queue::JobState;
use tc_ingest::sim::{DEFAULT_ACCESS_ID, DEFAULT_SECRET, DEFAULT_TOKEN};

use crate::helpers::*;

/// The sped-up error policy, with two workers and the default attempts.
fn fast() -> String {
    FAST_POLICY
        .replace("workers = 4", "workers = 2")
        .replace("max_attempts = 5\n", "")
}

#[tokio::test]
async fn ping_works_with_only_the_tcex_environment_variables() {
    let app = TestApp::start().await;
    let mut ping = command(&["ping"]);
    // No --config and no TC_INGEST_CONFIG: the default path, which on a
    // machine with the package installed exists; then an empty config
    // stands for it (the environment fills every value either way).
    let default = Path::new(tc_ingest::config::DEFAULT_PATH);
    let empty = app.path().join("empty.toml");
    if default.exists() {
        println!(
            "note: {} exists: using an empty config file instead",
            default.display()
        );
        std::fs::write(&empty, "").unwrap();
        ping.env("TC_INGEST_CONFIG", &empty);
    }
    let tcex = [
        ("TC_API_PATH", app.sim.base_url()),
        ("TC_API_ACCESS_ID", DEFAULT_ACCESS_ID.to_string()),
        ("TC_API_SECRET_KEY", DEFAULT_SECRET.to_string()),
        ("API_DEFAULT_ORG", "Common Community".to_string()),
    ];
    ping.envs(tcex.clone());
    let out = ping.output().await.unwrap();
    exited(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("access id {DEFAULT_ACCESS_ID}")),
        "{stdout}"
    );
    assert!(stdout.contains("Common Community  (api.owner)"), "{stdout}");
    assert_eq!(app.sim.stats().by_class["success"], 1);

    // check-config says where each value came from, and never the secret.
    let mut check = command(&["check-config"]);
    if default.exists() {
        check.env("TC_INGEST_CONFIG", &empty);
    }
    let out = check.envs(tcex).output().await.unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert_contains_all(
        &shown,
        &[
            "base_url     environment TC_API_PATH",
            "access_id    environment TC_API_ACCESS_ID",
            "owner        environment API_DEFAULT_ORG",
            "credentials  HMAC secret key from environment TC_API_SECRET_KEY",
        ],
    );
    assert!(!shown.contains(DEFAULT_SECRET), "{shown}");
}

#[tokio::test]
async fn a_config_file_value_wins_over_the_tcex_variable() {
    let app = TestApp::start().await;
    // The environment names a wrong server and a wrong key: the file's win.
    let out = app
        .command(&["ping"])
        .env("TC_API_PATH", "http://127.0.0.1:9")
        .env("TC_API_SECRET_KEY", "wrong")
        .env("API_DEFAULT_ORG", "Nobody")
        .output()
        .await
        .unwrap();
    exited(&out, 0);
}

/// Credentials that are the simulator's API token, and the sped-up
/// error policy.
async fn token_app() -> TestApp {
    TestApp::builder()
        .token(DEFAULT_TOKEN)
        .extra_config(&fast())
        .start()
        .await
}

#[tokio::test]
async fn token_auth_delivers_with_only_a_token() {
    let app = token_app().await;
    let text = std::fs::read_to_string(app.config_path()).unwrap();
    assert!(
        !text.contains("access_id") && !text.contains("secret_key"),
        "{text}"
    );

    let out = app.binary(&["ping"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("with the API token from api.token_file"),
        "{stdout}"
    );

    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 3, 1)).await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.paused);
    assert_eq!(d.queue.count(Some(JobState::Delivered)).await.unwrap(), 3);
    assert_eq!(app.sim.indicators().len(), 3);

    // A token the simulator does not know is refused like an expired one.
    std::fs::write(app.path().join("token"), "APIV2:1:not-issued").unwrap();
    let out = app.binary(&["ping"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
}

#[tokio::test]
async fn an_expired_token_pauses_delivery_saying_to_issue_a_new_one() {
    let app = token_app().await;
    assert_eq!(app.binary(&["ping"]).await.status.code(), Some(0));
    // The simulator's control endpoint expires the token.
    let status = post_sim_faults(&app.sim, serde_json::json!({"token_expired": true})).await;
    assert!((200..300).contains(&status), "{status}");
    let out = app.binary(&["ping"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ping failed: unauthorized (Unauthorized)"),
        "{stderr}"
    );
    assert!(stderr.contains("issue a new token"), "{stderr}");

    let d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 4, 0)).await;
    let delivering = d.deliver_in_background();
    // The gate pauses first, then the pause is written: wait for the row.
    wait_until(
        Duration::from_secs(5),
        "delivery paused and recorded",
        async || d.delivery.gate.paused().is_some() && d.queue.pause().await.unwrap().is_some(),
    )
    .await;
    let pause = d.queue.pause().await.unwrap().expect("pause recorded");
    assert_eq!(pause.class, ErrorClass::Unauthorized);
    assert!(
        pause.reason.contains("issue a new token"),
        "{}",
        pause.reason
    );
    assert!(pause.reason.contains("api.token_file"), "{}", pause.reason);
    let status =
        tc_ingest::status::table(&tc_ingest::status::StatusView::read(&d.queue).await.unwrap());
    assert!(status.contains("DELIVERY PAUSED: unauthorized"), "{status}");
    assert!(!status.contains(DEFAULT_TOKEN), "{status}");
    let pending = d.queue.jobs_in_state(JobState::Pending).await.unwrap();
    assert_eq!(pending.len(), 4);
    assert!(pending.iter().all(|j| j.attempts == 0), "no attempt burned");

    // A valid token again (issued and reloaded): the probe resumes delivery.
    app.sim.set_faults(faults());
    assert!(d.reload());
    wait_until(
        Duration::from_secs(10),
        "delivery resumed with a valid token",
        async || d.queue.count(Some(JobState::Delivered)).await.unwrap() == 4,
    )
    .await;
    delivering.stop().await;
}
