"""The engine builds ``NewJob`` with positional arguments (keywords cost ~1 µs a job of a bulk
submission): its field order must stay the one the engine passes."""

from __future__ import annotations

from dataclasses import fields

from conveyor.engine import jobs
from conveyor.model import NewJob


def test_new_job_fields_are_in_the_order_the_engine_passes_them() -> None:
    assert tuple(f.name for f in fields(NewJob)) == jobs.NEW_JOB_FIELDS
