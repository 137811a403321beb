//! Feed rule keys of the threat-intel formats and public feeds.

use std::path::Path;

use super::Config;
use super::render::render;

#[test]
fn the_threat_intel_keys_are_validated_and_rendered() {
    let c = Config::parse(
        "[api]\nbase_url = \"https://api.threatconnect.com\"\naccess_id = \"a\"\nsecret_key = \"s\"\nowner = \"O\"\n\
         [security_labels]\nclear = \"TLP:WHITE\"\n\
         [[feeds]]\nmatch = \"*.json\"\nformat = \"stix\"\nsecurity_labels = [\"TLP:AMBER\"]\nstix_observables = true\nmisp_all_attributes = true\n",
        Path::new("/etc/tc-ingest/tc-ingest.toml"),
    )
    .unwrap();
    let rule = &c.feeds[0];
    assert_eq!(rule.format, Some(crate::feed::Format::Stix));
    assert!(rule.stix_observables && rule.misp_all_attributes);
    assert_eq!(
        c.security_labels.name(crate::indicator::Tlp::Clear),
        "TLP:WHITE"
    );
    let shown = render(&c);
    for line in [
        "format = \"stix\"",
        "security_labels = [\"TLP:AMBER\"]",
        "stix_observables = true",
        "misp_all_attributes = true",
        "clear = \"TLP:WHITE\"",
        "amber_strict = \"TLP:AMBER+STRICT\"",
    ] {
        assert!(shown.contains(line), "{line}: {shown}");
    }
    let e = Config::parse(
        "[api]\nbase_url = \"https://api.threatconnect.com\"\naccess_id = \"a\"\nsecret_key = \"s\"\nowner = \"O\"\n\
         [security_labels]\nred = \"..\"\n[[feeds]]\nmatch = \"*\"\nformat = \"xml\"\n",
        Path::new("/etc/tc-ingest/tc-ingest.toml"),
    )
    .unwrap_err()
    .0;
    assert!(
        e.iter()
            .any(|m| m.starts_with("feeds[0].format: unknown format \"xml\"")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with("security_labels.red:")),
        "{e:?}"
    );
}

const API: &str = "[api]\nbase_url = \"https://api.threatconnect.com\"\naccess_id = \"a\"\nsecret_key = \"s\"\nowner = \"O\"\n";

fn lifecycle(rules: &str) -> Result<Config, super::ConfigError> {
    Config::parse(
        &format!("{API}{rules}"),
        Path::new("/etc/tc-ingest/tc-ingest.toml"),
    )
}

#[test]
fn lifecycle_keys_need_a_name_are_checked_and_read_back() {
    let c = lifecycle(
        "[[feeds]]\ndir = \"drop\"\nname = \"drop\"\nsnapshot = true\nretire = \"tag\"\nretire_tag = \" Gone \"\n\
         max_retire_fraction = 0.1\nmax_age = \"30d\"\nstale_after = \"2d\"\n\
         [[feeds]]\nmatch = \"*.txt\"\npreset = \"openphish\"\n",
    )
    .unwrap();
    let l = &c.feeds[0].lifecycle;
    assert_eq!(l.retire, crate::names::RetireMode::Tag);
    assert_eq!(l.retire_tag, "Gone");
    assert_eq!(l.max_retire_fraction, 0.1);
    assert_eq!(l.max_reject_fraction, 0.5);
    assert_eq!(l.max_age, Some(std::time::Duration::from_secs(30 * 86_400)));
    // A preset's snapshot without a name: accepted, retires nothing, noted.
    assert!(c.feeds[1].snapshot && c.feeds[1].name.is_none());
    assert_eq!(c.notes().len(), 1, "{:?}", c.notes());
    assert!(c.notes()[0].starts_with("feeds[1]"));
    let shown = render(&c);
    let again = Config::parse(&shown, Path::new("/etc/tc-ingest/tc-ingest.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(again.feeds[0].lifecycle, c.feeds[0].lifecycle);
    assert_eq!(again.feeds[0].name, c.feeds[0].name);
    assert!(again.feeds[1].name.is_none() && again.feeds[1].snapshot);

    let e = lifecycle(
        "[[feeds]]\ndir = \"a\"\nsnapshot = true\nretire = \"inactive\"\n\
         [[feeds]]\ndir = \"b\"\nmax_age = \"1d\"\n\
         [[feeds]]\ndir = \"c\"\nname = \"Bad Name\"\nretire = \"archive\"\nmax_retire_fraction = 2.0\n\
         [[feeds]]\ndir = \"d\"\nname = \"dup\"\n[[feeds]]\ndir = \"e\"\nname = \"dup\"\nstale_after = \"soon\"\n",
    )
    .unwrap_err()
    .0;
    for start in [
        "feeds[0].name: missing: a rule with `snapshot`",
        "feeds[1].name: missing: a rule with `max_age`",
        "feeds[2].retire: unknown retire mode \"archive\"",
        "feeds[2].max_retire_fraction: 2 is not from 0 to 1",
        "feeds[2].name: \"Bad Name\" must be",
        "feeds[4].stale_after: \"soon\" is not a duration",
        "feeds[4].name: \"dup\" is the name of another feed rule",
    ] {
        assert!(e.iter().any(|m| m.starts_with(start)), "{start}: {e:#?}");
    }
}
