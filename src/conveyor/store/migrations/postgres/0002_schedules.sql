-- Schedules and their fire history.
CREATE TABLE schedules (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    expression TEXT NOT NULL,
    timezone TEXT NOT NULL,
    anchor_at TIMESTAMPTZ NOT NULL,
    start_at TIMESTAMPTZ,
    end_at TIMESTAMPTZ,
    window_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    overlap TEXT NOT NULL,
    catch_up TEXT NOT NULL,
    deadline_seconds DOUBLE PRECISION,
    state TEXT NOT NULL,
    delete_after BOOLEAN NOT NULL DEFAULT FALSE,
    description TEXT NOT NULL DEFAULT '',
    tags JSONB,
    targets JSONB NOT NULL,
    next_nominal_at TIMESTAMPTZ,
    next_due_at TIMESTAMPTZ,
    last_nominal_at TIMESTAMPTZ,
    last_fired_at TIMESTAMPTZ,
    last_job_ids JSONB,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
-- the scheduler claims due schedules in batches by due time
CREATE INDEX schedules_due ON schedules (next_due_at) WHERE state = 'ACTIVE';
CREATE TABLE schedule_fires (
    id BIGSERIAL PRIMARY KEY,
    schedule_id BIGINT NOT NULL,
    schedule TEXT NOT NULL,
    nominal_at TIMESTAMPTZ NOT NULL,
    last_nominal_at TIMESTAMPTZ,
    due_at TIMESTAMPTZ,
    fired_at TIMESTAMPTZ NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL DEFAULT 1,
    job_ids JSONB
);
-- the exactly-once backstop: one history row per schedule and nominal time
CREATE UNIQUE INDEX schedule_fires_once ON schedule_fires (schedule_id, nominal_at);
CREATE INDEX schedule_fires_at ON schedule_fires (fired_at);
