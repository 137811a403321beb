-- The tc-ingest queue. Times are Unix milliseconds (INTEGER) so comparisons are
-- cheap; the views below format them for people (UTC).

-- One row per feed file taken in.
CREATE TABLE files (
    id              INTEGER PRIMARY KEY,
    path            TEXT    NOT NULL,            -- as found: relative to watch.dir, or as given to `enqueue`
    processing_path TEXT,                        -- where it sits while being read (daemon only)
    sha256          TEXT    NOT NULL,
    size_bytes      INTEGER NOT NULL,
    format          TEXT,                        -- csv, tsv, json, ndjson, text
    owner           TEXT    NOT NULL,            -- default owner of its rows
    state           TEXT    NOT NULL DEFAULT 'processing'
                    CHECK (state IN ('processing', 'done', 'failed', 'skipped')),
    rows_read       INTEGER NOT NULL DEFAULT 0,
    rows_queued     INTEGER NOT NULL DEFAULT 0,
    rows_rejected   INTEGER NOT NULL DEFAULT 0,
    rows_duplicate  INTEGER NOT NULL DEFAULT 0,
    last_position   INTEGER NOT NULL DEFAULT 0,  -- last row committed: a resumed file starts after it
    error           TEXT,                        -- why the file failed or stopped early
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX files_sha256 ON files (sha256);
CREATE INDEX files_processing ON files (processing_path) WHERE state = 'processing';

-- Rows refused before queuing, with the rule they broke.
CREATE TABLE rejects (
    id      INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    line    INTEGER NOT NULL,
    input   TEXT    NOT NULL,
    rule    TEXT    NOT NULL,
    reason  TEXT    NOT NULL
);
CREATE INDEX rejects_file ON rejects (file_id);

-- One row per indicator to deliver. To add one by hand, insert owner, type
-- (ThreatConnect's type name), value (already in ThreatConnect's form) and
-- optionally payload; every other column has a default.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    owner            TEXT    NOT NULL,
    type             TEXT    NOT NULL,           -- Address, EmailAddress, File, Host, URL, ASN, CIDR, Mutex, Registry Key, User Agent
    value            TEXT    NOT NULL,           -- the normalized summary
    payload          TEXT    NOT NULL DEFAULT '{}',  -- JSON: rating, confidence, tags [..], attributes [{type, value}]
    steps_done       INTEGER NOT NULL DEFAULT 0, -- calls done: 1 = created, then one per tag, then per attribute
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'leased', 'delivered', 'held', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    lease_expires_at INTEGER,
    last_error_class TEXT,
    last_http_status INTEGER,
    last_error       TEXT,
    file_id          INTEGER REFERENCES files (id) ON DELETE SET NULL,
    source_line      INTEGER,
    dedup_key        INTEGER,                    -- first 8 bytes of sha256(owner, type, value, payload): an index hint
    created_at       INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at       INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    delivered_at     INTEGER
);
-- Partial indexes: each holds only the rows of one state, so the common
-- insert (a pending job) touches one small index entry.
CREATE INDEX jobs_due ON jobs (next_attempt_at) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'leased';
CREATE INDEX jobs_held ON jobs (owner) WHERE state = 'held';
CREATE INDEX jobs_dead ON jobs (last_error_class) WHERE state = 'dead';
CREATE INDEX jobs_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX jobs_delivered ON jobs (delivered_at) WHERE delivered_at IS NOT NULL;

-- Owners whose jobs wait because the API denied access to them.
CREATE TABLE held_owners (
    owner   TEXT    PRIMARY KEY,
    class   TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    held_at INTEGER NOT NULL
);

-- What the running daemon tells `status`: `pause` (JSON) and `heartbeat` (JSON).
CREATE TABLE daemon_state (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Views for people with sqlite3.

CREATE VIEW queue_summary AS
SELECT state, owner, type, COUNT(*) AS jobs,
       datetime(MIN(created_at) / 1000, 'unixepoch') AS oldest_created
FROM jobs GROUP BY state, owner, type ORDER BY state, owner, type;

CREATE VIEW dead_letters AS
SELECT j.id, j.owner, j.type, j.value, j.last_error_class AS class,
       j.last_http_status AS http_status, j.last_error AS message, j.attempts,
       f.path AS file, j.source_line AS line,
       datetime(j.updated_at / 1000, 'unixepoch') AS buried_at
FROM jobs j LEFT JOIN files f ON f.id = j.file_id
WHERE j.state = 'dead' ORDER BY j.updated_at DESC;

CREATE VIEW feed_files AS
SELECT id, path, state, format, owner, size_bytes, sha256, rows_read, rows_queued,
       rows_rejected, rows_duplicate, error,
       datetime(started_at / 1000, 'unixepoch') AS started,
       datetime(finished_at / 1000, 'unixepoch') AS finished
FROM files ORDER BY id DESC;

CREATE VIEW jobs_readable AS
SELECT id, state, owner, type, value, steps_done, attempts,
       datetime(next_attempt_at / 1000, 'unixepoch') AS next_attempt,
       datetime(lease_expires_at / 1000, 'unixepoch') AS lease_expires,
       last_error_class, last_http_status, last_error, file_id, source_line,
       datetime(created_at / 1000, 'unixepoch') AS created,
       datetime(updated_at / 1000, 'unixepoch') AS updated,
       datetime(delivered_at / 1000, 'unixepoch') AS delivered
FROM jobs;
