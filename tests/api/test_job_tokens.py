"""A process job gets CONVEYOR_URL and a job token: it may submit follow-ups to its allowed
queues and read its own job, nothing else; the token dies with the job."""

from __future__ import annotations

import sys

from tests.api.conftest import Live, wait_state

SCRIPT = r"""
import os, conveyor
from conveyor import errors
client = conveyor.Client.from_env()
me = int(os.environ["CONVEYOR_JOB_ID"])
print("token", os.environ["CONVEYOR_TOKEN"])
follow = client.submit(queue="followups", command=["true"])
print("follow-up", follow.id, client.get(follow.id)["parent_id"] == me)
print("own", client.get(me)["state"])
for what, call in (
    ("submit-default", lambda: client.submit(queue="default", command=["true"])),
    ("read-other", lambda: client.get(int(os.environ["OTHER"]))),
    ("list", lambda: client.jobs()),
    ("queues", lambda: client.queues()),
):
    try:
        call()
        print(what, "allowed")
    except errors.Forbidden:
        print(what, "forbidden")
"""


def test_a_job_may_only_submit_to_its_follow_up_queues_and_read_its_own_job(live: Live) -> None:
    assert live.call("PUT", "/v1/queues/followups", {}).status == 201
    spec = {"command": [sys.executable, "-c", SCRIPT], "follow_up_queues": ["followups"]}
    assert live.call("POST", "/v1/definitions", {"name": "parent", "spec": spec}).status == 201
    other = live.call("POST", "/v1/jobs", {"command": ["true"], "delay_seconds": 3600}).json["job"]["id"]
    live.worker(queues=("default",))
    job = live.call("POST", "/v1/jobs", {"definition": "parent", "environment": {"OTHER": str(other)}}).json[
        "job"
    ]
    done = wait_state(live, job["id"], "SUCCEEDED", "FAILED")
    logs = live.call("GET", f"/v1/jobs/{job['id']}/logs").raw.decode()
    assert done["state"] == "SUCCEEDED", logs
    lines = dict(line.split(" ", 1) for line in logs.splitlines())
    assert lines["follow-up"].endswith("True")
    assert lines["own"] == "RUNNING"
    assert lines["submit-default"] == "forbidden"
    assert lines["read-other"] == "forbidden"
    assert lines["list"] == "forbidden"
    assert lines["queues"] == "forbidden"
    # the token stops working once its job has finished
    stale = live.call("GET", f"/v1/jobs/{job['id']}", token=lines["token"])
    assert stale.status == 401
