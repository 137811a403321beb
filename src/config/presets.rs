//! The catalog of known public feeds: `preset = "NAME"` on a feed rule sets
//! the keys that read the feed as it is published (format, columns,
//! comments, type, a tag naming the feed, `snapshot` for full lists);
//! any key given beside it wins. `tc-ingest presets` lists them with where
//! each is published and its terms, so that the user can decide.
//!
//! Each preset's keys are a TOML fragment of a `[[feeds]]` rule, read as a
//! rule is; `tests/data/presets/` holds a sample of each feed's published
//! shape (made-up values) and the test that it gives exactly the expected
//! indicators.

/// One known feed.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    /// Where it is published.
    pub url: &'static str,
    /// Its terms, in one phrase (check the site before use).
    pub terms: &'static str,
    /// What a user should know (a list merged into another, a second form).
    pub note: &'static str,
    /// The rule's keys, TOML.
    pub keys: &'static str,
    /// What a source naming it fetches (empty: the source gives `url`).
    pub fetch: &'static str,
    /// A polite interval for a source naming it.
    pub interval: &'static str,
}

/// Every preset, by name.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "spamhaus-drop",
        url: "https://www.spamhaus.org/drop/drop.txt (or drop_v4.json, drop_v6.json)",
        terms: "Spamhaus DROP terms: free, check the site",
        note: "reads the text form (`192.0.2.0/24 ; SBL123`) and the JSON-lines form; the SBL id becomes a tag",
        keys: "type = \"cidr\"\ntags = [\"spamhaus-drop\"]\ncomment = [\";\", \"#\"]\ntrailing = \"tags\"\n\
               columns = { value = \"cidr\", tags = \"sblid\" }\nsnapshot = true\n",
        fetch: "https://www.spamhaus.org/drop/drop.txt",
        interval: "12h",
    },
    Preset {
        name: "spamhaus-edrop",
        url: "https://www.spamhaus.org/drop/edrop.txt",
        terms: "Spamhaus DROP terms: free, check the site",
        note: "Spamhaus merged EDROP into DROP in 2024: use spamhaus-drop for new rules",
        keys: "type = \"cidr\"\ntags = [\"spamhaus-edrop\"]\ncomment = [\";\", \"#\"]\ntrailing = \"tags\"\n\
               columns = { value = \"cidr\", tags = \"sblid\" }\nsnapshot = true\n",
        fetch: "https://www.spamhaus.org/drop/edrop.txt",
        interval: "12h",
    },
    Preset {
        name: "spamhaus-asndrop",
        url: "https://www.spamhaus.org/drop/asndrop.txt (or asndrop.json)",
        terms: "Spamhaus DROP terms: free, check the site",
        note: "reads the text form (`AS64496 ; EX | NAME`) and the JSON-lines form; the AS's country and name become the description, its domain nothing",
        keys: "type = \"asn\"\ntags = [\"spamhaus-asndrop\"]\ncomment = [\";\", \"#\"]\ntrailing = \"description\"\n\
               columns = { value = \"asn\", description = \"asname\" }\nsnapshot = true\n",
        fetch: "https://www.spamhaus.org/drop/asndrop.txt",
        interval: "12h",
    },
    Preset {
        name: "dshield-block",
        url: "https://feeds.dshield.org/block.txt",
        terms: "CC BY-NC-SA 2.5, as its header says",
        note: "Start and Netblock (the prefix length) give the CIDR; name, country and e-mail are not indicators",
        keys: "format = \"tsv\"\ntype = \"cidr\"\ntags = [\"dshield-block\"]\nsnapshot = true\n",
        fetch: "https://feeds.dshield.org/block.txt",
        interval: "1h",
    },
    Preset {
        name: "dataplane",
        url: "https://dataplane.org/ (any of its lists: sshpwauth.txt, dnsrd.txt, ...)",
        terms: "free of charge, check the site",
        note: "the address column (ipaddr or saddr), by name; the AS number and name beside it are not indicators",
        keys: "format = \"csv\"\ndelimiter = \"|\"\nheader_in_comment = true\ntype = \"address\"\n\
               tags = [\"dataplane\"]\nsnapshot = true\n",
        fetch: "",
        interval: "1h",
    },
    Preset {
        name: "bambenek-c2-ip",
        url: "https://osint.bambenekconsulting.com/feeds/c2-ipmasterlist.txt",
        terms: "free for non-commercial use; commercial use licensed",
        note: "header-less CSV: the address, its description; the date and the reference URL are not indicators",
        keys: "format = \"csv\"\nheader = false\ncolumns = { value = 1, description = 2 }\ntype = \"address\"\n\
               tags = [\"bambenek-c2\"]\nsnapshot = true\n",
        fetch: "https://osint.bambenekconsulting.com/feeds/c2-ipmasterlist.txt",
        interval: "1h",
    },
    Preset {
        name: "bambenek-c2-domain",
        url: "https://osint.bambenekconsulting.com/feeds/c2-dommasterlist.txt",
        terms: "free for non-commercial use; commercial use licensed",
        note: "header-less CSV: the domain, its description",
        keys: "format = \"csv\"\nheader = false\ncolumns = { value = 1, description = 2 }\ntype = \"host\"\n\
               tags = [\"bambenek-c2\"]\nsnapshot = true\n",
        fetch: "https://osint.bambenekconsulting.com/feeds/c2-dommasterlist.txt",
        interval: "1h",
    },
    Preset {
        name: "urlhaus-csv",
        url: "https://urlhaus.abuse.ch/downloads/csv_recent/",
        terms: "abuse.ch terms of use",
        note: "the header is a comment line; the URL, its tags, its threat as description",
        keys: "format = \"csv\"\nheader_in_comment = true\ntype = \"url\"\ntags = [\"urlhaus\"]\n\
               columns = { value = \"url\", tags = \"tags\", description = \"threat\" }\n",
        fetch: "https://urlhaus.abuse.ch/downloads/csv_recent/",
        interval: "15m",
    },
    Preset {
        name: "feodo-ipblocklist-csv",
        url: "https://feodotracker.abuse.ch/downloads/ipblocklist.csv",
        terms: "abuse.ch terms of use",
        note: "the header is a comment line; the C2 address (not its port), the malware as description",
        keys: "format = \"csv\"\nheader_in_comment = true\ntype = \"address\"\ntags = [\"feodotracker\"]\n\
               columns = { value = \"dst_ip\", description = \"malware\" }\nsnapshot = true\n",
        fetch: "https://feodotracker.abuse.ch/downloads/ipblocklist.csv",
        interval: "15m",
    },
    Preset {
        name: "threatfox-csv",
        url: "https://threatfox.abuse.ch/export/csv/recent/",
        terms: "abuse.ch terms of use",
        note: "the header is a comment line; each IOC by its own type (ip:port gives the address)",
        keys: "format = \"csv\"\nheader_in_comment = true\ntags = [\"threatfox\"]\n\
               columns = { value = \"ioc_value\", type = \"ioc_type\", tags = \"tags\", confidence = \"confidence_level\", description = \"malware_printable\" }\n",
        fetch: "https://threatfox.abuse.ch/export/csv/recent/",
        interval: "1h",
    },
    Preset {
        name: "openphish",
        url: "https://openphish.com/feed.txt",
        terms: "community feed free; commercial use licensed",
        note: "one URL a line",
        keys: "format = \"text\"\ntype = \"url\"\ntags = [\"openphish\"]\nsnapshot = true\n",
        fetch: "https://openphish.com/feed.txt",
        interval: "1h",
    },
    Preset {
        name: "blocklist-de",
        url: "https://lists.blocklist.de/lists/all.txt",
        terms: "free, check the site",
        note: "one address a line",
        keys: "format = \"text\"\ntype = \"address\"\ntags = [\"blocklist-de\"]\nsnapshot = true\n",
        fetch: "https://lists.blocklist.de/lists/all.txt",
        interval: "1h",
    },
    Preset {
        name: "cins-army",
        url: "https://cinsscore.com/list/ci-badguys.txt",
        terms: "free, check the site",
        note: "one address a line",
        keys: "format = \"text\"\ntype = \"address\"\ntags = [\"cins-army\"]\nsnapshot = true\n",
        fetch: "https://cinsscore.com/list/ci-badguys.txt",
        interval: "1h",
    },
    Preset {
        name: "emerging-threats-compromised",
        url: "https://rules.emergingthreats.net/blockrules/compromised-ips.txt",
        terms: "ET Open, free",
        note: "one address a line",
        keys: "format = \"text\"\ntype = \"address\"\ntags = [\"et-compromised\"]\nsnapshot = true\n",
        fetch: "https://rules.emergingthreats.net/blockrules/compromised-ips.txt",
        interval: "6h",
    },
    Preset {
        name: "tor-exit-nodes",
        url: "https://check.torproject.org/torbulkexitlist (or exit-addresses)",
        terms: "public Tor Project data",
        note: "reads the bulk list (an address a line) and the exit-addresses records (their ExitAddress lines); relay fingerprints are not indicators",
        keys: "format = \"text\"\ntype = \"address\"\nline_key = \"ExitAddress\"\ntags = [\"tor-exit\"]\nsnapshot = true\n",
        fetch: "https://check.torproject.org/torbulkexitlist",
        interval: "1h",
    },
];

/// The preset of that name.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// A `[[feeds]]` table with its preset's keys under the table's own.
///
/// # Errors
/// An unknown preset (its message lists the known ones).
pub(super) fn expand(table: &mut toml::Table) -> Result<(), String> {
    let Some(name) = table.get("preset").and_then(toml::Value::as_str) else {
        return Ok(());
    };
    let preset = find(name).ok_or_else(|| {
        let known: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        format!("unknown preset {name:?}; known: {}", known.join(", "))
    })?;
    let mut merged: toml::Table = preset
        .keys
        .parse()
        .map_err(|e| format!("preset {name:?} does not parse: {e}"))?;
    for (k, v) in std::mem::take(table) {
        if k != "preset" {
            merged.insert(k, v);
        }
    }
    *table = merged;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_valid_rule_and_a_key_beside_it_wins() {
        for p in PRESETS {
            let mut t: toml::Table = format!("match = \"*\"\npreset = \"{}\"\n", p.name)
                .parse()
                .unwrap();
            expand(&mut t).unwrap();
            assert!(
                t.get("preset").is_none() && t.get("tags").is_some(),
                "{}",
                p.name
            );
            let raw: super::super::raw::RawFeedRule =
                t.try_into().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let mut errors = Vec::new();
            super::super::feeds::validate(vec![raw], &mut errors);
            assert!(errors.is_empty(), "{}: {errors:?}", p.name);
        }
        let mut t: toml::Table = "match = \"*\"\npreset = \"openphish\"\ntags = [\"mine\"]\n"
            .parse()
            .unwrap();
        expand(&mut t).unwrap();
        assert_eq!(t["tags"].as_array().unwrap()[0].as_str(), Some("mine"));
        let mut t: toml::Table = "preset = \"nope\"\n".parse().unwrap();
        assert!(
            expand(&mut t)
                .unwrap_err()
                .starts_with("unknown preset \"nope\"; known: spamhaus-drop")
        );
    }
}
