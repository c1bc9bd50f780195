"""The blob store: large payloads live here, the job row keeps a reference.

The default is a directory (content-addressed files). On many machines, point every
process at the same shared directory (``--blob-dir`` / ``CONVEYOR_BLOB_DIR``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from conveyor import errors


class DirectoryBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its reference (``sha256:<hex>``). Writing the same bytes twice is free."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        return f"sha256:{digest}"

    def get(self, ref: str) -> bytes:
        if not ref.startswith("sha256:"):
            raise errors.ValidationError("payload_ref", f"{ref!r} is not a blob reference", "sha256:<hex>")
        path = self._path(ref.removeprefix("sha256:"))
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise errors.NotFound(
                "blob", ref, f"looked in {self.root}; is the blob directory shared?"
            ) from exc

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest


def default_blob_dir(database_url: str) -> Path:
    """Next to the SQLite file, else ``./conveyor-blobs``; ``CONVEYOR_BLOB_DIR`` wins."""
    env = os.environ.get("CONVEYOR_BLOB_DIR")
    if env:
        return Path(env)
    if database_url.startswith("sqlite:///"):
        db = Path(database_url[len("sqlite:///") :].split("?", 1)[0])
        return db.parent / "conveyor-blobs"
    return Path("conveyor-blobs")


def resolve_payload(store: object, blobs: DirectoryBlobStore, job: object) -> object:
    """A job's payload: from the blob store when it lives there; an array child reads its parent's."""
    import json

    from conveyor.model import Job

    assert isinstance(job, Job)
    if job.payload_ref:
        return json.loads(blobs.get(job.payload_ref))
    if job.payload is None and job.array_parent_id is not None:
        parent = store.job_get(job.array_parent_id)  # type: ignore[attr-defined]
        if parent is not None:
            return resolve_payload(store, blobs, parent)
    return job.payload
