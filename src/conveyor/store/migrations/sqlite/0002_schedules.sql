-- Schedules and their fire history. Times are REAL seconds since the epoch (UTC); JSON is TEXT.
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    expression TEXT NOT NULL,
    timezone TEXT NOT NULL,
    anchor_at REAL NOT NULL,
    start_at REAL,
    end_at REAL,
    window_seconds REAL NOT NULL DEFAULT 0,
    overlap TEXT NOT NULL,
    catch_up TEXT NOT NULL,
    deadline_seconds REAL,
    state TEXT NOT NULL,
    delete_after INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT,
    targets TEXT NOT NULL,
    next_nominal_at REAL,
    next_due_at REAL,
    last_nominal_at REAL,
    last_fired_at REAL,
    last_job_ids TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- the scheduler claims due schedules in batches by due time
CREATE INDEX schedules_due ON schedules (next_due_at) WHERE state = 'ACTIVE';
CREATE TABLE schedule_fires (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id INTEGER NOT NULL,
    schedule TEXT NOT NULL,
    nominal_at REAL NOT NULL,
    last_nominal_at REAL,
    due_at REAL,
    fired_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL DEFAULT 1,
    job_ids TEXT
);
-- the exactly-once backstop: one history row per schedule and nominal time
CREATE UNIQUE INDEX schedule_fires_once ON schedule_fires (schedule_id, nominal_at);
CREATE INDEX schedule_fires_at ON schedule_fires (fired_at);
