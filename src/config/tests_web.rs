//! `[metrics]`: the listener off loopback needs a token file.

use super::Config;

#[test]
fn a_listener_off_loopback_needs_a_token_file() {
    let api = "[api]\nbase_url = \"https://api.threatconnect.com\"\naccess_id = \"a\"\nsecret_key = \"s\"\nowner = \"O\"\n";
    let path = std::path::Path::new("/etc/tc-ingest/tc-ingest.toml");
    let e = Config::parse(
        &format!("{api}[metrics]\nlisten = \"0.0.0.0:9184\"\n"),
        path,
    )
    .unwrap_err()
    .0;
    assert!(
        e.iter()
            .any(|m| m.starts_with("metrics.listen: 0.0.0.0:9184 is not a loopback address")),
        "{e:#?}"
    );
    let c = Config::parse(
        &format!("{api}[metrics]\nlisten = \"0.0.0.0:9184\"\ntoken_file = \"web.token\"\n"),
        path,
    )
    .unwrap();
    assert_eq!(
        c.metrics.token_file.as_deref(),
        Some(std::path::Path::new("/etc/tc-ingest/web.token"))
    );
    let loopback = Config::parse(&format!("{api}[metrics]\nlisten = \"[::1]:9184\"\n"), path);
    assert!(loopback.is_ok());
    let shown = super::render::render(&c);
    assert!(
        shown.contains("token_file = \"/etc/tc-ingest/web.token\""),
        "{shown}"
    );
}
