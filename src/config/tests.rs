//! Config validation: defaults, every error named by its key, secrets.

use super::*;

const MINIMAL: &str = r#"
[api]
base_url = "https://api.threatconnect.com"
access_id = "12345"
secret_key = "inline-secret"
owner = "Example Org"
"#;

/// Checks that `text` contains every one of `parts`.
#[track_caller]
fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(vec![e.to_string()]))?;
    raw.validate(Path::new("/etc/tc-ingest"), &SecretEnv::default())
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(hmac_secret(&c), "inline-secret");
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
    assert_contains_all(
        &all,
        &[
            "api.base_url",
            "api.access_id",
            "api.owner",
            "delivery.workers",
            "feeds[0].type",
        ],
    );
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

/// The HMAC secret of a config (panics on a token).
#[track_caller]
/// The HMAC secret, read as `run` reads it.
fn hmac_secret(c: &Config) -> String {
    match c.api.credentials.as_ref().unwrap().load().unwrap() {
        Credentials::Hmac { secret, .. } => secret.expose().to_string(),
        other => panic!("not HMAC: {other:?}"),
    }
}

#[test]
fn credential_order_systemd_config_env() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(dir.path().join("secret"), "from-file\n").unwrap();
    std::fs::write(creds.join("tc-api-secret"), "from-credential").unwrap();
    let raw = |extra: &str| -> RawConfig { toml::from_str(&format!("{MINIMAL}{extra}")).unwrap() };
    let env = SecretEnv {
        env_secret: Some("from-env".into()),
        env_token: None,
        credentials_dir: Some(creds.clone()),
        ..SecretEnv::default()
    };
    // The unit's credential first, then the config file (file before
    // inline), then the environment.
    let file = "secret_key_file = \"secret\"\n";
    let c = raw(file).validate(dir.path(), &env).unwrap();
    assert_eq!(hmac_secret(&c), "from-credential");
    let env = SecretEnv {
        credentials_dir: None,
        ..env
    };
    let c = raw(file).validate(dir.path(), &env).unwrap();
    assert_eq!(hmac_secret(&c), "from-file");
    assert_eq!(
        &c.api.credentials.as_ref().unwrap().source,
        &SecretSource::File {
            key: "api.secret_key_file",
            path: dir.path().join("secret")
        }
    );
    let c = raw("").validate(dir.path(), &env).unwrap();
    assert_eq!(hmac_secret(&c), "inline-secret");
    let no_secret: RawConfig =
        toml::from_str(&MINIMAL.replace("secret_key = \"inline-secret\"", "")).unwrap();
    let c = no_secret.validate(dir.path(), &env).unwrap();
    assert_eq!(hmac_secret(&c), "from-env");
    assert_eq!(
        &c.api.credentials.as_ref().unwrap().source,
        &SecretSource::Env {
            var: "TC_API_SECRET_KEY",
            value: "from-env".into(),
        }
    );
}

#[test]
fn an_api_token_from_the_config_the_credential_or_tc_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "APIV2:1:file-token\n").unwrap();
    let no_secret = MINIMAL.replace("secret_key = \"inline-secret\"", "");
    let parse_with = |extra: &str, env: &SecretEnv| {
        let raw: RawConfig = toml::from_str(&format!("{no_secret}{extra}")).unwrap();
        raw.validate(dir.path(), env)
    };
    let token = |c: &Config| match c.api.credentials.as_ref().unwrap().load().unwrap() {
        Credentials::Token { token, source } => (token.expose().to_string(), source.to_string()),
        other => panic!("not a token: {other:?}"),
    };
    let c = parse_with("token_file = \"token\"\n", &SecretEnv::default()).unwrap();
    assert_eq!(token(&c).0, "APIV2:1:file-token");
    assert!(token(&c).1.starts_with("api.token_file"), "{}", token(&c).1);
    // tcex: TC_TOKEN wins over TC_API_SECRET_KEY; no access id is needed.
    let env = SecretEnv {
        env_secret: Some("env-secret".into()),
        env_token: Some("env-token".into()),
        ..SecretEnv::default()
    };
    let c = parse_with("", &env).unwrap();
    assert_eq!(
        token(&c),
        ("env-token".into(), "environment TC_TOKEN".into())
    );
    let no_id: RawConfig = toml::from_str(&no_secret.replace("access_id = \"12345\"", "")).unwrap();
    assert!(no_id.validate(dir.path(), &env).is_ok());
    // The credential tc-api-token wins over everything.
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("tc-api-token"), "cred-token").unwrap();
    std::fs::write(creds.join("tc-api-secret"), "cred-secret").unwrap();
    let env = SecretEnv {
        credentials_dir: Some(creds),
        ..env
    };
    let c = parse_with("token_file = \"token\"\n", &env).unwrap();
    assert_eq!(token(&c).0, "cred-token");
    // A token and a secret both in the file is a mistake.
    let e = parse_with("token = \"t\"\nsecret_key = \"s\"\n", &SecretEnv::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("api.token") && e.contains("keep one"), "{e}");
    // The token never prints.
    let c = parse_with("token = \"inline-token\"\n", &SecretEnv::default()).unwrap();
    for text in [format!("{c:?}"), render(&c)] {
        assert!(!text.contains("inline-token"), "{text}");
    }
}

#[test]
fn tcex_environment_beside_the_config_file_which_wins() {
    let env = SecretEnv {
        env_secret: Some("env-secret".into()),
        tcex: TcexEnv {
            api_path: Some("https://sandbox.threatconnect.com/api".into()),
            access_id: Some("env-id".into()),
            default_org: Some("Env Org".into()),
            ..TcexEnv::default()
        },
        ..SecretEnv::default()
    };
    // Only the environment.
    let raw: RawConfig = toml::from_str("").unwrap();
    let c = raw.validate(Path::new("/etc/tc-ingest"), &env).unwrap();
    assert_eq!(c.api.base_url, "https://sandbox.threatconnect.com/api");
    assert_eq!(c.api.access_id, "env-id");
    assert_eq!(c.api.owner, "Env Org");
    assert_eq!(hmac_secret(&c), "env-secret");
    assert_eq!(c.api.sources.base_url, Source::Env("TC_API_PATH"));
    let shown = render(&c);
    assert_contains_all(
        &shown,
        &[
            "#   base_url     environment TC_API_PATH",
            "#   access_id    environment TC_API_ACCESS_ID",
            "#   owner        environment API_DEFAULT_ORG",
            "#   credentials  HMAC secret key from environment TC_API_SECRET_KEY",
            "#   proxy        none (direct)",
        ],
    );
    assert!(!shown.contains("env-secret"), "{shown}");
    // The config file wins, value by value.
    let c = parse_env(MINIMAL, &env);
    assert_eq!(c.api.base_url, "https://api.threatconnect.com");
    assert_eq!(c.api.access_id, "12345");
    assert_eq!(c.api.owner, "Example Org");
    assert_eq!(hmac_secret(&c), "inline-secret");
    assert_eq!(c.api.sources.owner, Source::Config("api.owner"));
    assert!(render(&c).contains("#   owner        config file (api.owner)"));
}

fn parse_env(text: &str, env: &SecretEnv) -> Config {
    let raw: RawConfig = toml::from_str(text).unwrap();
    raw.validate(Path::new("/etc/tc-ingest"), env).unwrap()
}

/// `api.proxy` as validated from `text` under `env`.
fn proxy(text: &str, env: &SecretEnv) -> Option<ApiProxy> {
    parse_env(text, env).api.proxy
}

/// The minimal config with `api.proxy` set, credentials included.
fn with_proxy() -> String {
    format!("{MINIMAL}proxy = \"http://alice:p%40ss@proxy.example:3128\"\n")
}

/// The standard variables: `HTTPS_PROXY` (`https`), `http_proxy`, and
/// `NO_PROXY` (`no`).
fn standard(https: &str, no: Option<&str>) -> SecretEnv {
    SecretEnv {
        proxy: ProxyEnv {
            https: Some(("HTTPS_PROXY", https.into())),
            http: Some(("http_proxy", "http://plain:2".into())),
            no: no.map(str::to_string),
            ..ProxyEnv::default()
        },
        ..SecretEnv::default()
    }
}

#[test]
fn proxy_from_the_config_keeps_its_password_out_of_what_is_shown() {
    let none = SecretEnv::default();
    assert_eq!(proxy(MINIMAL, &none), None);
    let p = proxy(&with_proxy(), &none).unwrap();
    assert_eq!(p.address(), "http://proxy.example:3128");
    assert_eq!(p.username.as_deref(), Some("alice"));
    assert_eq!(p.password.as_ref().map(|s| s.expose()), Some("p@ss"));
    assert_eq!(p.to_string(), "proxy http://proxy.example:3128 (api.proxy)");
    let shown = render(&parse_env(&with_proxy(), &none));
    assert!(
        !shown.contains("p@ss") && !shown.contains("p%40ss"),
        "{shown}"
    );
    assert!(
        shown.contains("proxy = \"http://proxy.example:3128\""),
        "{shown}"
    );
}

#[test]
fn proxy_from_tcex_over_the_standard_variables_and_the_config_over_both() {
    let tcex = SecretEnv {
        tcex: TcexEnv {
            proxy_host: Some("10.0.0.8".into()),
            proxy_port: Some("8080".into()),
            proxy_username: Some("bob".into()),
            proxy_password: Some(Secret::new("hunter2")),
            ..TcexEnv::default()
        },
        proxy: ProxyEnv {
            https: Some(("HTTPS_PROXY", "http://standard:1".into())),
            ..ProxyEnv::default()
        },
        ..SecretEnv::default()
    };
    let p = proxy(MINIMAL, &tcex).unwrap();
    assert_eq!(p.address(), "http://10.0.0.8:8080");
    assert_eq!(p.username.as_deref(), Some("bob"));
    assert_eq!(p.source, Source::Env("TC_PROXY_HOST"));
    // api.proxy wins over both.
    assert_eq!(
        proxy(&with_proxy(), &tcex).unwrap().source,
        Source::Config("api.proxy")
    );
}

#[test]
fn proxy_from_the_standard_variables_by_the_base_urls_scheme_unless_no_proxy() {
    let p = proxy(MINIMAL, &standard("proxy.corp:3128", None)).unwrap();
    assert_eq!(p.address(), "http://proxy.corp:3128");
    assert_eq!(p.source, Source::Env("HTTPS_PROXY"));
    // An http base URL takes HTTP_PROXY.
    let http = MINIMAL.replace("https://api.threatconnect.com", "http://127.0.0.1:8450");
    assert_eq!(
        proxy(&http, &standard("proxy.corp:3128", None))
            .unwrap()
            .source,
        Source::Env("http_proxy")
    );
    // NO_PROXY names the API host (or a parent domain): direct.
    assert_eq!(
        proxy(
            MINIMAL,
            &standard("proxy.corp:3128", Some("localhost, .threatconnect.com"))
        ),
        None
    );
    assert!(proxy(MINIMAL, &standard("proxy.corp:3128", Some("example.com"))).is_some());
}

#[test]
fn proxy_errors_name_the_key_or_the_variable() {
    let e = parse(&format!("{MINIMAL}proxy = \"socks5://x:1\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("api.proxy"), "{e}");
    let raw: RawConfig = toml::from_str(MINIMAL).unwrap();
    let e = raw
        .validate(Path::new("/etc/tc-ingest"), &standard("http://[bad", None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTPS_PROXY"), "{e}");
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
        rendered.contains("#   credentials  HMAC secret key from api.secret_key (inline"),
        "{rendered}"
    );
    let loaded = format!("{:?}", c.api.credentials.as_ref().unwrap().load().unwrap());
    assert!(
        loaded.contains("[redacted]") && !loaded.contains("inline-secret"),
        "{loaded}"
    );
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
             source, first_seen, last_seen, security_label, external_id, valid_until, range_start, range_end, prefix_length"
        ]
    );
}

/// A config with one feed rule mapping `value`, `first_seen` and
/// `last_seen` to columns of other names.
fn seen_columns_config() -> Config {
    let columns = "columns = { value = \"ioc\", first_seen = \"added\", last_seen = \"Updated\" }";
    parse(&format!(
        "{MINIMAL}\n[[feeds]]\nmatch = \"*.csv\"\n{columns}\n"
    ))
    .unwrap()
}

#[test]
fn columns_first_seen_maps_and_is_rendered() {
    let c = seen_columns_config();
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
}

#[test]
fn columns_first_seen_arrives_normalized_in_the_payload() {
    // Read through the rule's mapping, then normalized to the payload.
    let opts = crate::feed::ReadOptions {
        columns: seen_columns_config().feeds[0].columns.clone(),
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
        // As a config is read: presets expanded, then the keys.
        let mut errors = Vec::new();
        let raw: RawConfig = super::raw::from_table(text.parse().unwrap(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        // Its secret_key_file is not read under systemd: the credential
        // the unit hands over wins.
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("tc-api-secret"), "from-credential").unwrap();
        let env = SecretEnv {
            credentials_dir: Some(creds.path().into()),
            ..SecretEnv::default()
        };
        let c = raw.validate(Path::new("/etc/tc-ingest"), &env).unwrap();
        assert_eq!(c.feeds.len(), 3);
        assert!(c.feeds[2].snapshot, "the preset's keys apply");
        assert_eq!(c.api.types, TypeNames::default());
        assert!(c.feeds[0].matches(Path::new("abuse-ch/today.csv")));
    }

    /// The package's /etc/tc-ingest/tc-ingest.toml: it names the secret
    /// file, holds no secret, and is complete once base_url, access_id and
    /// owner are set (here from tcex's variables).
    #[test]
    fn the_packaged_conffile_is_valid_once_filled_in() {
        let text = include_str!("../../packaging/tc-ingest.toml");
        let raw: RawConfig = toml::from_str(text).unwrap();
        assert_eq!(
            raw.api.secret_key_file.as_deref(),
            Some(Path::new("/etc/tc-ingest/secret"))
        );
        assert!(raw.api.secret_key.is_none() && raw.api.token.is_none());
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("tc-api-secret"), "from-credential").unwrap();
        let env = SecretEnv {
            credentials_dir: Some(creds.path().into()),
            tcex: TcexEnv {
                api_path: Some("https://api.threatconnect.com".into()),
                access_id: Some("12345".into()),
                default_org: Some("Example Org".into()),
                ..TcexEnv::default()
            },
            ..SecretEnv::default()
        };
        let c = raw.validate(Path::new("/etc/tc-ingest"), &env).unwrap();
        assert_eq!(c.queue.path, PathBuf::from("/var/lib/tc-ingest/queue.db"));
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
        assert_contains_all(
            &e,
            &[
                "api.timeout_secs",
                "delivery.rate_per_second",
                "delivery.workers",
                "watch.settle_ms",
                "watch.done_retention",
                "feeds[0].rating",
                "feeds[0].type",
                "bogus",
            ],
        );
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
        assert_contains_all(
            &first,
            &[
                "settle_ms = 1500",
                "done_retention = \"1d 12h\"",
                "dedup_window = \"1h 30m\"",
                "backoff_base_ms = 250",
                "circuit_open_max_secs = 45",
                "#   credentials  HMAC secret key from api.secret_key (inline",
            ],
        );
        let second = render(
            &load(&first).unwrap_or_else(|e| panic!("check-config output refused: {e}\n{first}")),
        );
        // The inline secret is not printed, so the second reads none.
        let strip = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&first), strip(&second));
    }
}
