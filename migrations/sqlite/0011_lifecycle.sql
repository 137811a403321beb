-- Indicator lifecycle (ARCHITECTURE.md, "Lifecycle"): what named feeds
-- hold, retire jobs, snapshots held for confirmation, expiry.

-- What a job does: create (the indicator, then its tags, attributes and
-- labels), or retire it: deactivate (v3 PUT active false), delete, or tag
-- (the payload's one tag). Retire jobs go per indicator, never by batch.
ALTER TABLE jobs ADD COLUMN action TEXT NOT NULL DEFAULT 'create'
    CHECK (action IN ('create', 'deactivate', 'delete', 'tag'));
-- Retire jobs by indicator: one is never queued twice, and one not yet
-- sent is dropped when the indicator comes back.
CREATE INDEX jobs_retiring ON jobs (owner, type, value) WHERE action != 'create';
-- A retire job goes per indicator even for an owner that goes by batch.
DROP INDEX jobs_owner_started;
CREATE INDEX jobs_owner_started ON jobs (owner, next_attempt_at)
    WHERE state = 'pending' AND (steps_done > 0 OR call_uncertain != 0 OR action != 'create');

-- The named feed (a [[feeds]] rule's or a source's `name`) a file was read for.
ALTER TABLE files ADD COLUMN feed TEXT;
CREATE INDEX files_feed ON files (feed, owner) WHERE feed IS NOT NULL;

-- One row per named feed with lifecycle state.
CREATE TABLE feeds (
    name          TEXT    PRIMARY KEY,
    snapshot_file INTEGER,                 -- the last snapshot reconciled (files.id)
    snapshot_size INTEGER,                 -- the indicators it held
    held_file     INTEGER,                 -- a snapshot held for `retire --feed NAME --confirm`
    held_reason   TEXT,
    held_retire   INTEGER,                 -- what it would retire
    held_at       INTEGER,
    swept_at      INTEGER,                 -- the last max_age sweep
    configured    INTEGER NOT NULL DEFAULT 1,  -- still named in the config: its members keep indicators
    created_at    INTEGER NOT NULL,        -- first seen in a config or a file
    updated_at    INTEGER NOT NULL
);

-- The indicators each named feed holds: `generation` is the file that last
-- listed it (files.id), `last_seen` when (Unix ms).
CREATE TABLE feed_members (
    feed       TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (feed, owner, type, value)
) WITHOUT ROWID;
-- No index by indicator: whether another feed holds one is a probe of the
-- primary key per named feed (`feed IN (SELECT name FROM feeds)`), which
-- costs intake nothing.

-- Indicators tc-ingest retired (or is retiring): one that comes back is
-- created with "active": true, whatever the deduplication window says.
CREATE TABLE retired (
    owner      TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    feed       TEXT,                       -- the feed that retired it, if one did
    reason     TEXT    NOT NULL,           -- dropped, max_age, expired, withdrawn, confirmed
    action     TEXT    NOT NULL,
    retired_at INTEGER NOT NULL,
    PRIMARY KEY (owner, type, value)
) WITHOUT ROWID;

-- When the source says an indicator stops being valid (STIX valid_until):
-- it is retired then.
CREATE TABLE expiries (
    owner      TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    feed       TEXT,
    PRIMARY KEY (owner, type, value)
) WITHOUT ROWID;
CREATE INDEX expiries_due ON expiries (expires_at);

DROP VIEW dead_letters;
DROP VIEW jobs_readable;

CREATE VIEW dead_letters AS
SELECT j.id, j.action, j.owner, j.type, j.value, j.last_error_class AS class,
       j.last_http_status AS http_status, j.last_error AS message, j.attempts,
       f.path AS file, j.source_line AS line,
       datetime(j.updated_at / 1000, 'unixepoch') AS buried_at
FROM jobs j LEFT JOIN files f ON f.id = j.file_id
WHERE j.state = 'dead' ORDER BY j.updated_at DESC;

CREATE VIEW jobs_readable AS
SELECT id, state, action, owner, type, value, steps_done, attempts,
       datetime(next_attempt_at / 1000, 'unixepoch') AS next_attempt,
       datetime(lease_expires_at / 1000, 'unixepoch') AS lease_expires,
       last_error_class, last_http_status, last_error, file_id, source_line, batch_ref,
       datetime(created_at / 1000, 'unixepoch') AS created,
       datetime(updated_at / 1000, 'unixepoch') AS updated,
       datetime(delivered_at / 1000, 'unixepoch') AS delivered
FROM jobs;

-- Named feeds for people: lifecycle state and what they hold.
CREATE VIEW feed_lifecycle AS
SELECT f.name, f.snapshot_size, f.held_retire, f.held_reason,
       datetime(f.held_at / 1000, 'unixepoch') AS held_at,
       (SELECT COUNT(*) FROM feed_members m WHERE m.feed = f.name) AS members,
       (SELECT COUNT(*) FROM retired r WHERE r.feed = f.name) AS retired
FROM feeds f ORDER BY f.name;
