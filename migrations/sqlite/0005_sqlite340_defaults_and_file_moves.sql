-- File retention from when a file finished, and per-file lookups.
--
-- (The jobs table's time defaults no longer need SQLite 3.42's
-- unixepoch('subsec'): 0003 rebuilt the table with julianday('now'), which
-- the sqlite3 of Debian 12 (3.40) has, so a job inserted by hand works there.)
--
-- files.moved_to: where the file was moved when it finished (done/ or
-- failed/); retention deletes it (and its errors report) once finished_at
-- is older than watch.done_retention, whatever the file's mtime.

ALTER TABLE files ADD COLUMN moved_to TEXT;
CREATE INDEX files_finished ON files (finished_at) WHERE moved_to IS NOT NULL;

-- A file's jobs (per-file counts in `status`, `why file:line`). Keyed by
-- file_id alone: a job's file never changes, so delivery's state updates
-- never touch this index, and a file's rows append to one range of it.
CREATE INDEX jobs_file ON jobs (file_id, source_line) WHERE file_id IS NOT NULL;
