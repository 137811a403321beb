-- Pull sources: what each one fetched, where it stands, and how healthy it
-- is. A row is advanced only after the file a fetch wrote is durably in
-- the watched directory, so a crash re-fetches at most what was in flight.
--
-- cursor: a TAXII source's next added_after (the server's own timestamp);
-- etag, last_modified, content_sha256: an HTTP source's last document;
-- newest_data_at: when a fetch last brought anything new (stale_after
-- counts from it, or from created_at before the first).
CREATE TABLE sources (
    name                 TEXT    NOT NULL PRIMARY KEY,
    kind                 TEXT    NOT NULL,
    -- What the state is of (the URL, and a TAXII collection): another
    -- origin starts the state over.
    origin               TEXT    NOT NULL DEFAULT '',
    cursor               TEXT,
    etag                 TEXT,
    last_modified        TEXT,
    content_sha256       TEXT,
    last_attempt_at      INTEGER,
    last_success_at      INTEGER,
    last_error           TEXT,
    last_error_class     TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    newest_data_at       INTEGER,
    files_fetched        INTEGER NOT NULL DEFAULT 0,
    objects_fetched      INTEGER NOT NULL DEFAULT 0,
    bytes_fetched        INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL
);

-- A MISP feed's events: the manifest timestamp of the version written, and
-- when the event left the manifest (the lifecycle work may retire what it
-- gave).
CREATE TABLE source_events (
    source     TEXT    NOT NULL,
    uuid       TEXT    NOT NULL,
    timestamp  INTEGER NOT NULL,
    removed_at INTEGER,
    PRIMARY KEY (source, uuid)
) WITHOUT ROWID;
