"""VN30 futures: the active contract and its basis against the VN30 index."""

from __future__ import annotations


from app.futures import is_vn30_future
from app.projections import money
from app.projections.quotes import QuoteState, best_bid_ask
from app.projections.trades import SymbolStats
from app.schemas import DerivativesData

VN30 = "VN30"


# Stored exactly as served: the seed's DerivativesData.
DerivativesState = DerivativesData


def active_contract(stats: dict[str, SymbolStats]) -> SymbolStats | None:
    """The futures contract with the largest session volume; ties: first symbol."""
    best: SymbolStats | None = None
    for sym in sorted(stats):
        s = stats[sym]
        if is_vn30_future(sym) and (best is None or s.total_volume > best.total_volume):
            best = s
    return best


def basis(last_price: float, vn30_value: float) -> float | None:
    """last_price - VN30, exact in hundredths of a point and served to 2 decimals (no
    -3.8899999999998727); None until both prices are > 0."""
    if last_price > 0 and vn30_value > 0:
        return round((money.hundredths(last_price) - money.hundredths(vn30_value)) / 100, 2)
    return None


def compute(
    active: SymbolStats | None, quotes: dict[str, QuoteState], vn30_value: float
) -> DerivativesState | None:
    """The derivatives card: the active contract (see active_contract), its book from
    the quote cache, and its basis against the VN30 value."""
    if active is None:
        return None
    bid, ask = best_bid_ask(quotes.get(active.symbol))
    out = DerivativesState(
        symbol=active.symbol,
        last_price=active.last_price,
        change=active.change or 0.0,
        change_pct=active.change_pct or 0.0,
        volume=active.total_volume,
        bid_price=bid,
        ask_price=ask,
        last_updated=active.last_updated,
    )
    out.basis = basis(active.last_price, vn30_value)
    if out.basis is not None:
        out.basis_pct = out.basis / vn30_value * 100
        out.is_premium = out.basis > 0
    return out
