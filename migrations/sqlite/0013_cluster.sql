-- Several daemons on one queue. On PostgreSQL they share it; on SQLite one
-- daemon holds the lock file, and these tables hold just it.

-- One row per daemon run: its heartbeat, written every second (the
-- database's clock), says it lives.
CREATE TABLE daemons (
    id           TEXT    PRIMARY KEY,              -- host:<hash of its watched directory>, the same across restarts
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopped_at   INTEGER,                          -- set by a clean stop
    details      TEXT    NOT NULL DEFAULT '{}'     -- JSON: leases held, rate share, ...
);

-- Work one daemon does at a time (a pull source's polls, the sweeps, an
-- owner's batch jobs): held by one daemon until `expires_at`, renewed while
-- it works, taken over by another when it runs out.
CREATE TABLE roles (
    name       TEXT    PRIMARY KEY,                -- source:<name>, sweeps, batch:<owner>
    holder     TEXT    NOT NULL,                   -- daemons.id
    expires_at INTEGER NOT NULL                    -- the database's clock, Unix ms
);

-- The daemon (daemons.id) that took a file: each daemon resumes only its own.
ALTER TABLE files ADD COLUMN taken_by TEXT;

-- The daemon whose claim holds a job's lease: a daemon restarted (after a
-- kill) returns its own leases to pending at once.
ALTER TABLE jobs ADD COLUMN leased_by TEXT;
