//! This daemon among the daemons on its queue: a heartbeat every second in
//! the queue's `daemons` table, and, on a queue several daemons share
//! (PostgreSQL), the request rate divided among the live ones.
//!
//! Rate / N rather than a budget in the database: one small write and one
//! count per daemon per second, whatever the request rate, and no database
//! round trip before a request. A daemon that joins waits until the others
//! have counted it (`throttle::SETTLE`); one that dies stops counting
//! within `queue::LIVE_WITHIN`; one that stalls sends nothing until its
//! heartbeat is fresh again.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Delivery;
use crate::queue::Dialect;

/// How often the heartbeat is written on a shared queue.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// How often on a SQLite queue, which one daemon has to itself: the row
/// is for `status` only, and SQLite has one writer at a time.
const HEARTBEAT_ALONE_EVERY: Duration = Duration::from_secs(5);

impl Delivery {
    /// Whether several daemons may share this queue.
    pub fn shared_queue(&self) -> bool {
        self.queue.dialect() == Dialect::Postgres
    }

    /// Writes this daemon's heartbeat and takes its share of the rate.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat(&self) -> anyhow::Result<()> {
        let details = serde_json::json!({
            "leases_held": self.leases_held(),
            "rate_share": self.throttle.sharing(),
        });
        let live = self.queue.heartbeat_member(&self.member, &details).await?;
        if self.shared_queue() {
            self.throttle.shared_by(live);
        }
        Ok(())
    }

    /// Heartbeats until `cancel`. A heartbeat that fails is retried: on a
    /// shared queue the rate limiter holds requests back meanwhile.
    ///
    /// # Errors
    /// None so far; the signature leaves room.
    pub async fn membership(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut failing = false;
        let every = if self.shared_queue() {
            HEARTBEAT_EVERY
        } else {
            HEARTBEAT_ALONE_EVERY
        };
        loop {
            match self.heartbeat().await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("heartbeat written again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %format!("{e:#}"), "cannot write the heartbeat");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
