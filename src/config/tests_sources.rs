//! `[[sources]]`: defaults, errors by key, presets, and `check-config`'s
//! rendering read back.

use std::path::Path;
use std::time::Duration;

use super::render::render;
use super::{Config, ConfigError, SecretEnv, SourceKind};

const API: &str = "[api]\nbase_url = \"https://api.threatconnect.com\"\naccess_id = \"a\"\nsecret_key = \"s\"\nowner = \"O\"\n";

fn parse(sources: &str) -> Result<Config, ConfigError> {
    Config::parse_with(
        &format!("{API}{sources}"),
        Path::new("/etc/tc-ingest/tc-ingest.toml"),
        &SecretEnv::default(),
    )
}

fn errors(sources: &str) -> Vec<String> {
    parse(sources).unwrap_err().0
}

#[track_caller]
fn has(errors: &[String], start: &str) {
    assert!(
        errors.iter().any(|e| e.starts_with(start)),
        "{start:?} not in {errors:#?}"
    );
}

#[test]
fn a_taxii_source_gets_its_defaults() {
    let c = parse(
        "[[sources]]\nname = \"partner\"\nkind = \"taxii\"\nurl = \"https://taxii.example/api1/\"\n\
         collection = \"c1\"\nusername = \"reader\"\npassword_file = \"partner.password\"\n",
    )
    .unwrap();
    let s = &c.sources[0];
    assert_eq!(s.kind, SourceKind::Taxii);
    assert_eq!(s.interval, Duration::from_secs(900));
    assert_eq!(s.stale_after, Duration::from_secs(2700), "3 x interval");
    assert_eq!(s.initial_lookback, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!((s.page_size, s.max_bytes), (1000, 1 << 30));
    assert_eq!(
        s.password_file.as_deref(),
        Some(Path::new("/etc/tc-ingest/partner.password")),
        "relative to the config's directory"
    );
    let c = parse(
        "[[sources]]\nname = \"h\"\nkind = \"http\"\nurl = \"https://x.example/l.txt\"\n\
         interval = \"10m\"\nstale_after = \"2d\"\nmax_bytes = \"10MB\"\ninitial_lookback = \"all\"\n",
    )
    .unwrap();
    let s = &c.sources[0];
    assert_eq!(
        (s.interval, s.stale_after),
        (Duration::from_secs(600), Duration::from_secs(172_800))
    );
    assert_eq!((s.max_bytes, s.initial_lookback), (10_000_000, None));
}

#[test]
fn every_mistake_is_named_by_its_key() {
    let e = errors(
        "[[sources]]\nname = \"Bad Name\"\nkind = \"ftp\"\nurl = \"http://feeds.example/x\"\n\
         [[sources]]\nname = \"t\"\nkind = \"taxii\"\nurl = \"https://user:pw@taxii.example/api1/\"\n\
         username = \"u\"\npage_size = 0\nmax_bytes = \"lots\"\nproxy = \"socks5://p:1080\"\n\
         [[sources]]\nname = \"t\"\nkind = \"http\"\nurl = \"https://x.example/\"\ncollection = \"c\"\n\
         client_cert_file = \"c.pem\"\ninterval = \"soon\"\n",
    );
    has(&e, "sources[0].name: \"Bad Name\" must be");
    has(&e, "sources[0].kind: unknown source kind \"ftp\"");
    has(
        &e,
        "sources[0].url: \"http://feeds.example/x\" is plain http",
    );
    has(&e, "sources[1].url: credentials in the URL are refused");
    has(&e, "sources[1].collection: missing");
    has(&e, "sources[1]: username and password_file go together");
    has(&e, "sources[1].page_size: 0 is not between 1 and 10000");
    has(&e, "sources[1].max_bytes: \"lots\" is not a size");
    has(&e, "sources[1].proxy: \"socks5://p:1080\" is not an http");
    has(
        &errors(
            "[[sources]]\nname = \"p\"\nkind = \"http\"\nurl = \"https://x.example/\"\nproxy = \"http://u:secret@proxy:3128\"\n",
        ),
        "sources[0].proxy: credentials in the proxy URL are refused",
    );
    has(&e, "sources[2].collection: only for kind = \"taxii\"");
    has(
        &e,
        "sources[2]: client_cert_file and client_key_file go together",
    );
    has(&e, "sources[2].interval: \"soon\" is not a duration");
    let e = errors(
        "[[sources]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x.example/\"\n[[sources]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://y.example/\"\n",
    );
    has(&e, "sources[1].name: \"a\" is used by another source");
    // Plain http to loopback is fine, as for the API.
    assert!(
        parse("[[sources]]\nname = \"l\"\nkind = \"http\"\nurl = \"http://127.0.0.1:8080/x\"\n")
            .is_ok()
    );
}

#[test]
fn a_systemd_credential_gives_the_password() {
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("tc-source-partner-password"), "pw").unwrap();
    let env = SecretEnv {
        credentials_dir: Some(creds.path().into()),
        ..SecretEnv::default()
    };
    let c = Config::parse_with(
        &format!("{API}[[sources]]\nname = \"partner\"\nkind = \"http\"\nurl = \"https://x.example/\"\nusername = \"u\"\n"),
        Path::new("/etc/tc-ingest/tc-ingest.toml"),
        &env,
    )
    .unwrap();
    assert_eq!(
        c.sources[0].password_file.as_deref(),
        Some(creds.path().join("tc-source-partner-password").as_path())
    );
}

#[test]
fn a_preset_source_gets_its_url_interval_and_feed_rule_and_keys_beside_it_win() {
    let c = parse("[[sources]]\nname = \"drop\"\npreset = \"spamhaus-drop\"\n").unwrap();
    let s = &c.sources[0];
    assert_eq!(s.kind, SourceKind::Http);
    assert_eq!(s.url, "https://www.spamhaus.org/drop/drop.txt");
    assert_eq!(s.interval, Duration::from_secs(12 * 3600));
    let rule = &c.feeds[0];
    assert_eq!(rule.dir.as_deref(), Some(Path::new("drop")));
    assert!(rule.snapshot && rule.tags == ["spamhaus-drop"]);
    // A key beside it wins; a rule written for the directory is kept as is.
    let c = parse(
        "[[feeds]]\ndir = \"drop\"\ntags = [\"mine\"]\n\
         [[sources]]\nname = \"drop\"\npreset = \"spamhaus-drop\"\ninterval = \"1d\"\n",
    )
    .unwrap();
    assert_eq!(c.sources[0].interval, Duration::from_secs(86_400));
    assert_eq!(c.feeds.len(), 1);
    assert_eq!(c.feeds[0].tags, ["mine"]);
    // A preset without a URL of its own needs one.
    has(
        &errors("[[sources]]\nname = \"dp\"\npreset = \"dataplane\"\n"),
        "sources[0].url: missing",
    );
    has(
        &errors("[[sources]]\nname = \"x\"\npreset = \"nope\"\n"),
        "sources[0].preset: unknown preset \"nope\"",
    );
}

#[test]
fn check_config_renders_sources_that_read_back_the_same() {
    let c = parse(
        "[[sources]]\nname = \"partner\"\nkind = \"taxii\"\nurl = \"https://taxii.example/api1/\"\n\
         collection = \"c1\"\ninitial_lookback = \"all\"\nproxy = \"http://proxy.example:3128\"\n\
         [[sources]]\nname = \"drop\"\npreset = \"spamhaus-drop\"\n",
    )
    .unwrap();
    let shown = render(&c);
    assert!(shown.contains("initial_lookback = \"all\""), "{shown}");
    let again = Config::parse_with(
        &shown,
        Path::new("/etc/tc-ingest/tc-ingest.toml"),
        &SecretEnv::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(again.sources, c.sources);
    assert_eq!(again.feeds.len(), c.feeds.len());
}

#[test]
fn a_source_lifecycle_keys_go_to_the_rule_of_its_directory_named_after_it() {
    let c = parse(
        "[[sources]]\nname = \"partner\"\nkind = \"http\"\nurl = \"https://feeds.example/list.txt\"\n\
         snapshot = true\nretire = \"delete\"\nmax_age = \"7d\"\n",
    )
    .unwrap();
    let rule = &c.feeds[0];
    assert_eq!(rule.dir.as_deref(), Some(Path::new("partner")));
    assert_eq!(rule.name.as_deref(), Some("partner"));
    assert!(rule.snapshot);
    assert_eq!(rule.lifecycle.retire, crate::names::RetireMode::Delete);
    // Beside a rule of its own: the rule is named after the source, and a
    // key set twice is an error.
    let c = parse(
        "[[feeds]]\ndir = \"partner\"\nowner = \"P\"\n\
         [[sources]]\nname = \"partner\"\nkind = \"http\"\nurl = \"https://feeds.example/l\"\nsnapshot = true\n",
    )
    .unwrap();
    assert_eq!(c.feeds.len(), 1);
    assert_eq!(c.feeds[0].name.as_deref(), Some("partner"));
    assert!(c.feeds[0].snapshot && c.feeds[0].owner.as_deref() == Some("P"));
    has(
        &errors(
            "[[feeds]]\ndir = \"partner\"\nmax_age = \"1d\"\nname = \"partner\"\n\
             [[sources]]\nname = \"partner\"\nkind = \"http\"\nurl = \"https://feeds.example/l\"\nmax_age = \"2d\"\n",
        ),
        "sources[0].max_age: also set on the feed rule",
    );
    has(
        &errors(
            "[[feeds]]\ndir = \"other\"\nname = \"partner\"\n\
             [[sources]]\nname = \"partner\"\nkind = \"http\"\nurl = \"https://feeds.example/l\"\n",
        ),
        "feeds[0].name: \"partner\" names a source",
    );
}
