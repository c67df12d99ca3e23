"""One trading session's projection state and the fold that advances it.

``fold(state, entry)`` is the whole projection logic: no I/O, no clock, no randomness,
so replaying a stream rebuilds the same state. It mutates ``state`` in place (copying
a market's worth of state per frame would be far too slow) and records which
entities changed in ``state.dirty`` so the worker writes only those.
"""

from __future__ import annotations

import msgspec

from app.clock import iso_time, parse_hms, parse_trading_date
from app.frames import (
    ForeignMsg,
    Frame,
    FrameError,
    IndexMsg,
    SecurityMsg,
    StatusMsg,
    decode_frame,
)
from app.futures import is_vn30_future
from app.projections import derivatives, foreign, history, indices, quotes, trades
from app.projections.foreign_top import ForeignTop

PROJECTED = frozenset({"X-QUOTE", "X-TRADE", "X", "R", "MI", "F"})


class SessionMeta(msgspec.Struct, kw_only=True):
    """Counters of what the fold did with the stream's entries."""

    date: str
    checkpoint: str = ""
    entries: int = 0
    frames: int = 0
    skipped: int = 0
    dead: int = 0
    after_close: int = 0
    closed: bool = False


class SessionState(msgspec.Struct, kw_only=True):
    """Everything the projections know about one session (trading date)."""

    meta: SessionMeta
    quotes: dict[str, quotes.QuoteState] = msgspec.field(default_factory=dict)
    stats: dict[str, trades.SymbolStats] = msgspec.field(default_factory=dict)
    foreign: dict[str, foreign.ForeignState] = msgspec.field(default_factory=dict)
    flows: dict[str, foreign.FlowWindow] = msgspec.field(default_factory=dict)
    indices: dict[str, indices.IndexState] = msgspec.field(default_factory=dict)
    intraday: dict[str, dict[int, float]] = msgspec.field(default_factory=dict)
    derivatives: derivatives.DerivativesState | None = None
    foreign_summary: foreign.ForeignSummaryState | None = None
    # The day's history (app.projections.history).
    candles: dict[str, history.Series] = msgspec.field(default_factory=dict)
    tape: dict[str, history.Tape] = msgspec.field(default_factory=dict)
    foreign_minutes: dict[str, history.Series] = msgspec.field(default_factory=dict)
    market_foreign: history.Series = msgspec.field(default_factory=history.Series)
    index_bars: dict[str, history.Series] = msgspec.field(default_factory=dict)
    basis_line: history.Series = msgspec.field(default_factory=history.Series)
    tape_length: int = history.TAPE_LENGTH
    # The day's history kinds (candles, tape, foreign minutes, index bars, basis line)
    # are folded; False only in bench/core, to measure what they cost the fold.
    history: bool = True
    # The active futures contract (largest session volume), kept as trades come in;
    # None until first needed, then found once from the loaded stats.
    active_future: str | None = None
    active_known: bool = False
    dirty: set[tuple[str, str]] = msgspec.field(default_factory=set)
    # Derived views are recomputed once per batch, not per frame.
    stale_views: bool = False
    # The foreign summary's index (built from ``foreign`` when first needed, so a loaded
    # session has it too) and the symbols whose foreign state changed since it was updated.
    foreign_top: ForeignTop | None = None
    foreign_changed: set[str] = msgspec.field(default_factory=set)
    # The session date as the feed spells it (dd/MM/yyyy), once seen: a cheap check.
    wire_date: str | None = None

    @property
    def date(self) -> str:
        return self.meta.date


def new_session(date: str, tape_length: int = history.TAPE_LENGTH) -> SessionState:
    """An empty session for ``date`` (YYYY-MM-DD)."""
    return SessionState(meta=SessionMeta(date=date), tape_length=tape_length)


class Close(msgspec.Struct, frozen=True):
    """The session-close marker the ingest appends at 15:00."""


class DeadLetter(msgspec.Struct, frozen=True):
    """A frame the fold refused, with the reason."""

    reason: str


def fold(state: SessionState, entry: Frame | Close | str | bytes) -> DeadLetter | None:
    """Apply one stream entry (raw frame, decoded frame or close marker).

    Returns a DeadLetter when the frame is refused; state then only counts it.
    """
    meta = state.meta
    meta.entries += 1
    state.dirty.add(("meta", ""))
    if isinstance(entry, Close):
        meta.closed = True
        return None
    try:
        frame = entry if isinstance(entry, Frame) else decode_frame(entry)
        if meta.closed:
            meta.after_close += 1
            return None
        if frame.data_type not in PROJECTED:
            meta.skipped += 1
            return None
        _apply(state, frame)
    except FrameError as exc:
        meta.dead += 1
        return DeadLetter(str(exc))
    meta.frames += 1
    return None


def finish_batch(state: SessionState) -> None:
    """Recompute the derived views (derivatives, foreign summary) if inputs changed."""
    if not state.stale_views:
        return
    state.stale_views = False
    vn30 = state.indices.get(derivatives.VN30)
    active = state.stats.get(_active_future(state) or "")
    deriv = derivatives.compute(active, state.quotes, vn30.value if vn30 else 0.0)
    if deriv != state.derivatives:
        state.derivatives = deriv
        state.dirty.add(("derivatives", ""))
    # Only the symbols changed since the last batch are re-ranked (ForeignTop equals
    # foreign.summarize over them all).
    if state.foreign_top is None:
        state.foreign_top = ForeignTop(state.foreign)
    else:
        state.foreign_top.update(state.foreign, state.foreign_changed)
    state.foreign_changed.clear()
    summary = state.foreign_top.summary()
    if summary != state.foreign_summary:
        state.foreign_summary = summary
        state.dirty.add(("foreign_summary", ""))


def clear_changes(state: SessionState) -> None:
    """Forget what changed since the last write, as a write does (the state is then
    what Redis holds): the dirty set and each series' own changes."""
    state.dirty.clear()
    # Every series kind, by hand: the registry (kinds.py) imports this module. A new one goes here too.
    for series in (*state.candles.values(), *state.foreign_minutes.values(), *state.index_bars.values(),
                   state.market_foreign, state.basis_line):
        series.changed.clear()
    for tape in state.tape.values():
        tape.added = 0
        tape.dropped.clear()


_FUTURES: dict[str, bool] = {}


def _is_future(symbol: str) -> bool:
    known = _FUTURES.get(symbol)
    if known is None:
        if len(_FUTURES) > 100_000:  # symbols are bounded; hostile input is not
            _FUTURES.clear()
        known = _FUTURES[symbol] = is_vn30_future(symbol)
    return known


_SECONDS: dict[str, int] = {}  # "HH:MM:SS" -> seconds of day; at most 86,400 entries


def _event_time(state: SessionState, msg, required: bool) -> int | None:
    """Seconds of day of the frame; checks the frame belongs to this session."""
    trading_date = msg.trading_date
    if trading_date is not None and trading_date != state.wire_date:
        try:
            day = parse_trading_date(trading_date).isoformat()
        except ValueError:
            raise FrameError(f"bad TradingDate {trading_date!r}") from None
        if day != state.meta.date:
            raise FrameError(f"TradingDate {day} is not session {state.meta.date}")
        state.wire_date = trading_date
    text = msg.time
    if text is None:
        if required:
            raise FrameError("missing Time")
        return None
    seconds = _SECONDS.get(text)
    if seconds is None:
        try:
            seconds = _SECONDS[text] = parse_hms(text)
        except ValueError:
            raise FrameError(f"bad Time {text!r}") from None
    return seconds


def _apply(state: SessionState, frame: Frame) -> None:
    msg = frame.msg
    data_type = frame.data_type
    if isinstance(msg, SecurityMsg):
        _apply_security(state, msg, data_type)
    elif isinstance(msg, ForeignMsg):
        if msg.buy_vol is None or msg.sell_vol is None:
            # A missing total would read as 0 and wrongly re-seed the flow baseline.
            raise FrameError("R without BuyVol/SellVol")
        t = _event_time(state, msg, required=True)
        sym = msg.symbol
        window = state.flows.get(sym)
        if window is None:
            window = state.flows[sym] = foreign.FlowWindow()
        previous = state.foreign.get(sym)
        deltas = foreign.minute_deltas(previous, msg) if previous is not None else None
        state.foreign[sym] = foreign.apply_foreign(previous, window, msg, t, iso_time(state.meta.date, t))
        state.foreign_changed.add(sym)
        state.dirty.add(("foreign", sym))
        state.dirty.add(("flow", sym))
        if deltas is not None and state.history and any(deltas):
            series = state.foreign_minutes.get(sym)
            if series is None:
                series = state.foreign_minutes[sym] = history.Series()
            history.add_foreign_minute(series, t, deltas)
            history.add_foreign_minute(state.market_foreign, t, deltas)
            state.dirty.add(("foreign_minutes", sym))
            state.dirty.add(("market_foreign", ""))
        state.stale_views = True
    elif isinstance(msg, IndexMsg):
        if msg.index_value is None:
            raise FrameError("MI without IndexValue")
        t = _event_time(state, msg, required=True)
        idx = msg.index_id
        line = state.intraday.get(idx)
        if line is None:
            line = state.intraday[idx] = {}
        state.indices[idx] = indices.apply_index(
            state.indices.get(idx), line, msg, t, iso_time(state.meta.date, t)
        )
        state.dirty.add(("index", idx))
        state.dirty.add(("intraday", idx))
        if idx == derivatives.VN30:
            state.stale_views = True
        if not state.history:
            return
        bars = state.index_bars.get(idx)
        if bars is None:
            bars = state.index_bars[idx] = history.Series()
        history.add_index_bar(bars, t, msg.index_value, int(msg.total_qtty or 0))
        state.dirty.add(("index_bars", idx))
        if idx == derivatives.VN30:
            _record_basis(state, t)
    elif isinstance(msg, StatusMsg):
        _event_time(state, msg, required=False)
        if quotes.apply_status(_quote(state, msg.symbol), msg):
            state.dirty.add(("quote", msg.symbol))


def _quote(state: SessionState, symbol: str) -> quotes.QuoteState:
    q = state.quotes.get(symbol)
    if q is None:
        q = state.quotes[symbol] = quotes.QuoteState(symbol=symbol)
        state.dirty.add(("quote", symbol))
    return q


def _apply_security(state: SessionState, msg: SecurityMsg, data_type: str) -> None:
    t = _event_time(state, msg, required=False)
    if data_type == "OL":
        return
    sym = msg.symbol
    volume = None
    if data_type in ("X-TRADE", "X"):
        volume = trades.detect_trade(state.stats.get(sym), msg, data_type)
        if volume is not None and not msg.last_price:
            raise FrameError(f"{data_type} trade without LastPrice")
    # Checks done: from here on the frame is applied whole.
    quote = _quote(state, sym)
    futures = _is_future(sym)
    if volume is not None:
        # Classify against the book as it stood before this frame (rule 4).
        bid1, ask1 = quotes.best_bid_ask(quote)
        price = msg.last_price
        side = trades.classify(
            price,
            msg.trading_session,
            bid1,
            ask1,
            msg.ceiling or quote.ceiling,
            msg.floor or quote.floor,
        )
        stats = state.stats.get(sym)
        if stats is None:
            stats = state.stats[sym] = trades.SymbolStats(symbol=sym)
        event_time = iso_time(state.meta.date, t) if t is not None else None
        value = trades.record_trade(stats, msg, trades.Trade(volume, price, side), event_time, futures)
        state.dirty.add(("stats", sym))
        if t is not None and state.history:  # a trade without Time has no minute: totals only
            _record_trade_history(state, sym, t, price, volume, value, side, msg.side, stats.trades)
        if futures:
            state.stale_views = True
            _track_active(state, sym)
            if t is not None and state.history and state.active_future == sym:
                _record_basis(state, t)
    if data_type in ("X-QUOTE", "X"):
        changed = quotes.apply_book(quote, msg)
    else:
        changed = quotes.apply_refs(quote, msg)
    if changed:
        state.dirty.add(("quote", sym))
        if futures:
            state.stale_views = True


def _record_trade_history(
    state: SessionState, sym: str, t: int, price: float, volume: int, value,
    side: str, ssi_side: str | None, number: int,
) -> None:
    # Once per counted trade, so marked dirty only by a series' first change since the
    # last write (codec.diff clears those changes with the dirty set; clear_changes too).
    candles = state.candles.get(sym)
    if candles is None:
        candles = state.candles[sym] = history.Series()
    if not candles.changed:
        state.dirty.add(("candles", sym))
    history.add_trade_bar(candles, t, price, volume, value, side)
    tape = state.tape.get(sym)
    if tape is None:
        tape = state.tape[sym] = history.Tape()
    if not tape.added:
        state.dirty.add(("tape", sym))
    # The tape, inline: newest last, the oldest dropped past its length, in runs (fewer
    # deletes for Redis; readers take the newest).
    trades_ = tape.trades
    trades_.append((number, t, price, volume, side, ssi_side or ""))
    tape.added += 1
    length = state.tape_length
    if len(trades_) > length + length // 16:
        dropped = tape.dropped
        while len(trades_) > length:
            dropped.append(trades_.popleft()[0])


def _active_future(state: SessionState) -> str | None:
    if not state.active_known:
        active = derivatives.active_contract(state.stats)
        state.active_future = active.symbol if active else None
        state.active_known = True
    return state.active_future


def _track_active(state: SessionState, sym: str) -> None:
    """Only the traded contract's volume grew: it is active now or the old one still is."""
    current = _active_future(state)
    if current is None or current == sym:
        state.active_future = sym
        return
    mine, theirs = state.stats[sym].total_volume, state.stats[current].total_volume
    if mine > theirs or (mine == theirs and sym < current):
        state.active_future = sym


def _record_basis(state: SessionState, t: int) -> None:
    """The basis line: the card's basis after each frame of the active contract or VN30."""
    vn30 = state.indices.get(derivatives.VN30)
    active = state.stats.get(_active_future(state) or "")
    if vn30 is None or active is None:
        return
    basis = derivatives.basis(active.last_price, vn30.value)
    if basis is not None:
        history.set_point(state.basis_line, t, basis)
        state.dirty.add(("basis_line", ""))
