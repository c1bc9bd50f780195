-- The running attempt's host, pid and start live on the job row; its attempts row is written
-- once, when the attempt ends (it was inserted at the claim and updated at the finish: two
-- writes of one row per job on the hottest path). Reading a job's attempts shows a running
-- one from the job row. Attempts opened before this migration keep their rows: ending them
-- updates those rows (the finish inserts with ON CONFLICT).
ALTER TABLE jobs ADD COLUMN attempt_host TEXT, ADD COLUMN attempt_pid INTEGER, ADD COLUMN attempt_started_at TIMESTAMPTZ;
UPDATE jobs SET attempt_host = a.host, attempt_pid = a.pid, attempt_started_at = a.started_at
    FROM attempts a WHERE a.job_id = jobs.id AND a.number = jobs.attempt AND jobs.state IN ('STARTING', 'RUNNING');
