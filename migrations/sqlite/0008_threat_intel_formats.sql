-- STIX and MISP feeds.
--
-- rows_skipped: objects a format defines that are no indicator here (a STIX
-- malware or relationship, an expired or revoked indicator, a MISP
-- attribute not for detection or of a type with no ThreatConnect
-- counterpart): counted, not rejected. file_skips holds the counts by
-- reason (`stix malware`, `expired`, `misp-type vulnerability`).
ALTER TABLE files ADD COLUMN rows_skipped INTEGER NOT NULL DEFAULT 0;
CREATE TABLE file_skips (
    file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    what    TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (file_id, what)
) WITHOUT ROWID;

-- ThreatConnect keeps no external id for indicators: this is the map from a
-- source's object id (a STIX id, a MISP attribute uuid) to the indicators
-- it gave, with the newest version seen (`modified`, RFC 3339 UTC) and the
-- source's end of validity. A later version of the object is an update of
-- the same indicators; an older one arriving after it is dropped.
CREATE TABLE external_ids (
    external_id TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    modified    TEXT,
    expires     TEXT,
    file_id     INTEGER REFERENCES files (id) ON DELETE SET NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (external_id, owner, type, value)
) WITHOUT ROWID;
