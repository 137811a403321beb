-- A crash loop is a daemon that dies reading a file without getting any
-- further, not one that was stopped from outside while it made progress.
--
-- resumes becomes stalls: how many interrupted reads of the file in a row
-- committed no row (its last_position did not move). Any committed
-- progress sets it back to 0; at watch.max_stalled_reads the file goes to
-- failed/ and stays there until `tc-ingest retry --file` puts it back. A
-- failed file with stalls > 0 is one given up this way.
-- reading: 1 while a daemon reads the file; a daemon that finds it still
-- 1 at startup died reading it.
-- read_from: last_position when that read began.
-- put_back: `tc-ingest retry --file` asks the daemon to put a given-up file
-- back into processing/ and read it on (the daemon alone moves files into
-- processing/).
ALTER TABLE files RENAME COLUMN resumes TO stalls;
ALTER TABLE files ADD COLUMN reading INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN read_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN put_back INTEGER NOT NULL DEFAULT 0;
CREATE INDEX files_put_back ON files (id) WHERE put_back = 1;
-- resumes counted every resumed start and was never cleared: only files
-- given up by the old guard keep a count, so that retry --file takes them.
UPDATE files SET stalls = 0
WHERE NOT (state = 'failed' AND error LIKE 'the daemon stopped twice while reading this file%');
