"""/v1/schedules: CRUD, pause/resume, history and next fire times.

Writing needs ``schedules:write`` *and* the right to submit to every target's queue (a
schedule submits jobs on its creator's behalf, so it must not widen what the token may do).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from conveyor import errors, scheduling, wire
from conveyor.api.http import Call, Reply
from conveyor.engine import validate
from conveyor.engine.jobs import SubmitRequest
from conveyor.engine.schedules import ScheduleRequest
from conveyor.scheduling import Schedule, ScheduleFire, ScheduleState

S = dict[str, Any]


def schedule_to_dict(s: Schedule) -> S:
    return {
        "name": s.name,
        "expression": s.expression,
        "timezone": s.timezone,
        "state": s.state.value,
        "targets": [scheduling.target_to_dict(t) for t in s.targets],
        "start_at": wire.when(s.start_at),
        "end_at": wire.when(s.end_at),
        "window_minutes": s.window / timedelta(minutes=1),
        "overlap": s.overlap.value,
        "catch_up": s.catch_up.value,
        "deadline_seconds": None if s.deadline is None else s.deadline.total_seconds(),
        "delete_after": s.delete_after,
        "description": s.description,
        "tags": list(s.tags),
        "next_nominal_at": wire.when(s.next_nominal_at),
        "next_due_at": wire.when(s.next_due_at),
        "last_nominal_at": wire.when(s.last_nominal_at),
        "last_fired_at": wire.when(s.last_fired_at),
        "last_job_ids": list(s.last_job_ids),
        "created_at": wire.when(s.created_at),
        "updated_at": wire.when(s.updated_at),
    }


def fire_to_dict(f: ScheduleFire) -> S:
    return {
        "nominal_at": wire.when(f.nominal_at),
        "due_at": wire.when(f.due_at),
        "fired_at": wire.when(f.fired_at),
        "outcome": f.outcome.value,
        "reason": f.reason,
        "job_ids": list(f.job_ids),
        "count": f.count,
        "last_nominal_at": wire.when(f.last_nominal_at),
    }


def _read(call: Call) -> None:
    call.require(call.principal.reader, "read schedules (needs the read or admin scope)")


def _targets(call: Call, items: list[Any]) -> list[SubmitRequest]:
    out = []
    for i, item in enumerate(items):
        req = wire.request_from_dict(item, f"targets[{i}]")
        call.require(
            call.principal.may_submit(req.queue), f"schedule jobs on queue {req.queue!r} (targets[{i}])"
        )
        out.append(req)
    return out


def _values(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    call.require(call.principal.may("schedules:write"), "change schedules (needs schedules:write)")
    values = dict(body)
    if "targets" in values:
        values["targets"] = _targets(call, values["targets"])
    for key in ("start_at", "end_at"):
        if values.get(key) is not None:
            values[key] = wire._time(key, values[key])
    return values


def list_schedules(call: Call) -> Reply:
    _read(call)
    state_text = call.q_str("state", 16)
    state = None
    if state_text:
        try:
            state = ScheduleState(state_text.upper())
        except ValueError:
            raise errors.ValidationError(
                "state", f"{state_text!r} is not a schedule state", "ACTIVE, PAUSED, FINISHED"
            ) from None
    limit = call.q_int("limit", 100, 1, 1000)
    assert limit is not None
    found = call.app.schedules.find(
        state=state, tag=call.q_str("tag", 128), after_name=call.q_str("after_name", 128), limit=limit
    )
    return Reply(
        {
            "schedules": [schedule_to_dict(s) for s in found],
            "next_after_name": found[-1].name if len(found) == limit else None,
        }
    )


def create_schedule(call: Call) -> Reply:
    values = _values(call, call.body)
    s = call.app.schedules.create(ScheduleRequest(**values))
    return Reply(schedule_to_dict(s), 201, {"Location": f"/v1/schedules/{s.name}"})


def get_schedule(call: Call) -> Reply:
    _read(call)
    return Reply(schedule_to_dict(call.app.schedules.get(validate.name("name", call.path["name"]))))


def update_schedule(call: Call) -> Reply:
    values = _values(call, call.body)
    s = call.app.schedules.update(validate.name("name", call.path["name"]), **values)
    return Reply(schedule_to_dict(s))


def delete_schedule(call: Call) -> Reply:
    call.require(call.principal.may("schedules:write"), "delete schedules (needs schedules:write)")
    call.app.schedules.delete(validate.name("name", call.path["name"]))
    return Reply(None, 204)


def pause_schedule(call: Call) -> Reply:
    call.require(call.principal.may("schedules:write"), "pause schedules (needs schedules:write)")
    s, changed = call.app.schedules.pause(validate.name("name", call.path["name"]))
    return Reply({**schedule_to_dict(s), "changed": changed})


def resume_schedule(call: Call) -> Reply:
    call.require(call.principal.may("schedules:write"), "resume schedules (needs schedules:write)")
    s, changed = call.app.schedules.resume(validate.name("name", call.path["name"]))
    return Reply({**schedule_to_dict(s), "changed": changed})


def schedule_history(call: Call) -> Reply:
    _read(call)
    name = validate.name("name", call.path["name"])
    call.app.schedules.get(name)
    limit = call.q_int("limit", 50, 1, 1000)
    assert limit is not None
    return Reply({"history": [fire_to_dict(f) for f in call.app.schedules.history(name, limit)]})


def schedule_next(call: Call) -> Reply:
    _read(call)
    s = call.app.schedules.get(validate.name("name", call.path["name"]))
    count = call.q_int("count", 5, 1, 100)
    assert count is not None
    fires = call.app.schedules.upcoming(s, count)
    return Reply({"fires": [{"nominal_at": wire.when(n), "due_at": wire.when(d)} for n, d in fires]})
