-- The status page. Deliveries per hour (Unix ms / 3,600,000), counted by the daemon's
-- maintenance tick: the status page's 24-hour chart reads 24 rows instead
-- of every delivered job.
CREATE TABLE delivery_hours (
    hour      INTEGER PRIMARY KEY,
    delivered INTEGER NOT NULL
);

-- The newest dead letters, for the status page, without reading them all.
CREATE INDEX jobs_dead_recent ON jobs (updated_at) WHERE state = 'dead';

-- How many indicators each named feed holds, as last counted (at the end
-- of each of its files, and by the daemon every minute): the status page
-- reads it instead of counting millions of members.
ALTER TABLE feeds ADD COLUMN members INTEGER NOT NULL DEFAULT 0;
