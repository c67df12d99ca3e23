"""Instrument: one stock's or futures contract's static data and its live book and trading state."""
from __future__ import annotations

from typing import TYPE_CHECKING

from app.sim.exchanges import DERIVATIVES, Exchange

if TYPE_CHECKING:
    from app.sim.indices import IndexTally

__all__ = ["Instrument"]


class Instrument:
    """One tradable instrument on its board (``board``: tick table, band, lot, depth, timetable).

    Stock prices are VND; futures prices are tenths of an index point. Books are
    lists of ``[price, volume]`` levels, best first.
    """

    __slots__ = (
        # what it is and its price grid
        "symbol", "is_stock", "board", "exchange", "market", "depth", "lot", "tick", "tick_up", "tick_down",
        "round", "session",
        "price_text",  # price -> frame text cache (integral VND or tenths)
        # the day's limits and book
        "ref", "ceiling", "floor", "bids", "asks",
        "est_price",  # the auction's estimated match price
        # the day's trading so far
        "last", "last_vol", "open", "high", "low", "total_vol", "total_val",
        "trade_text", "trade_text_stale",  # cached X-frame trade fields
        # price dynamics
        "event_rate",  # events per second in continuous trading
        "index_weight", "beta", "idio_return", "sigma", "daily_vol", "day_drift",
        "level_size_mu", "trade_size_mu",  # log-normal means of book level and order sizes
        "auction_p", "auction_fills",  # chance per second of a new auction estimate; match fills scale
        "basis", "basis_mean",  # futures: premium over VN30 and what it reverts to
        "shares",  # listed shares: its weight in a capitalisation-weighted index
        "indices",  # (tally, weight) of each index it belongs to
        # foreign room
        "total_room", "holding", "foreign_buy", "foreign_sell",
        "p_foreign_buy", "p_foreign_sell",  # chance a fill has a foreign buyer / seller
        "room_every",  # stretch of the gap between its R snapshots
        # the day's frame templates
        "quote_tpl", "trade_tpl", "snapshot_tpl", "room_tpl", "status_tpl", "bar_tpl", "ref_text",
    )

    def __init__(self, sym: str, board: Exchange) -> None:
        self.symbol = sym
        self.board = board
        self.is_stock = board is not DERIVATIVES
        self.exchange, self.market = board.name, board.market
        self.depth, self.lot, self.price_text = board.depth, board.lot, board.price_text
        self.tick, self.tick_up, self.tick_down = board.tick, board.tick_up, board.tick_down
        self.round, self.session = board.round, board.session
        self.event_rate = 0.0
        self.ref = self.ceiling = self.floor = 0
        self.index_weight = self.beta = self.idio_return = self.sigma = self.day_drift = 0.0
        self.daily_vol = (0.008, 0.016)
        self.level_size_mu = self.trade_size_mu = 0.0
        self.auction_p = self.auction_fills = 1.0
        self.shares = 0
        self.indices: list[tuple[IndexTally, float]] = []
        self.total_room = self.holding = 0
        self.p_foreign_buy = self.p_foreign_sell = 0.0
        self.room_every = 1.0
        self.basis = self.basis_mean = 0.0
        self.new_day(0)

    def new_day(self, ref: int) -> None:
        self.ref = ref
        self.bids: list[list[int]] = []
        self.asks: list[list[int]] = []
        self.last = self.last_vol = self.open = self.high = self.low = 0
        self.total_vol = self.total_val = 0
        self.est_price = ref
        self.trade_text_stale = True
        self.trade_text: tuple[str, ...] = ()
        self.foreign_buy = self.foreign_sell = 0
        self.idio_return = 0.0

    def next_reference(self) -> int:
        """Tomorrow's reference price: HOSE's close; HNX and UPCOM's average price."""
        if self.board.vwap_reference and self.total_vol:
            return self.round(self.total_val / self.total_vol)
        return self.last or self.ref
