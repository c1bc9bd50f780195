"""Running one named job directly: the container-per-job entrypoint (``conveyor run-job``)."""

from __future__ import annotations

from datetime import datetime

from conveyor import errors
from conveyor.model import Job
from conveyor.store.base import plus
from conveyor.store.core import SqlStoreBase


class DirectOps(SqlStoreBase):
    def job_claim_one(
        self,
        job_id: int,
        *,
        worker_id: str,
        environment: str | None,
        lease_seconds: float,
        host: str,
        pid: int | None,
        now: datetime,
    ) -> Job:
        """Claim job ``job_id`` for this process, whatever the queue's capacity says.

        The caller (an orchestrator starting one container per job) has chosen where it
        runs. Only a RUNNABLE or SUBMITTED job can be claimed; anything else is a Conflict.
        """
        d = self.d
        ts = d.ts(now)
        with self._write() as tx:
            row = tx.one(
                "UPDATE jobs SET state = CASE WHEN kind = 'function' THEN 'RUNNING' ELSE 'STARTING' END,"
                " status_reason = ?, worker_id = ?, lease_expires_at = ?, attempt = attempt + 1,"
                " attempts_counted = attempts_counted + 1, started_at = COALESCE(started_at, ?), updated_at = ?,"
                " compute_environment = COALESCE(?, compute_environment), terminate_requested = ?"
                " WHERE id = ? AND state IN ('RUNNABLE', 'SUBMITTED') AND array_size IS NULL RETURNING *",
                (
                    f"started by run-job on {host}",
                    worker_id,
                    d.ts(plus(now, lease_seconds)),
                    ts,
                    ts,
                    environment,
                    False,
                    job_id,
                ),
            )
            if row is None:
                current = tx.one("SELECT state, array_size FROM jobs WHERE id = ?", (job_id,))
                if current is None:
                    raise errors.UnknownJob(job_id)
                if current["array_size"]:
                    raise errors.Conflict(
                        f"job {job_id} is an array job; run its children (conveyor jobs list --array {job_id})"
                    )
                raise errors.Conflict(
                    f"job {job_id} is {current['state']}; only a RUNNABLE or SUBMITTED job can be run"
                )
            job = self._job(row)
            tx.x(
                "INSERT INTO attempts (job_id, number, worker_id, host, pid, started_at, compute_environment)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.attempt, worker_id, host, pid, ts, job.compute_environment),
            )
            self._events(
                tx,
                [
                    (
                        "job",
                        str(job.id),
                        "job.state",
                        {"to": job.state.value, "attempt": job.attempt, "worker": worker_id},
                    )
                ],
                now,
            )
        return job

    def job_expired_attempts(self, host: str, now: datetime) -> list[tuple[int, int, str]]:
        """Attempts on ``host`` whose lease expired: (job id, attempt, worker id). Read only."""
        with self._read() as tx:
            rows = tx.q(
                "SELECT j.id, j.attempt, j.worker_id FROM jobs j JOIN attempts a ON a.job_id = j.id AND a.number = j.attempt"
                " WHERE j.state IN ('STARTING', 'RUNNING') AND j.lease_expires_at < ? AND a.host = ?",
                (self.d.ts(now), host),
            )
        return [(int(r["id"]), int(r["attempt"]), str(r["worker_id"])) for r in rows]
