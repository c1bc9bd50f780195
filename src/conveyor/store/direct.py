"""Running one named job directly: the container-per-job entrypoint (``conveyor run-job``)."""

from __future__ import annotations

from datetime import datetime

from conveyor import errors
from conveyor.model import ClaimRequest, Job
from conveyor.store.lifecycle import LifecycleOps


class DirectOps(LifecycleOps):
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
        with self._write() as tx:
            current = tx.one(
                "SELECT state, array_size, queue FROM jobs WHERE id = ?" + self.d.for_update, (job_id,)
            )
            if current is None:
                raise errors.UnknownJob(job_id)
            if current["array_size"]:
                raise errors.Conflict(
                    f"job {job_id} is an array job; run its children (conveyor jobs list --array {job_id})"
                )
            if current["state"] not in ("RUNNABLE", "SUBMITTED"):
                raise errors.Conflict(
                    f"job {job_id} is {current['state']}; only a RUNNABLE or SUBMITTED job can be run"
                )
            queue = tx.one("SELECT enabled FROM queues WHERE name = ?", (current["queue"],))
            if queue is not None and not bool(queue["enabled"]):  # "disabled: its jobs wait", here too
                raise errors.Conflict(
                    f"job {job_id} is in queue {current['queue']!r}, which is disabled: its jobs wait"
                    f" (conveyor queues enable {current['queue']})"
                )
            if current["state"] == "SUBMITTED":  # not yet due: run-job starts it now
                tx.x("UPDATE jobs SET state = 'RUNNABLE' WHERE id = ?", (job_id,))
                self._events(
                    tx,
                    [
                        (
                            "job",
                            str(job_id),
                            "job.state",
                            {"from": "SUBMITTED", "to": "RUNNABLE", "reason": "run-job"},
                        )
                    ],
                    now,
                )
            if environment is None:
                queue = tx.one("SELECT environments FROM queues WHERE name = ?", (current["queue"],))
                environment = self.d.unjs(queue["environments"])[0] if queue else "default"
            req = ClaimRequest(worker_id, environment, None, 1, lease_seconds, host, pid)
            rows = self._start_jobs(tx, "id = ?", (job_id,), req, environment, now)
        [job] = self._claimed_jobs(rows, req, environment, now)
        return job

    def job_expired_attempts(self, host: str, now: datetime) -> list[tuple[int, int, str]]:
        """Attempts on ``host`` whose lease expired: (job id, attempt, worker id). Read only."""
        with self._read() as tx:
            rows = tx.q(
                "SELECT j.id, j.attempt, j.worker_id FROM jobs j WHERE j.state IN ('STARTING', 'RUNNING')"
                " AND j.lease_expires_at < ? AND (j.attempt_host = ? OR j.attempt_host IS NULL AND EXISTS"
                " (SELECT 1 FROM attempts a WHERE a.job_id = j.id AND a.number = j.attempt AND a.host = ?))",
                (self.d.ts(now), host, host),
            )
        return [(int(r["id"]), int(r["attempt"]), str(r["worker_id"])) for r in rows]
