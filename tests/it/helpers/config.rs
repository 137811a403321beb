//! Config snippets the tests share, and edits of a [`TestApp`]'s config
//! file after it was written.

use super::TestApp;

/// Delivery without the rate limit.
pub const UNTHROTTLED: &str = "[delivery]\nrate_per_second = 0\n";

/// Quick delivery: four workers, no rate limit, a 10 ms backoff, held
/// owners probed after a second.
pub const QUICK_DELIVERY: &str =
    "[delivery]\nworkers = 4\nrate_per_second = 0\nbackoff_base_ms = 10\nprobe_min_secs = 1\n";

/// The error policy sped up: four workers, no rate limit, backoff from
/// 10 ms to 1 s, five attempts, pauses probed within 1 to 2 s, 2 s of
/// shutdown grace.
pub const FAST_POLICY: &str = "[delivery]
workers = 4
rate_per_second = 0
backoff_base_ms = 10
backoff_max_secs = 1
max_attempts = 5
probe_min_secs = 1
probe_max_secs = 2
shutdown_grace_secs = 2
";

impl TestApp {
    /// Rewrites the config file through `edit`.
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).expect("read config");
        std::fs::write(&path, edit(text)).expect("write config");
    }

    /// Sets `[watch]` keys (`lines`, TOML `key = value` lines): the
    /// harness's own value of a key goes (a key twice is an error).
    pub fn set_watch(&self, lines: &str) {
        self.edit_config(|mut text| {
            for line in lines.lines() {
                let key = line.split('=').next().unwrap().trim();
                text = text
                    .lines()
                    .filter(|l| l.split('=').next().unwrap().trim() != key)
                    .map(|l| format!("{l}\n"))
                    .collect();
            }
            text.replacen("[watch]\n", &format!("[watch]\n{lines}"), 1)
        });
    }

    /// Drops `api.secret_key`: a service whose secret reaches only the
    /// daemon (a systemd credential).
    pub fn drop_secret(&self) {
        self.edit_config(|text| {
            text.lines()
                .filter(|l| !l.starts_with("secret_key"))
                .map(|l| format!("{l}\n"))
                .collect()
        });
    }
}
