-- Access tokens: only the sha256 of the secret is stored. A job token is bound to one job.
CREATE TABLE tokens (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL UNIQUE,
    scopes JSONB NOT NULL,
    job_id BIGINT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX tokens_job_expiry ON tokens (expires_at) WHERE job_id IS NOT NULL;
