-- Due jobs owner by owner.
--
-- When some owners go by batch, their due jobs wait for the batcher while
-- everyone else's are claimed per indicator. Scanning the due index to skip
-- a backlog of a million batch jobs cost a claim (and the batch decision)
-- tens of milliseconds per 100,000 rows, several times a second. With these
-- the claim and the decision go owner by owner, each reading only what it
-- takes.
CREATE INDEX jobs_owner_due ON jobs (owner, next_attempt_at) WHERE state = 'pending';

-- Pending jobs that can no longer go by batch (a step done, or a call of
-- unknown outcome): what the dispatcher claims of an owner that goes by
-- batch. Few at any time.
CREATE INDEX jobs_owner_started ON jobs (owner, next_attempt_at)
    WHERE state = 'pending' AND (steps_done > 0 OR call_uncertain != 0);
