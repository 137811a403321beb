-- No crash loop on one file (see ARCHITECTURE.md, "Hostile input").
--
-- resumes: how many times in a row a file left in processing/ by a daemon
-- that died while reading it was taken up again. Startup adds one before
-- resuming; a graceful stop sets it back to 0. At 2 (the daemon died
-- again while reading it) the file goes to failed/ instead of being read a
-- third time.
ALTER TABLE files ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;
