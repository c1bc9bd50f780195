"""Store operations on access tokens. Only a hash of each secret is kept; the engine makes secrets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from conveyor import errors
from conveyor.store.base import Row
from conveyor.store.core import SqlStoreBase


@dataclass(frozen=True, slots=True)
class Token:
    """A stored token (never its secret)."""

    id: int
    name: str
    scopes: tuple[str, ...]
    job_id: int | None  # a job token: bound to this job
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class NewToken:
    name: str
    secret_hash: str
    scopes: tuple[str, ...]
    job_id: int | None = None
    expires_at: datetime | None = None


class TokenOps(SqlStoreBase):
    def token_insert(self, token: NewToken, now: datetime) -> Token:
        """Store a new token; job tokens past their expiry are deleted in the same transaction."""
        with self._write() as tx:
            if token.job_id is not None:
                # job tokens are minted per attempt: keep the table small
                tx.x(
                    "DELETE FROM tokens WHERE job_id IS NOT NULL AND expires_at < ?",
                    (self.d.ts(now),),
                )
            row = tx.one(
                "INSERT INTO tokens (name, secret_hash, scopes, job_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    token.name,
                    token.secret_hash,
                    self.d.js(list(token.scopes)),
                    token.job_id,
                    self.d.ts(now),
                    self.d.ts(token.expires_at),
                ),
            )
            assert row is not None
            if token.job_id is None:
                self._events(
                    tx,
                    [
                        (
                            "token",
                            str(row["id"]),
                            "token.created",
                            {"name": token.name, "scopes": list(token.scopes)},
                        )
                    ],
                    now,
                )
        return self._token(row)

    def token_by_hash(self, secret_hash: str) -> Token | None:
        """The token with this secret hash, usable or not."""
        with self._read() as tx:
            row = tx.one("SELECT * FROM tokens WHERE secret_hash = ?", (secret_hash,))
        return self._token(row) if row else None

    def token_touch(self, token_ids: Sequence[int], now: datetime) -> None:
        """Record that these tokens were used (the engine calls this at most once a minute per token)."""
        if not token_ids:
            return
        with self._write() as tx:
            tx.x(
                f"UPDATE tokens SET last_used_at = ? WHERE {self.d.id_in('id')}",
                (self.d.ts(now), self.d.ids(list(token_ids))),
            )

    def token_list(self, include_revoked: bool = False, include_job_tokens: bool = False) -> list[Token]:
        sql = "SELECT * FROM tokens WHERE 1 = 1"
        if not include_revoked:
            sql += " AND revoked_at IS NULL"
        if not include_job_tokens:
            sql += " AND job_id IS NULL"
        with self._read() as tx:
            return [self._token(r) for r in tx.q(sql + " ORDER BY id")]

    def token_get(self, token_id: int) -> Token | None:
        with self._read() as tx:
            row = tx.one("SELECT * FROM tokens WHERE id = ?", (token_id,))
        return self._token(row) if row else None

    def token_revoke(self, token_id: int, now: datetime) -> tuple[Token, bool]:
        """Revoke a token (idempotent). Returns (token, changed)."""
        with self._write() as tx:
            changed = tx.x(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (self.d.ts(now), token_id),
            )
            row = tx.one("SELECT * FROM tokens WHERE id = ?", (token_id,))
            if row is None:
                raise errors.NotFound("token", token_id)
            if changed:
                self._events(tx, [("token", str(token_id), "token.revoked", {})], now)
        return self._token(row), bool(changed)

    def token_count_usable(self, now: datetime) -> int:
        """People's tokens (not job tokens) that can still be used."""
        with self._read() as tx:
            row = tx.one(
                "SELECT COUNT(*) AS n FROM tokens WHERE job_id IS NULL AND revoked_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (self.d.ts(now),),
            )
        return int(row["n"]) if row else 0

    def _token(self, r: Row) -> Token:
        created = self.d.dt(r["created_at"])
        assert created is not None
        return Token(
            id=int(r["id"]),
            name=r["name"],
            scopes=tuple(self.d.unjs(r["scopes"]) or ()),
            job_id=None if r["job_id"] is None else int(r["job_id"]),
            created_at=created,
            expires_at=self.d.dt(r["expires_at"]),
            revoked_at=self.d.dt(r["revoked_at"]),
            last_used_at=self.d.dt(r["last_used_at"]),
        )
