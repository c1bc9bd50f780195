-- Access tokens: only the sha256 of the secret is stored. A job token is bound to one job.
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    job_id INTEGER,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    last_used_at REAL
);
CREATE INDEX tokens_job_expiry ON tokens (expires_at) WHERE job_id IS NOT NULL;
