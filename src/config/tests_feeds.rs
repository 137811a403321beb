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
