-- The allowlist: rows whose indicator it filters are counted, not queued.
-- file_filters holds the counts by what matched (`builtin`, `values`,
-- `cidrs`, `domains`, `regex`, or a MISP warninglist's name).
ALTER TABLE files ADD COLUMN rows_filtered INTEGER NOT NULL DEFAULT 0;
CREATE TABLE file_filters (
    file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    what    TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (file_id, what)
) WITHOUT ROWID;
