-- Core: environments, queues, definitions, jobs, attempts, logs, events, workers.
CREATE TABLE compute_environments (
    name TEXT PRIMARY KEY,
    max_vcpus DOUBLE PRECISION,
    max_memory_mb INTEGER,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    priority INTEGER NOT NULL DEFAULT 0,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    environments JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE job_definitions (
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    spec JSONB NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, revision)
);
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    queue TEXT NOT NULL,
    name TEXT,
    definition TEXT,
    definition_revision INTEGER,
    kind TEXT NOT NULL,
    spec JSONB NOT NULL,
    state TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    priority INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    run_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    attempt INTEGER NOT NULL DEFAULT 0,
    attempts_counted INTEGER NOT NULL DEFAULT 0,
    vcpus DOUBLE PRECISION NOT NULL DEFAULT 1,
    memory_mb INTEGER NOT NULL DEFAULT 0,
    payload JSONB,
    payload_ref TEXT,
    result JSONB,
    tags JSONB,
    unique_key TEXT,
    unique_ttl DOUBLE PRECISION,
    idempotency_key TEXT,
    parent_id BIGINT,
    array_size INTEGER,
    array_index INTEGER,
    array_parent_id BIGINT,
    array_done INTEGER NOT NULL DEFAULT 0,
    array_failed INTEGER NOT NULL DEFAULT 0,
    depends_on JSONB,
    deps_pending INTEGER NOT NULL DEFAULT 0,
    has_dependants BOOLEAN NOT NULL DEFAULT FALSE,
    worker_id TEXT,
    lease_expires_at TIMESTAMPTZ,
    compute_environment TEXT,
    terminate_requested BOOLEAN NOT NULL DEFAULT FALSE
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
    job_id BIGINT NOT NULL,
    depends_on_id BIGINT NOT NULL,
    PRIMARY KEY (job_id, depends_on_id)
);
CREATE INDEX job_dependencies_reverse ON job_dependencies (depends_on_id);
CREATE TABLE unique_keys (
    key TEXT PRIMARY KEY,
    job_id BIGINT NOT NULL,
    expires_at TIMESTAMPTZ
);
CREATE TABLE attempts (
    job_id BIGINT NOT NULL,
    number INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    started_at TIMESTAMPTZ NOT NULL,
    stopped_at TIMESTAMPTZ,
    exit_code INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    compute_environment TEXT,
    counted BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (job_id, number)
);
CREATE TABLE job_logs (
    job_id BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job_id, attempt, seq)
);
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    type TEXT NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX events_entity ON events (entity, entity_id, id);
CREATE INDEX events_at ON events (at);
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    environment TEXT NOT NULL,
    queues JSONB NOT NULL,
    concurrency INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    stopped_at TIMESTAMPTZ
);
