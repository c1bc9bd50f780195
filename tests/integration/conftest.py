"""In-process ``App`` on a real database (both backends via ``db_url``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.app import App


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    opened = App.open(db_url, blob_dir=tmp_path / "blobs")
    try:
        yield opened
    finally:
        opened.close()
