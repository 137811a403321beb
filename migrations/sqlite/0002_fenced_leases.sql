-- Fenced leases and durable progress (see ARCHITECTURE.md, "Delivery").
--
-- lease_token: set by each claim; a result is applied only while the job is
-- still leased with the same token, so a worker whose lease was taken over
-- cannot overwrite what the new holder recorded.
-- call_uncertain: 1 when the job's current call may have reached the server
-- without its answer being recorded (a crash, a timeout, a cut connection):
-- an attribute call is then checked with a GET before it is sent again.
-- attempts now counts consecutive failures of the current call (it resets
-- when a call succeeds).
ALTER TABLE jobs ADD COLUMN lease_token INTEGER;
ALTER TABLE jobs ADD COLUMN call_uncertain INTEGER NOT NULL DEFAULT 0;
