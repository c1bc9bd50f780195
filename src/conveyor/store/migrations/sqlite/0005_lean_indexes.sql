-- Every job passes through STARTING/RUNNING and every transition writes an event: each index
-- on those rows is maintained thousands of times a second. Active jobs are few (at most the
-- workers' total concurrency), and jobs_state_id (state, id) already finds them, so the
-- three partial indexes over active jobs go. Events are pruned by id (ids follow time), so
-- events_at goes too.
DROP INDEX IF EXISTS jobs_lease;
DROP INDEX IF EXISTS jobs_worker;
DROP INDEX IF EXISTS jobs_env_active;
DROP INDEX IF EXISTS events_at;
