"""Indices (MI): latest value and breadth per IndexId, plus a one-point-per-minute line."""

from __future__ import annotations


from app.frames import IndexMsg
from app.schemas import IndexFields


# The stored index hash is the seed's IndexData without its intraday line.
IndexState = IndexFields


def advance_ratio(advances: int, declines: int) -> float:
    """advances / (advances + declines), 0 when both are 0."""
    both = advances + declines
    return advances / both if both else 0.0


def apply_index(
    state: IndexState | None, intraday: dict[int, float], msg: IndexMsg, t: int, event_time: str
) -> IndexState:
    """Fold one MI frame; ``intraday`` maps minute start (seconds of day) to last value."""
    if state is None:
        state = IndexState(index_id=msg.index_id)
    value = msg.index_value or 0.0
    state.value = value
    state.prior_value = msg.prior_index_value or 0.0
    state.change = msg.change if msg.change is not None else 0.0
    state.ratio_change = msg.ratio_change if msg.ratio_change is not None else 0.0
    state.total_volume = int(msg.total_qtty or 0)
    state.advances = int(msg.advances or 0)
    state.declines = int(msg.declines or 0)
    state.no_changes = int(msg.no_changes or 0)
    state.advance_ratio = advance_ratio(state.advances, state.declines)
    state.last_updated = event_time
    intraday[t - t % 60] = value
    return state
