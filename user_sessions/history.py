"""History of ended sessions: what :mod:`user_sessions.endings` records.

(First step: the record model and its retention come next; until then
nothing is written.)
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from user_sessions.endings import Ending
    from user_sessions.events import EndedBy, Reason


def enabled() -> bool:
    """Whether ended sessions are recorded (``USER_SESSIONS_HISTORY_DAYS`` > 0)."""
    return False


def recorded_fields() -> Sequence[Any]:
    """The columns one record writes (for the INSERT's batch size)."""
    return ()


def record(
    endings: Sequence[Ending],
    reason: Reason,
    *,
    ended_by: EndedBy,
    by_handle: str | None,
    at: datetime.datetime,
    using: str,
) -> None:
    """Write one record per ended session, in one INSERT."""
