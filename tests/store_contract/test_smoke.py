from __future__ import annotations

from conveyor.clock import FrozenClock
from conveyor.model import ClaimRequest, DefinitionSpec, Finish, JobState, NewJob, OutcomeKind
from conveyor.store import Store


def test_submitted_job_is_claimed_and_succeeds(store: Store, clock: FrozenClock) -> None:
    [res] = store.job_insert_many([NewJob(queue="default", spec=DefinitionSpec(function="m:f"))], clock.now())
    assert res.job.state is JobState.RUNNABLE
    [job] = store.job_claim(ClaimRequest("w1", "default", None, 10, 30), clock.now())
    assert job.id == res.job.id and job.state is JobState.RUNNING
    assert store.job_finish_many(
        [Finish(job.id, 1, "w1", OutcomeKind.SUCCEEDED, result={"ok": 1})], clock.now()
    ) == [True]
    done = store.job_get(job.id)
    assert done is not None and done.state is JobState.SUCCEEDED and done.result == {"ok": 1}
