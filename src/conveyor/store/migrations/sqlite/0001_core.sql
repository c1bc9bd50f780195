-- Core: environments, queues, definitions, jobs, attempts, logs, events, workers.
-- Times are REAL seconds since the epoch (UTC); JSON is TEXT.
CREATE TABLE compute_environments (
    name TEXT PRIMARY KEY,
    max_vcpus REAL,
    max_memory_mb INTEGER,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    priority INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    environments TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE job_definitions (
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    spec TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, revision)
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    name TEXT,
    definition TEXT,
    definition_revision INTEGER,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    priority INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    run_at REAL,
    started_at REAL,
    finished_at REAL,
    attempt INTEGER NOT NULL DEFAULT 0,
    attempts_counted INTEGER NOT NULL DEFAULT 0,
    vcpus REAL NOT NULL DEFAULT 1,
    memory_mb INTEGER NOT NULL DEFAULT 0,
    payload TEXT,
    payload_ref TEXT,
    result TEXT,
    tags TEXT,
    unique_key TEXT,
    unique_ttl REAL,
    idempotency_key TEXT,
    parent_id INTEGER,
    array_size INTEGER,
    array_index INTEGER,
    array_parent_id INTEGER,
    array_done INTEGER NOT NULL DEFAULT 0,
    array_failed INTEGER NOT NULL DEFAULT 0,
    depends_on TEXT,
    deps_pending INTEGER NOT NULL DEFAULT 0,
    has_dependants INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    lease_expires_at REAL,
    compute_environment TEXT,
    terminate_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, id) WHERE state = 'RUNNABLE';
CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'SUBMITTED';
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state IN ('STARTING', 'RUNNING');
CREATE INDEX jobs_worker ON jobs (worker_id) WHERE state IN ('STARTING', 'RUNNING');
CREATE INDEX jobs_env_active ON jobs (compute_environment) WHERE state IN ('STARTING', 'RUNNING');
CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_array_parent ON jobs (array_parent_id, array_index) WHERE array_parent_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_state_id ON jobs (state, id);
CREATE TABLE job_dependencies (
    job_id INTEGER NOT NULL,
    depends_on_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, depends_on_id)
);
CREATE INDEX job_dependencies_reverse ON job_dependencies (depends_on_id);
CREATE TABLE unique_keys (
    key TEXT PRIMARY KEY,
    job_id INTEGER NOT NULL,
    expires_at REAL
);
CREATE TABLE attempts (
    job_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    started_at REAL NOT NULL,
    stopped_at REAL,
    exit_code INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    compute_environment TEXT,
    counted INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (job_id, number)
);
CREATE TABLE job_logs (
    job_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, attempt, seq)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_entity ON events (entity, entity_id, id);
CREATE INDEX events_at ON events (at);
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    environment TEXT NOT NULL,
    queues TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    stopped_at REAL
);
