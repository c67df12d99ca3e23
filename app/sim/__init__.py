"""The simulated SSI market (MarketSimulator) and, in ``app.sim.fake``, the fake FastConnect server."""
from app.sim.market import MarketSimulator
from app.sim.ticks import hose_tick, hose_tick_down, hose_tick_up, price_limits
from app.sim.timetable import VN_TZ
from app.sim.recording import write_jsonl
from app.sim.universe import INDEX_IDS, UNIVERSES, VN30_SYMBOLS
from app.sim.wire import ALL_CHANNELS, DEFAULT_CHANNELS, SimEvent

__all__ = [
    "VN30_SYMBOLS", "INDEX_IDS", "DEFAULT_CHANNELS", "ALL_CHANNELS", "VN_TZ", "SimEvent",
    "MarketSimulator", "UNIVERSES", "write_jsonl", "hose_tick", "hose_tick_up", "hose_tick_down", "price_limits",
]
