-- The queue usable from the sqlite3 that supported distributions ship
-- (Debian 12: 3.40), and file retention from when a file finished.
--
-- jobs: the time defaults used unixepoch('subsec'), which needs SQLite 3.42:
-- on 3.40 it is NULL, and a row inserted by hand failed with "NOT NULL
-- constraint failed: jobs.next_attempt_at". SQLite cannot change a column's
-- default in place: the table is rebuilt (same columns, same order, same
-- rows) with julianday('now'), which every SQLite 3 has, in Unix ms.
--
-- files.moved_to: where the file was moved when it finished (done/ or
-- failed/); retention deletes it (and its errors report) once finished_at
-- is older than watch.done_retention, whatever the file's mtime.

DROP VIEW IF EXISTS queue_summary;
DROP VIEW IF EXISTS dead_letters;
DROP VIEW IF EXISTS feed_files;
DROP VIEW IF EXISTS jobs_readable;

CREATE TABLE jobs_new (
    id               INTEGER PRIMARY KEY,
    owner            TEXT    NOT NULL,
    type             TEXT    NOT NULL,           -- Address, EmailAddress, File, Host, URL, ASN, CIDR, Mutex, Registry Key, User Agent
    value            TEXT    NOT NULL,           -- the normalized summary
    payload          TEXT    NOT NULL DEFAULT '{}',  -- JSON: rating, confidence, tags [..], attributes [{type, value}]
    steps_done       INTEGER NOT NULL DEFAULT 0, -- calls done: 1 = created, then one per tag, then per attribute
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'leased', 'delivered', 'held', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    lease_expires_at INTEGER,
    last_error_class TEXT,
    last_http_status INTEGER,
    last_error       TEXT,
    file_id          INTEGER REFERENCES files (id) ON DELETE SET NULL,
    source_line      INTEGER,
    dedup_key        INTEGER,                    -- first 8 bytes of sha256(owner, type, value, payload): an index hint
    created_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    updated_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    delivered_at     INTEGER,
    lease_token      INTEGER,
    call_uncertain   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO jobs_new (id, owner, type, value, payload, steps_done, state, attempts,
    next_attempt_at, lease_expires_at, last_error_class, last_http_status, last_error,
    file_id, source_line, dedup_key, created_at, updated_at, delivered_at, lease_token,
    call_uncertain)
SELECT id, owner, type, value, payload, steps_done, state, attempts,
    next_attempt_at, lease_expires_at, last_error_class, last_http_status, last_error,
    file_id, source_line, dedup_key, created_at, updated_at, delivered_at, lease_token,
    call_uncertain
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

CREATE INDEX jobs_due ON jobs (next_attempt_at) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'leased';
CREATE INDEX jobs_held ON jobs (owner) WHERE state = 'held';
CREATE INDEX jobs_dead ON jobs (last_error_class) WHERE state = 'dead';
CREATE INDEX jobs_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX jobs_delivered ON jobs (delivered_at) WHERE delivered_at IS NOT NULL;

ALTER TABLE files ADD COLUMN moved_to TEXT;
CREATE INDEX files_finished ON files (finished_at) WHERE moved_to IS NOT NULL;

-- The views, as before (datetime() is in every SQLite 3).

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

-- A file's jobs (per-file counts in `status`, `why file:line`). Keyed by
-- file_id alone: a job's file never changes, so delivery's state updates
-- never touch this index, and a file's rows append to one range of it.
CREATE INDEX jobs_file ON jobs (file_id, source_line) WHERE file_id IS NOT NULL;
