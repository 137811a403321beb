//! The binary's output as the tests read it, and the commands they run
//! most.

use std::process::Output;

use super::TestApp;

/// What a command printed: stdout, then stderr.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl TestApp {
    /// `run --once`, which must exit `code` (1: some jobs were buried, or
    /// delivery paused); what it logged.
    pub async fn run_once_exits(&self, code: i32) -> String {
        let out = self.binary(&["run", "--once"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        stderr
    }

    /// What `status --json` says.
    pub async fn status_json(&self) -> serde_json::Value {
        let out = self.binary(&["status", "--json"]).await;
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}: {}", output_text(&out)))
    }

    /// Writes `name` into the state directory and queues it with
    /// `enqueue`, as an operator would; it must succeed.
    pub async fn enqueue_file(&self, name: &str, content: &str) {
        let path = self.path().join(name);
        std::fs::write(&path, content).unwrap();
        let out = self.binary(&["enqueue", path.to_str().unwrap()]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    }
}

/// Checks that `out` exited with `code`; what it printed (stdout, then
/// stderr).
#[track_caller]
pub fn exited(out: &Output, code: i32) -> String {
    let text = output_text(out);
    assert_eq!(out.status.code(), Some(code), "{text}");
    text
}

/// Checks that `text` contains every one of `parts`.
#[track_caller]
pub fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
}
