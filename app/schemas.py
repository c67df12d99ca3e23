"""The JSON shapes served over REST and WebSockets (the seed's models, docs/rules.md).

The projections store these same shapes (plus their own bookkeeping fields, in
subclasses), so a stored hash decodes straight into the response type.
"""

from __future__ import annotations

import msgspec

# VND as JSON integers; futures points (one decimal) as floats. See app.projections.money.
Money = int | float


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
