"""The JSON shapes served over REST and WebSockets (the seed's models, docs/rules.md).

The projections store these same shapes (plus their own bookkeeping fields, in
subclasses), so a stored hash decodes straight into the response type.
"""

from __future__ import annotations

from typing import Union

import msgspec

# VND as JSON integers; futures points (one decimal) as floats. See app.projections.money.
# typing.Union, not ``int | float``: the OpenAPI spec shows it as one number
# (app.api.openapi_numbers), which Litestar can do for this form only.
Money = Union[int, float]  # noqa: UP007


class SessionRef(msgspec.Struct, kw_only=True):
    """Which session a response shows: ``{"date": "2026-11-25", "closed": false}``."""

    date: str
    closed: bool = False


class SessionStats(msgspec.Struct, kw_only=True):
    symbol: str
    mua_chu_dong_volume: int = 0
    mua_chu_dong_value: Money = 0
    ban_chu_dong_volume: int = 0
    ban_chu_dong_value: Money = 0
    neutral_volume: int = 0
    total_volume: int = 0
    last_updated: str | None = None


class IntradayPoint(msgspec.Struct):
    timestamp: str
    value: float


class IndexFields(msgspec.Struct, kw_only=True):
    """IndexData without its intraday line (which is stored in its own hash)."""

    index_id: str
    value: float = 0.0
    prior_value: float = 0.0
    change: float = 0.0
    ratio_change: float = 0.0
    total_volume: int = 0
    advances: int = 0
    declines: int = 0
    no_changes: int = 0
    last_updated: str | None = None
    advance_ratio: float = 0.0


class IndexData(IndexFields, kw_only=True):
    intraday: list[IntradayPoint] = msgspec.field(default_factory=list)


class ForeignInvestorData(msgspec.Struct, kw_only=True):
    symbol: str
    buy_volume: int = 0
    sell_volume: int = 0
    net_volume: int = 0
    buy_value: Money = 0
    sell_value: Money = 0
    net_value: Money = 0
    total_room: int = 0
    current_room: int = 0
    buy_speed_per_min: float = 0.0
    sell_speed_per_min: float = 0.0
    buy_acceleration: float = 0.0
    sell_acceleration: float = 0.0
    last_updated: str | None = None


class ForeignTotals(msgspec.Struct, kw_only=True):
    total_buy_value: Money = 0
    total_sell_value: Money = 0
    total_net_value: Money = 0
    total_buy_volume: int = 0
    total_sell_volume: int = 0
    total_net_volume: int = 0


class ForeignSummary(ForeignTotals, kw_only=True):
    top_buy: list[ForeignInvestorData] = msgspec.field(default_factory=list)
    top_sell: list[ForeignInvestorData] = msgspec.field(default_factory=list)


class DerivativesData(msgspec.Struct, kw_only=True):
    symbol: str
    last_price: float = 0.0
    change: float = 0.0
    change_pct: float = 0.0
    volume: int = 0
    bid_price: float = 0.0
    ask_price: float = 0.0
    basis: float | None = None
    basis_pct: float | None = None
    is_premium: bool | None = None
    last_updated: str | None = None


class MarketSnapshot(msgspec.Struct, kw_only=True):
    quotes: dict[str, SessionStats] = msgspec.field(default_factory=dict)
    indices: dict[str, IndexData] = msgspec.field(default_factory=dict)
    foreign: ForeignSummary | None = None
    derivatives: DerivativesData | None = None


# -- the board and the day's history (docs/rules.md, "Board", "The day's history") --


class SideVolumes(msgspec.Struct, kw_only=True):
    buy: int = 0
    sell: int = 0
    neutral: int = 0


class OrderSizes(msgspec.Struct, kw_only=True):
    """Volume by trade value: < 100,000,000 VND, < 1,000,000,000 VND, larger."""

    small: SideVolumes = msgspec.field(default_factory=SideVolumes)
    medium: SideVolumes = msgspec.field(default_factory=SideVolumes)
    large: SideVolumes = msgspec.field(default_factory=SideVolumes)


class BoardRow(SessionStats, kw_only=True):
    """One symbol on the price board."""

    exchange: str | None = None  # HOSE / HNX / UPCOM / DER
    ref_price: Money = 0
    ceiling: Money = 0
    floor: Money = 0
    last_price: Money = 0
    last_volume: int = 0
    open: Money = 0
    high: Money = 0
    low: Money = 0
    change: Money | None = None
    change_pct: float | None = None
    market_volume: int = 0  # the exchange's own cumulative figures
    market_value: Money = 0
    bid: list[list[Money | int]] = msgspec.field(default_factory=list)  # [[price, volume], ...] levels 1-3
    ask: list[list[Money | int]] = msgspec.field(default_factory=list)
    buy_ratio: float | None = None
    side_agreement: float | None = None
    ssi_buy_volume: int = 0
    ssi_sell_volume: int = 0
    ssi_unknown_volume: int = 0
    size: OrderSizes | None = None  # stocks only


class Board(msgspec.Struct, kw_only=True):
    session: SessionRef | None
    rows: dict[str, BoardRow] = msgspec.field(default_factory=dict)


class Candle(msgspec.Struct, kw_only=True):
    time: str  # the interval's start, ISO 8601 +07:00
    open: Money
    high: Money
    low: Money
    close: Money
    volume: int
    value: Money
    buy_volume: int
    sell_volume: int
    neutral_volume: int


class Candles(msgspec.Struct, kw_only=True):
    session: SessionRef | None
    symbol: str
    interval: str
    candles: list[Candle] = msgspec.field(default_factory=list)


class TapeTrade(msgspec.Struct, kw_only=True):
    time: str
    price: Money
    volume: int
    side: str  # ours: mua_chu_dong / ban_chu_dong / neutral
    ssi_side: str  # SSI's own: BU / SD / Unknow ("" when absent)


class Trades(msgspec.Struct, kw_only=True):
    session: SessionRef | None
    symbol: str
    trades: list[TapeTrade] = msgspec.field(default_factory=list)  # newest first


class ForeignMinute(msgspec.Struct, kw_only=True):
    time: str
    buy_volume: int
    sell_volume: int
    buy_value: Money
    sell_value: Money
    net_volume: int
    net_value: Money


class ForeignHistory(msgspec.Struct, kw_only=True):
    session: SessionRef | None
    symbol: str | None  # None: the whole market
    minutes: list[ForeignMinute] = msgspec.field(default_factory=list)


class IndexCandle(msgspec.Struct, kw_only=True):
    time: str
    open: float
    high: float
    low: float
    close: float
    total_volume: int


class IndexHistory(msgspec.Struct, kw_only=True):
    session: SessionRef | None
    index_id: str
    candles: list[IndexCandle] = msgspec.field(default_factory=list)


class BasisPoint(msgspec.Struct, kw_only=True):
    time: str
    basis: float


class BasisHistory(msgspec.Struct, kw_only=True):
    session: SessionRef | None
    points: list[BasisPoint] = msgspec.field(default_factory=list)


class SessionInfo(SessionRef, kw_only=True):
    frames: int = 0  # folded frames
    dead: int = 0  # dead letters
    entries: int = 0  # stream entries folded so far


class Sessions(msgspec.Struct, kw_only=True):
    current: str | None
    sessions: list[SessionInfo] = msgspec.field(default_factory=list)  # newest first
