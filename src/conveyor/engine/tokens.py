"""Access control: tokens with scopes, and job tokens that may only dispatch allowed follow-ups.

Scopes (like IAM actions on AWS Batch):

- ``admin``: everything, including tokens and the catalogue (queues, environments, definitions).
- ``read``: read everything except tokens.
- ``submit:<queue-glob>``: submit jobs to matching queues, and read, cancel, terminate and retry
  jobs in those queues.
- ``schedules:write``: create, change, pause and delete schedules.
- ``checks:write``: reserved for heartbeat checks (not served yet).

A *job token* is minted by a worker for one running job: its scopes are ``submit:<glob>`` for
each of the job definition's ``follow_up_queues``; it reads only its own job and the jobs it
submitted, and it stops working once the job has finished or the token expires.

Secrets are ``cvy_`` + 43 random URL-safe characters; the store keeps their sha256 only.
Verified tokens are cached for ``cache_seconds`` (a revoke made by another process is seen
within that time; one made in this process at once); job tokens are checked every time.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from conveyor import errors
from conveyor.clock import Clock
from conveyor.model import MAX_ID, Job
from conveyor.store import Store
from conveyor.store.tokens import NewToken, Token

PREFIX = "cvy_"
FIXED_SCOPES = ("admin", "read", "schedules:write", "checks:write")
QUEUE_GLOB_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,128}$")
TOUCH_EVERY = timedelta(seconds=60)
JOB_TOKEN_MARGIN = timedelta(minutes=10)
JOB_TOKEN_DEFAULT = timedelta(hours=6)
MAX_EXPIRY = timedelta(days=3650)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(field: str, scopes: Sequence[str]) -> tuple[str, ...]:
    """Validated, de-duplicated scopes in their given order."""
    if not scopes:
        raise errors.ValidationError(field, "at least one scope is needed", _allowed())
    out: list[str] = []
    for i, scope in enumerate(scopes):
        if not isinstance(scope, str):
            raise errors.ValidationError(f"{field}[{i}]", f"{scope!r} is not a scope", _allowed())
        if scope not in FIXED_SCOPES:
            kind, _, glob = scope.partition(":")
            if kind != "submit" or not QUEUE_GLOB_RE.match(glob):
                raise errors.ValidationError(f"{field}[{i}]", f"{scope!r} is not a scope", _allowed())
        if scope not in out:
            out.append(scope)
    return tuple(out)


def _allowed() -> str:
    return ", ".join(FIXED_SCOPES) + ", submit:<queue-glob> (e.g. submit:*, submit:reports-*)"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and what they may do."""

    token_id: int
    name: str
    scopes: tuple[str, ...]
    job_id: int | None = None

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def reader(self) -> bool:
        """May read the catalogue and every job."""
        return self.job_id is None and ("admin" in self.scopes or "read" in self.scopes)

    def submit_globs(self) -> list[str]:
        return [s[len("submit:") :] for s in self.scopes if s.startswith("submit:")]

    def may_submit(self, queue: str) -> bool:
        return self.admin or any(fnmatch.fnmatchcase(queue, g) for g in self.submit_globs())

    def may_read_job(self, job: Job) -> bool:
        if self.job_id is not None:
            return job.id == self.job_id or job.parent_id == self.job_id or job.array_parent_id == self.job_id
        return self.reader or self.may_submit(job.queue)

    def may_manage_job(self, job: Job) -> bool:
        """Cancel, terminate, retry."""
        return self.job_id is None and self.may_submit(job.queue)

    def may(self, scope: str) -> bool:
        return self.admin or scope in self.scopes


class TokenService:
    def __init__(self, store: Store, clock: Clock, cache_seconds: float = 5.0) -> None:
        self.store = store
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal, datetime | None]] = {}
        self._touched: dict[int, datetime] = {}
        self._lock = threading.Lock()

    def create(
        self, name: str, scopes: Sequence[str], expires_in: timedelta | None = None
    ) -> tuple[Token, str]:
        """A new token; the secret is returned here and never again."""
        if not isinstance(name, str) or len(name) > 200:
            raise errors.ValidationError("name", "must be a string of at most 200 characters")
        parsed = parse_scopes("scopes", scopes)
        expires_at = None
        if expires_in is not None:
            if expires_in <= timedelta(0) or expires_in > MAX_EXPIRY:
                raise errors.ValidationError(
                    "expires_in_seconds", f"{expires_in} is out of range", "1 s .. 3650 days"
                )
            expires_at = self.clock.now() + expires_in
        secret = PREFIX + secrets.token_urlsafe(32)
        token = self.store.token_insert(
            NewToken(name=name, secret_hash=hash_secret(secret), scopes=parsed, expires_at=expires_at),
            self.clock.now(),
        )
        return token, secret

    def mint_job_token(self, job: Job) -> str:
        """A short-lived token for a running job: submit to its follow-up queues, read its own job."""
        now = self.clock.now()
        life = timedelta(seconds=job.spec.timeout_seconds) if job.spec.timeout_seconds else JOB_TOKEN_DEFAULT
        secret = PREFIX + secrets.token_urlsafe(32)
        self.store.token_insert(
            NewToken(
                name=f"job {job.id} attempt {job.attempt}",
                secret_hash=hash_secret(secret),
                scopes=tuple(f"submit:{q}" for q in job.spec.follow_up_queues),
                job_id=job.id,
                expires_at=now + life + JOB_TOKEN_MARGIN,
            ),
            now,
        )
        return secret

    def verify_cached(self, secret: str) -> Principal | None:
        """``verify`` without reading the store: the principal of a secret verified lately,
        ``errors.Unauthorized`` for one that cannot be a token or has expired, None when only
        ``verify`` can tell (for the HTTP server's event loop, which must not block)."""
        return self._cached(self._digest(secret))

    @staticmethod
    def _digest(secret: str) -> str:
        if not secret.startswith(PREFIX) or len(secret) > 200:
            raise errors.Unauthorized("the token is not a Conveyor token")
        return hash_secret(secret)

    def _cached(self, digest: str) -> Principal | None:
        with self._lock:
            hit = self._cache.get(digest)
        if hit is None or self.clock.monotonic() - hit[0] > self.cache_seconds:
            return None
        _, principal, expires_at = hit
        if expires_at is not None and expires_at <= self.clock.now():
            raise errors.Unauthorized("the token has expired")
        return principal

    def verify(self, secret: str) -> Principal:
        """The principal of a bearer secret, or ``errors.Unauthorized``."""
        digest = self._digest(secret)
        principal = self._cached(digest)
        if principal is not None:
            return principal
        mono = self.clock.monotonic()
        now = self.clock.now()
        token = self.store.token_by_hash(digest)
        if token is None:
            raise errors.Unauthorized("the token is not known")
        if token.revoked_at is not None:
            raise errors.Unauthorized("the token has been revoked")
        if token.expires_at is not None and token.expires_at <= now:
            raise errors.Unauthorized("the token has expired")
        if token.job_id is not None:
            job = self.store.job_get(token.job_id)
            if job is None or job.state.terminal:
                raise errors.Unauthorized(f"the token belongs to job {token.job_id}, which has finished")
        principal = Principal(token.id, token.name, token.scopes, token.job_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            if token.job_id is None:  # job tokens are checked every time: they end with their job
                self._cache[digest] = (mono, principal, token.expires_at)
            last = self._touched.get(token.id) or token.last_used_at
            touch = last is None or now - last >= TOUCH_EVERY
            if touch:
                self._touched[token.id] = now
        if touch:
            self.store.token_touch([token.id], now)
        return principal

    def list(self, include_revoked: bool = False) -> list[Token]:
        return self.store.token_list(include_revoked=include_revoked)

    def get(self, token_id: int) -> Token:
        if not 1 <= token_id <= MAX_ID:  # past SQLite's INTEGER (OverflowError): no such token
            raise errors.NotFound("token", token_id)
        token = self.store.token_get(token_id)
        if token is None or token.job_id is not None:
            raise errors.NotFound("token", token_id)
        return token

    def revoke(self, token_id: int) -> tuple[Token, bool]:
        token, changed = self.store.token_revoke(token_id, self.clock.now())
        with self._lock:
            for digest, (_, principal, _) in list(self._cache.items()):
                if principal.token_id == token_id:
                    del self._cache[digest]
        return token, changed

    def any_usable(self) -> bool:
        return self.store.token_count_usable(self.clock.now()) > 0


def parse_duration(field: str, text: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``90s`` or a number of seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text or "")
    if not match:
        raise errors.ValidationError(field, f"{text!r} is not a duration", "e.g. 90s, 15m, 12h, 30d, 2w")
    seconds = (
        float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[match.group(2)]
    )
    if seconds > 100 * 366 * 86_400:  # timedelta ends at 999,999,999 days: a clear error well before
        raise errors.ValidationError(field, f"{text.strip()!r} is too long", "at most 100 years, e.g. 3650d")
    return timedelta(seconds=seconds)
