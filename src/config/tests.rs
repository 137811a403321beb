//! Config validation: defaults, every error named by its key, secrets.

use super::*;

const MINIMAL: &str = r#"
[api]
base_url = "https://api.threatconnect.com"
access_id = "12345"
secret_key = "inline-secret"
owner = "Example Org"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(vec![e.to_string()]))?;
    raw.validate(Path::new("/etc/tc-ingest"), &SecretEnv::default())
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.api.secret.load().unwrap().expose(), "inline-secret");
    assert_eq!(c.queue.path, PathBuf::from("/var/lib/tc-ingest/queue.db"));
    assert_eq!(c.watch.dir, PathBuf::from("/var/lib/tc-ingest/incoming"));
    assert_eq!(c.watch.done_dir, PathBuf::from("/var/lib/tc-ingest/done"));
    assert_eq!(c.delivery.workers, 8);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let e = parse(&format!("{MINIMAL}\nbogus_key = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bogus_key"), "{e}");
    let e = parse("[delivery]\nworkerz = 3\n").unwrap_err().to_string();
    assert!(e.contains("workerz"), "{e}");
}

#[test]
fn every_error_is_reported_with_its_key() {
    let e = parse(
        "[api]\nbase_url = \"http://tc.example.com\"\n[delivery]\nworkers = 0\n[[feeds]]\nmatch = \"*.csv\"\ntype = \"nonsense\"\n",
    )
    .unwrap_err()
    .0;
    let all = e.join("\n");
    for key in [
        "api.base_url",
        "api.access_id",
        "api.owner",
        "delivery.workers",
        "feeds[0].type",
    ] {
        assert!(all.contains(key), "{key} missing from:\n{all}");
    }
    // The secret is read only where it is used (`run`, `ping`).
    assert!(!all.contains("secret"), "{all}");
}

#[test]
fn plain_http_only_for_loopback_or_opt_in() {
    let with = |url: &str, extra: &str| {
        parse(
            &MINIMAL
                .replace("https://api.threatconnect.com", url)
                .replace("[api]", &format!("[api]\n{extra}")),
        )
    };
    assert!(with("http://127.0.0.1:8080", "").is_ok());
    assert!(with("http://[::1]:8080/api", "").is_ok());
    assert!(with("http://localhost:8080", "").is_ok());
    assert!(with("http://tc.internal", "").is_err());
    assert!(with("http://tc.internal", "allow_insecure_http = true").is_ok());
}

#[test]
fn secret_order_env_file_credential_inline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "from-file\n").unwrap();
    std::fs::write(dir.path().join("tc-api-secret"), "from-credential").unwrap();
    let raw = || -> RawConfig {
        toml::from_str(&format!("{MINIMAL}secret_key_file = \"secret\"\n")).unwrap()
    };
    let env = SecretEnv {
        env_secret: Some("from-env".into()),
        credentials_dir: Some(dir.path().into()),
        state_dir: None,
    };
    let c = raw().validate(dir.path(), &env).unwrap();
    assert_eq!(c.api.secret.load().unwrap().expose(), "from-env");
    let env = SecretEnv {
        env_secret: None,
        ..env
    };
    let c = raw().validate(dir.path(), &env).unwrap();
    assert_eq!(c.api.secret.load().unwrap().expose(), "from-file");
    let no_file: RawConfig = toml::from_str(MINIMAL).unwrap();
    let c = no_file.validate(dir.path(), &env).unwrap();
    assert_eq!(c.api.secret.load().unwrap().expose(), "from-credential");
}

#[test]
fn secret_never_prints() {
    let c = parse(MINIMAL).unwrap();
    let debug = format!("{c:?}");
    let rendered = render(&c);
    for text in [&debug, &rendered] {
        assert!(!text.contains("inline-secret"), "{text}");
    }
    assert!(
        rendered.contains("# Secret key: api.secret_key (inline"),
        "{rendered}"
    );
    assert_eq!(format!("{}", c.api.secret.load().unwrap()), "[redacted]");
}

#[test]
fn feed_rules_match_names_and_dirs() {
    let c = parse(&format!(
        "{MINIMAL}\n[[feeds]]\nmatch = \"*.csv\"\nowner = \"A\"\n[[feeds]]\ndir = \"abuse\"\n[[feeds]]\nmatch = \"x/**/*.txt\"\n"
    ))
    .unwrap();
    assert!(c.feeds[0].matches(Path::new("sub/feed.csv")));
    assert!(!c.feeds[0].matches(Path::new("feed.txt")));
    assert!(c.feeds[1].matches(Path::new("abuse/a.txt")));
    assert!(!c.feeds[1].matches(Path::new("other/a.txt")));
    assert!(c.feeds[2].matches(Path::new("x/y/a.txt")));
}

#[test]
fn columns_name_fields_and_unknown_ones_list_the_known() {
    let e = parse(&format!(
        "{MINIMAL}\n[[feeds]]\nmatch = \"*.csv\"\ncolumns = {{ frist_seen = \"x\" }}\n"
    ))
    .unwrap_err()
    .0;
    assert_eq!(
        e,
        vec![
            "feeds[0].columns.frist_seen: unknown field; known: value, type, rating, confidence, \
             tags, description, owner, md5, sha1, sha256, key_name, value_name, value_type, \
             source, first_seen, last_seen"
        ]
    );
}

#[test]
fn columns_first_seen_maps_and_arrives_normalized_in_the_payload() {
    let c = parse(&format!(
        "{MINIMAL}\n[[feeds]]\nmatch = \"*.csv\"\n\
         columns = {{ value = \"ioc\", first_seen = \"added\", last_seen = \"Updated\" }}\n"
    ))
    .unwrap();
    let rule = &c.feeds[0];
    assert_eq!(
        rule.columns.get(&Field::FirstSeen).map(String::as_str),
        Some("added")
    );
    assert_eq!(
        rule.columns.get(&Field::LastSeen).map(String::as_str),
        Some("Updated")
    );
    assert!(
        render(&c).contains("first_seen = \"added\""),
        "{}",
        render(&c)
    );

    // Read through the rule's mapping, then normalized to the payload.
    let opts = crate::feed::ReadOptions {
        columns: rule.columns.clone(),
        ..crate::feed::ReadOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    std::fs::write(
        &path,
        "ioc,added,Updated\nevil.example.com,2026-10-04T14:34:56+02:00,1790000000\n",
    )
    .unwrap();
    let mut rows = Vec::new();
    crate::feed::read(&path, &opts, &mut |item| {
        if let crate::feed::Item::Row(r) = item {
            rows.push(r);
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(rows.len(), 1);
    let n = crate::normalize::record(&rows[0], &crate::normalize::FeedDefaults::default()).unwrap();
    assert_eq!(n.indicator.summary(), "evil.example.com");
    assert_eq!(
        n.payload.first_seen.as_deref(),
        Some("2026-10-04T12:34:56Z")
    );
    assert_eq!(n.payload.last_seen.as_deref(), Some("2026-09-21T14:13:20Z"));
}

mod example {
    use super::*;

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../config/tc-ingest.example.toml");
        let raw: RawConfig = toml::from_str(text).unwrap();
        let env = SecretEnv {
            env_secret: Some("from-env".into()),
            ..SecretEnv::default()
        };
        let c = raw.validate(Path::new("/etc/tc-ingest"), &env).unwrap();
        assert_eq!(c.feeds.len(), 2);
        assert_eq!(c.api.types, TypeNames::default());
        assert!(c.feeds[0].matches(Path::new("abuse-ch/today.csv")));
    }
}

mod one_run {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        Config::parse(text, &path)
    }

    #[test]
    fn every_problem_is_reported_in_one_run_even_type_errors() {
        let e = load(&format!(
            "{MINIMAL}timeout_secs = \"soon\"\n[delivery]\nrate_per_second = -1\nworkers = 0\n\
             [watch]\nsettle_ms = \"2s\"\ndone_retention = \"a week\"\n\
             [[feeds]]\nmatch = \"*.csv\"\nrating = \"high\"\ntype = \"nonsense\"\n[bogus]\n"
        ))
        .unwrap_err()
        .0
        .join("\n");
        for key in [
            "api.timeout_secs",
            "delivery.rate_per_second",
            "delivery.workers",
            "watch.settle_ms",
            "watch.done_retention",
            "feeds[0].rating",
            "feeds[0].type",
            "bogus",
        ] {
            assert!(e.contains(key), "{key} missing from:\n{e}");
        }
    }

    #[test]
    fn what_check_config_prints_reads_back_to_the_same() {
        let text = format!(
            "{MINIMAL}[watch]\nsettle_ms = 1500\ndone_retention = \"36h\"\n\
             [queue]\ndedup_window = \"90m\"\n[delivery]\nbackoff_base_ms = 250\ncircuit_open_max_secs = 45\n\
             [metrics]\nlisten = \"127.0.0.1:9184\"\n\
             [[feeds]]\nmatch = \"*.csv\"\nowner = \"A\"\ntags = [\"x\"]\nrating = 3.0\ncolumns = {{ value = \"ioc\" }}\n"
        );
        let first = render(&load(&text).unwrap());
        assert!(!first.contains("inline-secret"), "{first}");
        for key in [
            "settle_ms = 1500",
            "done_retention = \"1d 12h\"",
            "dedup_window = \"1h 30m\"",
            "backoff_base_ms = 250",
            "circuit_open_max_secs = 45",
            "# Secret key: api.secret_key (inline",
        ] {
            assert!(first.contains(key), "{key} missing from:\n{first}");
        }
        let second = render(
            &load(&first).unwrap_or_else(|e| panic!("check-config output refused: {e}\n{first}")),
        );
        // The inline secret is not printed, so the second reads none.
        let strip = |s: &str| s.lines().skip(2).collect::<Vec<_>>().join("\n");
        assert_eq!(strip(&first), strip(&second));
    }
}
