"""A bounded schemathesis run against /openapi.json: no input may produce a 5xx.

The CLI runs its coverage, fuzzing and stateful phases against a live server (admin token,
so every route is reached); token revocation is left out so the run keeps its own token.
A longer run: ``schemathesis run URL/openapi.json -c not_a_server_error -n 200 -H ...``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import Live


def test_schemathesis_finds_no_server_error(live: Live, tmp_path: Path) -> None:
    tool = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if tool is None:
        pytest.fail("schemathesis is not installed; install the test extras: pip install -e '.[test]'")
    # bounded: PostgreSQL gets the coverage phase (boundary and negative values on every route,
    # where column limits bite), SQLite random fuzzing and stateful sequences
    postgres = "postgres" in live.app.url
    examples, phases = ("5", "coverage") if postgres else ("10", "fuzzing,stateful")
    result = subprocess.run(
        [
            tool,
            "run",
            f"{live.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            examples,
            "--phases",
            phases,
            "--seed",
            "4242",
            "--exclude-operation-id",
            "revoke_token",
            "--header",
            f"Authorization: Bearer {live.admin}",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
