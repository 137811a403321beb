//! The layout's rules, checked against the source: ARCHITECTURE.md's code
//! map names every file and every room's imports as they are, and the
//! absences it states hold. A change that breaks one fails here, naming
//! what to write or what to move.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir` (relative to the crate root), sorted.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).expect("a source directory").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    walk(&root.join(dir), &mut out);
    let mut rel: Vec<PathBuf> = out
        .into_iter()
        .map(|p| p.strip_prefix(root).expect("under the root").to_path_buf())
        .collect();
    rel.sort();
    rel
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).expect("readable")
}

/// A file's code without its unit tests: the `#[cfg(test)] mod tests`
/// block at its end, or the whole of a `tests.rs`.
fn production_code(rel: &Path) -> String {
    if rel.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let s = read(rel);
    let code = match s.find("\n#[cfg(test)]\nmod tests") {
        Some(i) => &s[..i],
        None => &s,
    };
    // Comments name what the code does not use.
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The room of a file under `src/`: its top-level module.
fn room_of(rel: &Path) -> String {
    let inner = rel.strip_prefix("src").expect("under src/");
    let first = inner.components().next().expect("a file");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The names `text` uses after `prefix` (`crate::` gives the rooms a
/// file imports), each whole identifier once.
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[i + prefix.len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        } else if text[i + prefix.len()..].starts_with('{') {
            // `use crate::{a, b::c}`: the first name of each part.
            let group = &text[i + prefix.len() + 1..];
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// Each room of the crate and the rooms it imports, from the code.
fn rooms_in_code() -> BTreeMap<String, BTreeSet<String>> {
    let mut rooms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in rust_files("src") {
        let room = room_of(&f);
        let mut uses = names_after(&production_code(&f), "crate::");
        uses.remove(&room);
        rooms.entry(room).or_default().extend(uses);
    }
    rooms
}

/// Each room of ARCHITECTURE.md's code map (a `### `name/`` or
/// `### `name.rs`` heading) and the rooms its `Imports:` line names.
fn rooms_in_map(map: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut rooms = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in map.lines() {
        if let Some(h) = line.strip_prefix("### `") {
            let name = h.split('`').next().unwrap_or("");
            let room = name.trim_end_matches('/').trim_end_matches(".rs");
            current = (!name.starts_with("tests/")).then(|| room.to_string());
        } else if let (Some(room), Some(list)) = (&current, line.strip_prefix("Imports:")) {
            let names: BTreeSet<String> = list
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            rooms.insert(room.clone(), names);
        }
    }
    rooms
}

fn architecture() -> String {
    read(Path::new("ARCHITECTURE.md"))
}

#[test]
fn the_map_gives_every_room_and_its_imports_as_the_code_has_them() {
    let code = rooms_in_code();
    let map = rooms_in_map(&architecture());
    let line = |deps: &BTreeSet<String>| {
        if deps.is_empty() {
            "Imports: nothing of ours.".to_string()
        } else {
            let names: Vec<String> = deps.iter().map(|d| format!("`{d}`")).collect();
            format!("Imports: {}.", names.join(", "))
        }
    };
    let mut wrong = Vec::new();
    for (room, deps) in &code {
        match map.get(room) {
            Some(listed) if listed == deps => {}
            Some(_) => wrong.push(format!("{room}: write `{}`", line(deps))),
            None => wrong.push(format!("{room}: no `### ` heading with an Imports line")),
        }
    }
    for room in map.keys().filter(|r| !code.contains_key(*r)) {
        wrong.push(format!("{room}: in the map, not in src/"));
    }
    assert!(
        wrong.is_empty(),
        "ARCHITECTURE.md's code map is not the code:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_map_names_every_source_and_test_file() {
    let doc = architecture();
    let missing: Vec<String> = rust_files("src")
        .into_iter()
        .chain(rust_files("tests"))
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !doc.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name (in backticks): {missing:?}"
    );
}

#[test]
fn rooms_import_one_way() {
    let rooms = rooms_in_code();
    // Depth-first: a room met again while still on the path closes a circle.
    fn visit(
        room: &str,
        rooms: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|r| r == room) {
            let mut circle = path[i..].to_vec();
            circle.push(room.to_string());
            return Some(circle);
        }
        if !done.insert(room.to_string()) {
            return None;
        }
        path.push(room.to_string());
        for dep in rooms.get(room).into_iter().flatten() {
            if let Some(c) = visit(dep, rooms, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for room in rooms.keys() {
        let circle = visit(room, &rooms, &mut Vec::new(), &mut done);
        assert!(circle.is_none(), "import circle: {:?}", circle);
    }
}

#[test]
fn only_the_policy_reads_what_an_outcome_is() {
    // `api/` builds and describes outcomes; `deliver/policy.rs` decides
    // what each means. Everyone else asks the policy (or `Outcome`'s
    // methods), never names a variant.
    let offenders: Vec<String> = rust_files("src")
        .into_iter()
        .filter(|f| !f.starts_with("src/api") && f != Path::new("src/deliver/policy.rs"))
        .filter(|f| {
            let code = production_code(f);
            names_after(&code, "Outcome::")
                .iter()
                .any(|n| n.starts_with(char::is_uppercase))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "these files match on Outcome variants; ask deliver::policy instead: {offenders:?}"
    );
}

#[test]
fn sql_lives_in_the_queue_http_clients_in_api_and_sources_and_the_secrets_in_them() {
    let mut wrong = Vec::new();
    // This file names what it looks for.
    for f in rust_files("src")
        .into_iter()
        .filter(|f| !f.ends_with("layout.rs"))
    {
        let code = production_code(&f);
        let room = room_of(&f);
        if code.contains("sqlx::") && room != "queue" {
            wrong.push(format!("{}: sqlx outside queue/", f.display()));
        }
        if code.contains("reqwest::") && room != "api" && room != "sources" {
            wrong.push(format!(
                "{}: reqwest outside api/ and sources/",
                f.display()
            ));
        }
        // The two HTTP clients, and the queue's PostgreSQL password
        // handed to sqlx (which takes it in its connection URL).
        let clients = [
            Path::new("src/api/client.rs"),
            Path::new("src/sources/fetch.rs"),
            Path::new("src/config/queue.rs"),
        ];
        if code.contains(".expose()") && !clients.contains(&f.as_path()) {
            wrong.push(format!(
                "{}: a secret exposed outside the two HTTP clients and the queue's connection",
                f.display()
            ));
        }
        let io = ["std::fs", "tokio::fs", "std::net::Tcp", "tracing::"];
        if room == "normalize" || (room == "feed" && !f.ends_with("mod.rs")) {
            for what in io.iter().filter(|w| code.contains(*w)) {
                wrong.push(format!("{}: {what} in a pure room", f.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn every_file_is_under_600_lines() {
    let long: Vec<String> = rust_files("src")
        .into_iter()
        .chain(rust_files("tests"))
        .filter_map(|f| {
            let n = read(&f).lines().count();
            (n >= 600).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by theme: {long:?}");
}

#[test]
fn test_helpers_import_no_test_module() {
    let wrong: Vec<String> = rust_files("tests/it/helpers")
        .into_iter()
        .filter(|f| {
            names_after(&read(f), "crate::")
                .iter()
                .any(|n| n != "helpers")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        wrong.is_empty(),
        "helpers must not import test modules: {wrong:?}"
    );
}
