"""Every store operation, composed from one mixin per concept (jobs, schedules, tokens, ...).

Backends (sqlite.py, postgres.py) subclass ``StoreOps`` and add only connections.
"""

from __future__ import annotations

from conveyor.store.direct import DirectOps
from conveyor.store.lifecycle import LifecycleOps
from conveyor.store.schedules import ScheduleOps
from conveyor.store.tokens import TokenOps


class StoreOps(ScheduleOps, DirectOps, LifecycleOps, TokenOps):
    """The store protocol: intent-named operations over one SQL implementation."""
