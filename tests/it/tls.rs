//! HTTPS, as against the real API: the client verifies the server's
//! certificate, and `api.ca_file` adds the private CA of an on-premise
//! instance.

use tc_ingest::api::{Client, Outcome};

use crate::helpers::{TestApp, https_sim, private_ca};

#[tokio::test]
async fn https_with_a_private_ca_from_ca_file() {
    let (ca_pem, cert, key) = private_ca();
    let app = TestApp::builder()
        .simulator(https_sim(cert, key).await)
        .start()
        .await;
    assert!(app.sim.base_url().starts_with("https://127.0.0.1:"));

    // Without the CA the server is not trusted: a transport error naming TLS.
    let cfg = app.config();
    let untrusted = Client::new(&cfg.api, Default::default()).unwrap();
    match untrusted.owners().await.unwrap_err() {
        Outcome::Transport { message } => {
            assert!(message.to_lowercase().contains("certificate"), "{message}")
        }
        o => panic!("{o:?}"),
    }

    // With api.ca_file it is, and requests are signed and accepted as usual.
    let ca_file = app.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mut cfg = app.config();
    cfg.api.ca_file = Some(ca_file);
    let trusted = Client::new(&cfg.api, Default::default()).unwrap();
    let owners = trusted.owners().await.unwrap();
    assert_eq!(owners.len(), 2);
}
