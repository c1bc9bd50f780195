"""The retry policy: one pure ``decide``. AWS Batch semantics for ``evaluate_on_exit``.

Rules are tried in order; the first whose globs match decides (RETRY or EXIT). With no
matching rule, a failed attempt is retried while attempts remain. ``Retry`` outcomes and
"worker lost" follow the same rules; ``Cancel`` and "terminated" never retry.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass

from conveyor.model import Backoff, RetryAction, RetryStrategy


@dataclass(frozen=True, slots=True)
class Decision:
    retry: bool
    delay_seconds: float
    why: str


def match_rule(strategy: RetryStrategy, exit_code: int | None, reason: str) -> RetryAction | None:
    code = "" if exit_code is None else str(exit_code)
    for rule in strategy.evaluate_on_exit:
        if rule.on_exit_code is not None and not fnmatch.fnmatchcase(code, rule.on_exit_code):
            continue
        if rule.on_reason is not None and not fnmatch.fnmatchcase(reason, rule.on_reason):
            continue
        return rule.action
    return None


def backoff_delay(strategy: RetryStrategy, attempts_done: int, seed: str = "") -> float:
    """Delay before the next attempt after ``attempts_done`` counted attempts (>= 1)."""
    base = strategy.delay_seconds
    if strategy.backoff is Backoff.EXPONENTIAL:
        base = strategy.delay_seconds * (2 ** max(0, attempts_done - 1))
    base = min(base, strategy.max_delay_seconds)
    if strategy.jitter and base > 0:
        # deterministic jitter in [0.5, 1.0) of the delay: reproducible, still spreads a herd
        digest = hashlib.blake2b(f"{seed}:{attempts_done}".encode(), digest_size=8).digest()
        fraction = int.from_bytes(digest, "big") / 2**64
        base *= 0.5 + fraction / 2
    return base


def decide(
    strategy: RetryStrategy,
    attempts_done: int,
    exit_code: int | None,
    reason: str,
    *,
    requested_delay: float | None = None,
    seed: str = "",
) -> Decision:
    """Should a failed attempt be retried, and after how long?

    ``attempts_done`` counts the attempt that just failed.
    """
    action = match_rule(strategy, exit_code, reason)
    if action is RetryAction.EXIT:
        return Decision(False, 0.0, "an evaluate_on_exit rule says EXIT")
    if attempts_done >= strategy.attempts:
        return Decision(False, 0.0, f"no attempts left ({attempts_done} of {strategy.attempts} used)")
    delay = requested_delay if requested_delay is not None else backoff_delay(strategy, attempts_done, seed)
    return Decision(True, delay, f"retry {attempts_done + 1} of {strategy.attempts}")
