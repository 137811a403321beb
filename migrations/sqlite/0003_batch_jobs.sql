-- Batch jobs (ARCHITECTURE.md, "Bulk modes") and the jobs table rebuilt:
-- jobs gain the state 'batched' (sent in a ThreatConnect batch job, waiting
-- for its result) and `batch_ref`; the time defaults no longer use
-- unixepoch('subsec'), so that the sqlite3 of Debian 12 (3.40) can insert a
-- job by hand.

-- One row per ThreatConnect batch job tc-ingest made (or is making).
CREATE TABLE batch_jobs (
    id              INTEGER PRIMARY KEY,
    owner           TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'new'
                    CHECK (state IN ('new', 'created', 'uploading', 'uploaded', 'done', 'failed')),
    tc_batch_id     INTEGER,                     -- ThreatConnect's batchId, once created
    items           INTEGER NOT NULL,            -- jobs in it when formed
    data_bytes      INTEGER NOT NULL,            -- size of its data file
    tc_status       TEXT,                        -- as last polled: Created, Queued, Running, Completed
    error_count     INTEGER,
    success_count   INTEGER,
    unprocess_count INTEGER,
    upload_attempts INTEGER NOT NULL DEFAULT 0,
    polls           INTEGER NOT NULL DEFAULT 0,
    error           TEXT,                        -- why it failed, or what became of its jobs
    created_at      INTEGER NOT NULL,
    uploaded_at     INTEGER,
    finished_at     INTEGER
);
CREATE INDEX batch_jobs_open ON batch_jobs (state) WHERE state NOT IN ('done', 'failed');

CREATE TABLE jobs_new (
    id               INTEGER PRIMARY KEY,
    owner            TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    value            TEXT    NOT NULL,
    payload          TEXT    NOT NULL DEFAULT '{}',
    steps_done       INTEGER NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'leased', 'batched', 'delivered', 'held', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    lease_expires_at INTEGER,
    last_error_class TEXT,
    last_http_status INTEGER,
    last_error       TEXT,
    file_id          INTEGER REFERENCES files (id) ON DELETE SET NULL,
    source_line      INTEGER,
    dedup_key        INTEGER,
    created_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    updated_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    delivered_at     INTEGER,
    lease_token      INTEGER,
    call_uncertain   INTEGER NOT NULL DEFAULT 0,
    batch_ref        INTEGER REFERENCES batch_jobs (id) ON DELETE SET NULL  -- the batch job it is (or was last) in
);
INSERT INTO jobs_new (id, owner, type, value, payload, steps_done, state, attempts, next_attempt_at,
                      lease_expires_at, last_error_class, last_http_status, last_error, file_id,
                      source_line, dedup_key, created_at, updated_at, delivered_at, lease_token,
                      call_uncertain)
SELECT id, owner, type, value, payload, steps_done, state, attempts, next_attempt_at,
       lease_expires_at, last_error_class, last_http_status, last_error, file_id,
       source_line, dedup_key, created_at, updated_at, delivered_at, lease_token, call_uncertain
FROM jobs;

DROP VIEW queue_summary;
DROP VIEW dead_letters;
DROP VIEW jobs_readable;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

CREATE INDEX jobs_due ON jobs (next_attempt_at) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'leased';
CREATE INDEX jobs_held ON jobs (owner) WHERE state = 'held';
CREATE INDEX jobs_dead ON jobs (last_error_class) WHERE state = 'dead';
CREATE INDEX jobs_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX jobs_delivered ON jobs (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX jobs_batched ON jobs (batch_ref) WHERE state = 'batched';

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

CREATE VIEW jobs_readable AS
SELECT id, state, owner, type, value, steps_done, attempts,
       datetime(next_attempt_at / 1000, 'unixepoch') AS next_attempt,
       datetime(lease_expires_at / 1000, 'unixepoch') AS lease_expires,
       last_error_class, last_http_status, last_error, file_id, source_line, batch_ref,
       datetime(created_at / 1000, 'unixepoch') AS created,
       datetime(updated_at / 1000, 'unixepoch') AS updated,
       datetime(delivered_at / 1000, 'unixepoch') AS delivered
FROM jobs;

-- Batch jobs for people: ThreatConnect's id, state, items, age.
CREATE VIEW batches AS
SELECT id, owner, tc_batch_id, state, tc_status, items, data_bytes, error_count,
       success_count, unprocess_count, upload_attempts, polls, error,
       datetime(created_at / 1000, 'unixepoch') AS created,
       datetime(uploaded_at / 1000, 'unixepoch') AS uploaded,
       datetime(finished_at / 1000, 'unixepoch') AS finished,
       (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - created_at) / 1000 AS age_secs
FROM batch_jobs ORDER BY id DESC;
