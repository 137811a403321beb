//! `[queue]`: a SQLite file (the default) or a PostgreSQL URL, with its
//! password from a file, a systemd credential or (warned about) the URL.

use std::path::Path;

use super::{Config, SecretEnv, SecretSource};
use crate::queue::Target;

const API: &str = "[api]\nbase_url = \"https://api.threatconnect.com\"\naccess_id = \"a\"\nsecret_key = \"s\"\nowner = \"O\"\n";

fn parse(queue: &str, env: &SecretEnv) -> Result<Config, Vec<String>> {
    Config::parse_with(
        &format!("{API}[queue]\n{queue}"),
        Path::new("/etc/tc-ingest/tc-ingest.toml"),
        env,
    )
    .map_err(|e| e.0)
}

#[test]
fn a_url_makes_a_postgres_queue_and_path_with_url_is_an_error() {
    let env = SecretEnv::default();
    let c = parse(
        "url = \"postgres://ingest@db.example:5432/tc\"\npassword_file = \"pw\"\nsslmode = \"verify-full\"\nssl_root_cert = \"ca.pem\"\n",
        &env,
    )
    .unwrap();
    assert_eq!(c.queue.sqlite_path(), None);
    let pg = c.queue.postgres.as_ref().unwrap();
    assert_eq!(pg.url, "postgres://ingest@db.example:5432/tc");
    assert_eq!(
        pg.password,
        Some(SecretSource::File {
            key: "queue.password_file",
            path: "/etc/tc-ingest/pw".into()
        })
    );
    assert_eq!(
        pg.ssl_root_cert.as_deref(),
        Some(Path::new("/etc/tc-ingest/ca.pem"))
    );
    let shown = super::render::render(&c);
    assert!(
        shown.contains("url = \"postgres://ingest@db.example:5432/tc\""),
        "{shown}"
    );
    assert!(
        shown.contains("password_file = \"/etc/tc-ingest/pw\""),
        "{shown}"
    );
    assert!(!shown.contains("\npath ="), "{shown}");

    let both = parse("path = \"q.db\"\nurl = \"postgres://h/db\"\n", &env).unwrap_err();
    assert!(
        both.iter().any(|e| e.starts_with("queue.url: set either")),
        "{both:#?}"
    );
    let not_pg = parse("url = \"mysql://h/db\"\n", &env).unwrap_err();
    assert!(
        not_pg
            .iter()
            .any(|e| e.starts_with("queue.url: a PostgreSQL URL")),
        "{not_pg:#?}"
    );
    let mode = parse("url = \"postgres://h/db\"\nsslmode = \"sometimes\"\n", &env).unwrap_err();
    assert!(
        mode.iter().any(|e| e.starts_with("queue.sslmode:")),
        "{mode:#?}"
    );
    let stray = parse("password_file = \"pw\"\n", &env).unwrap_err();
    assert!(
        stray
            .iter()
            .any(|e| e == "queue.password_file: only for a PostgreSQL queue (queue.url)"),
        "{stray:#?}"
    );
    // SQLite stays the default.
    let sqlite = parse("", &env).unwrap();
    assert_eq!(
        sqlite.queue.sqlite_path(),
        Some(Path::new("/var/lib/tc-ingest/queue.db"))
    );
}

#[test]
fn the_password_comes_from_the_credential_the_file_or_the_url_and_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
    let env = SecretEnv::default();
    let url = "url = \"postgres://ingest:in%40line@db.example/tc\"\n";
    // Inline in the URL: taken out of it, used, never shown.
    let c = parse(url, &env).unwrap();
    assert_eq!(
        c.queue.postgres.as_ref().unwrap().url,
        "postgres://ingest@db.example/tc"
    );
    let Target::Postgres(t) = c.queue.target().unwrap() else {
        panic!("a PostgreSQL target")
    };
    assert_eq!(t.password.as_deref(), Some("in@line"));
    assert!(!format!("{t:?} {}", c.queue.location()).contains("in@line"));
    assert!(!super::render::render(&c).contains("in@line"));
    // A password file wins over the URL's.
    let file = format!(
        "{url}password_file = \"{}\"\n",
        dir.path().join("pw").display()
    );
    let Target::Postgres(t) = parse(&file, &env).unwrap().queue.target().unwrap() else {
        panic!()
    };
    assert_eq!(t.password.as_deref(), Some("from-file"));
    // The systemd credential wins over both.
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("tc-queue-password"), "from-credential").unwrap();
    let env = SecretEnv {
        credentials_dir: Some(creds.path().into()),
        ..SecretEnv::default()
    };
    let Target::Postgres(t) = parse(&file, &env).unwrap().queue.target().unwrap() else {
        panic!()
    };
    assert_eq!(t.password.as_deref(), Some("from-credential"));
    // A password file that cannot be read is named.
    let missing = parse(
        "url = \"postgres://h/db\"\npassword_file = \"/nonexistent/pw\"\n",
        &env,
    );
    let e = missing.unwrap().queue.target();
    assert!(e.is_ok(), "the credential is used first");
    let e = parse(
        "url = \"postgres://h/db\"\npassword_file = \"/nonexistent/pw\"\n",
        &SecretEnv::default(),
    )
    .unwrap()
    .queue
    .target()
    .unwrap_err();
    assert!(
        e.starts_with("queue.password_file: cannot read /nonexistent/pw"),
        "{e}"
    );
}
