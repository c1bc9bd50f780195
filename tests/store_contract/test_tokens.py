"""Contract: token storage (hashed secrets, revoke, expiry of job tokens) on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.store import Store
from conveyor.store.tokens import NewToken


def test_tokens_are_found_by_hash_listed_and_revoked_idempotently(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    made = store.token_insert(NewToken("ops", "h1", ("admin", "submit:r-*")), now)
    assert made.scopes == ("admin", "submit:r-*")
    found = store.token_by_hash("h1")
    assert found is not None
    assert (found.id, found.name, found.revoked_at, found.last_used_at) == (made.id, "ops", None, None)
    assert store.token_by_hash("nope") is None
    store.token_touch([made.id], now + timedelta(seconds=5))
    touched = store.token_get(made.id)
    assert touched is not None
    assert touched.last_used_at == now + timedelta(seconds=5)
    assert store.token_count_usable(now) == 1
    revoked, changed = store.token_revoke(made.id, now)
    assert changed
    assert revoked.revoked_at == now
    assert store.token_revoke(made.id, now)[1] is False
    assert store.token_list() == []
    assert [t.id for t in store.token_list(include_revoked=True)] == [made.id]
    assert store.token_count_usable(now) == 0
    with pytest.raises(errors.NotFound):
        store.token_revoke(9999, now)


def test_a_duplicate_hash_is_a_conflict(store: Store, clock: FrozenClock) -> None:
    store.token_insert(NewToken("a", "same", ("read",)), clock.now())
    with pytest.raises(errors.Conflict):
        store.token_insert(NewToken("b", "same", ("read",)), clock.now())


def test_expired_job_tokens_are_deleted_when_a_new_one_is_minted(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    old = store.token_insert(
        NewToken("job 1", "j1", (), job_id=1, expires_at=now + timedelta(minutes=1)), now
    )
    person = store.token_insert(NewToken("p", "p1", ("read",), expires_at=now + timedelta(minutes=1)), now)
    later = now + timedelta(hours=1)
    store.token_insert(NewToken("job 2", "j2", (), job_id=2, expires_at=later + timedelta(minutes=1)), later)
    assert store.token_get(old.id) is None
    assert store.token_get(person.id) is not None  # people's tokens are kept (listed as expired)
    assert [t.name for t in store.token_list()] == ["p"]  # job tokens are not listed
    assert store.token_count_usable(later) == 0
