"""``conveyor submit --from-file``: a refused submission is named by its line of the file
(``line N.field``, 1-based), whichever layer refused it — the file's own JSON checks, the
engine (which names a batch's submissions ``jobs[i]`` and a lone one not at all) or the
store — with the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.helpers import conveyor

OK = '{"command": ["true"]}'
# (the file, the one line of stderr)
CASES = [
    # the same two-line file: the file's check, the engine's, each names line 2
    pytest.param(
        f'{OK}\n{{"command": ["true"], "priority": 1.5}}\n',
        "line 2.priority: 1.5 is not a whole number (allowed: a whole number from -1000000 to 1000000)",
        id="priority-float",
    ),
    pytest.param(
        f'{OK}\n{{"command": ["true"], "priority": true}}\n',
        "line 2.priority: true is not a whole number (allowed: a whole number from -1000000 to 1000000)",
        id="priority-true",
    ),
    pytest.param(
        f'{OK}\n{{"command": ["true"], "run_at": "9500-01-01T00:00:00Z"}}\n',
        "line 2.run_at: 9500-01-01T00:00:00+00:00 is out of range (allowed: a time from 1900-01-01 to"
        " 9000-01-01 UTC, with its offset, e.g. 2026-05-01T12:00:00+00:00)",
        id="run-at-range",
    ),
    pytest.param(
        f'{OK}\n{{"command": ["true"], "queue": "nope"}}\n',
        "line 2.queue: queue 'nope' does not exist (allowed: default)",
        id="queue-unknown",
    ),
    pytest.param(
        f'{OK}\n{{"command": ["true"], "array_sequential": true}}\n',
        "line 2.array_size: SEQUENTIAL and N_TO_N dependencies need an array job (allowed: --array-size 2..10000)",
        id="array-size",
    ),
    # blank lines count: the line of the file, not the place among the submissions
    pytest.param(
        f'\n{OK}\n\n{{"command": ["true"], "depends_on": [424242]}}\n',
        "line 4.depends_on: job 424242 does not exist (allowed: ids of existing jobs)",
        id="dependency-unknown-from-the-store",
    ),
    # one line: the engine names no place at all
    pytest.param(
        '{"command": ["a\\u0000"]}\n',
        "line 1.command[0]: contains a NUL character (allowed: Unicode text without NUL)",
        id="one-line-nul",
    ),
    pytest.param(
        '{"command": ["true"], "run_at": "0001-01-01T00:00:00+14:00"}\n',
        "line 1.run_at: 0001-01-01T00:00:00+14:00 is out of range (allowed: a time from 1900-01-01 to"
        " 9000-01-01 UTC, with its offset, e.g. 2026-05-01T12:00:00+00:00)",
        id="one-line-run-at",
    ),
    pytest.param(
        '{"command": ["true"], "delay_seconds": 5, "run_at": "2030-01-01T00:00:00Z"}\n',
        "line 1.delay_seconds: is given with run_at (allowed: run_at or delay_seconds, not both)",
        id="one-line-delay-and-run-at",
    ),
    # the file's own checks give the value and what is allowed
    pytest.param(
        f'{OK}\n{{"command": ["true"], "tags": "nightly"}}\n',
        "line 2.tags: 'nightly' is not a list (allowed: a list of strings)",
        id="tags-a-string",
    ),
    pytest.param(
        '{"command": ["true"], "tags": ["ok", 7]}\n',
        "line 1.tags[1]: 7 is not a string (allowed: a string of at most 128 characters)",
        id="tags-a-number",
    ),
    pytest.param(
        '{"command": ["true"], "depends_on": "12"}\n',
        "line 1.depends_on: '12' is not a list (allowed: a list of whole numbers or {job_id, type} objects)",
        id="depends-on-a-string",
    ),
    pytest.param(
        '{"command": ["true"], "depends_on": [null]}\n',
        "line 1.depends_on[0]: null is not a whole number or an object"
        " (allowed: a whole number from 1 to 4611686018427387904, or a {job_id, type} object)",
        id="depends-on-null",
    ),
]


@pytest.mark.parametrize(("text", "line"), CASES)
def test_a_refused_line_is_named_by_its_line_of_the_file(
    sqlite_url: str, tmp_path: Path, text: str, line: str
) -> None:
    (tmp_path / "jobs.jsonl").write_text(text)
    done = conveyor("submit", "--from-file", "jobs.jsonl", db=sqlite_url, cwd=tmp_path)
    assert (done.returncode, done.stderr.strip().splitlines()) == (2, [f"conveyor: {line}"])
    listed = conveyor("jobs", "list", "--json", db=sqlite_url, cwd=tmp_path)
    assert listed.stdout.strip() == "[]"  # all or none


def test_a_unique_key_too_long_says_its_length_as_an_idempotency_key_does(
    sqlite_url: str, tmp_path: Path
) -> None:
    for flag, field in (("--unique-key", "unique_key"), ("--idempotency-key", "idempotency_key")):
        done = conveyor("submit", flag, "k" * 513, "--", "true", db=sqlite_url, cwd=tmp_path)
        assert (done.returncode, done.stderr.strip()) == (
            2,
            f"conveyor: {field}: is 513 characters (allowed: 1-512 characters)",
        )
