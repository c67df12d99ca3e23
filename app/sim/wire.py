"""What the simulator emits: SimEvent, and Broadcast frame text in SSI's exact layout.

Each frame is the exact string SSI's hub passes as ``A[0]``: compact outer JSON
whose ``Content`` is itself a compact JSON string, with field orders, float
formatting and timestamps as in the real feed (docs/ssi.md: Message envelope, Sample frames).
Frames are %-templates built once a day per instrument and filled per event.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, Sequence

from app.sim.numbers import INT_TEXT, ZERO_PADS, fmt_2dp, fmt_int, fmt_tenths

if TYPE_CHECKING:
    from app.sim.instrument import Instrument

__all__ = [
    "DEFAULT_CHANNELS", "ALL_CHANNELS", "SimEvent", "FrameWriter",
    "js_str", "frame_template", "instrument_templates", "index_template", "NUM", "STR",
]

DEFAULT_CHANNELS = frozenset({"X-QUOTE", "X-TRADE", "R", "MI", "F"})
ALL_CHANNELS = frozenset({"X-QUOTE", "X-TRADE", "X", "R", "MI", "F", "B"})


class SimEvent(NamedTuple):
    at: datetime
    frame: str | None
    data_type: str
    symbol: str


def _escape(s: str) -> str:
    return s.replace('"', '\\"')


def frame_template(data_type: str, fields: Sequence[tuple[str, object]]) -> str:
    """%-template of an outer frame.

    A field value of ``NUM`` is a raw numeric placeholder, ``STR`` a quoted
    string placeholder; anything else is a literal JSON token.
    """
    parts = []
    for key, spec in fields:
        if spec is NUM:
            parts.append(f'"{key}":%s')
        elif spec is STR:
            parts.append(f'"{key}":"%s"')
        else:
            parts.append(f'"{key}":{spec}')
    inner = "{" + ",".join(parts) + "}"
    return '{"DataType":"' + data_type + '","Content":"' + _escape(inner) + '"}'


NUM = object()
STR = object()


def js_str(s: str) -> str:
    return '"' + s + '"'


def instrument_templates(ins: Instrument, date_js: str) -> None:
    """Set the day's X-QUOTE, X-TRADE, X, F, B (and, for stocks, R) templates on ``ins``."""
    d = date_js
    pf = ins.price_text
    sym = js_str(ins.symbol)
    ex, mk = js_str(ins.exchange), js_str(ins.market)
    depth = ins.depth

    def lv(prefix: str) -> list[tuple[str, object]]:
        return [(f"{prefix}{i}", NUM if i <= depth else "0.0") for i in range(1, 11)]

    ins.quote_tpl = frame_template("X-QUOTE", [
        ("TradingDate", d), ("Time", STR), ("Exchange", ex), ("Symbol", sym),
        ("RType", '"X-QUOTE"'),
        *lv("AskPrice"), *lv("AskVol"), *lv("BidPrice"), *lv("BidVol"),
        ("TradingSession", STR),
    ])
    ceil, floor, ref = pf[ins.ceiling], pf[ins.floor], pf[ins.ref]
    ins.ref_text = ref
    ins.trade_tpl = frame_template("X-TRADE", [
        ("RType", '"X-TRADE"'), ("TradingDate", d), ("Time", STR), ("Isin", sym),
        ("Symbol", sym), ("Ceiling", ceil), ("Floor", floor), ("RefPrice", ref),
        ("AvgPrice", NUM), ("PriorVal", ref), ("LastPrice", NUM), ("LastVol", NUM),
        ("TotalVal", NUM), ("TotalVol", NUM), ("MarketId", mk), ("Exchange", ex),
        ("TradingSession", STR), ("TradingStatus", '"N"'), ("Change", NUM),
        ("RatioChange", NUM), ("EstMatchedPrice", NUM), ("Highest", NUM),
        ("Lowest", NUM), ("Side", STR),
    ])
    ins.snapshot_tpl = frame_template("X", [
        ("RType", '"X"'), ("TradingDate", d), ("Time", STR), ("Isin", sym),
        ("Symbol", sym), ("Ceiling", ceil), ("Floor", floor), ("RefPrice", ref),
        ("Open", NUM), ("High", NUM), ("Low", NUM), ("Close", NUM),
        ("AvgPrice", NUM), ("PriorVal", ref), ("LastPrice", NUM), ("LastVol", NUM),
        ("TotalVal", NUM), ("TotalVol", NUM),
        *lv("BidPrice"), *lv("BidVol"), *lv("AskPrice"), *lv("AskVol"),
        ("MarketId", mk), ("Exchange", ex), ("TradingSession", STR),
        ("TradingStatus", '"N"'), ("Change", NUM), ("RatioChange", NUM),
        ("EstMatchedPrice", NUM),
    ])
    ins.status_tpl = frame_template("F", [
        ("RType", '"F"'), ("MarketId", mk), ("TradingDate", d), ("Time", STR),
        ("Symbol", sym), ("TradingSession", STR), ("TradingStatus", '"N"'),
        ("Exchange", ex),
    ])
    ins.bar_tpl = frame_template("B", [
        ("RType", '"B"'), ("TradingDate", d), ("Time", STR), ("Symbol", sym),
        ("Open", NUM), ("High", NUM), ("Low", NUM), ("Close", NUM),
        ("Volume", NUM), ("Value", "0.0"),
    ])
    if ins.is_stock:
        ins.room_tpl = frame_template("R", [
            ("RType", '"R"'), ("TradingDate", d), ("Time", STR), ("Isin", sym),
            ("Symbol", sym), ("TotalRoom", fmt_int(ins.total_room)), ("CurrentRoom", NUM),
            ("BuyVol", NUM), ("SellVol", NUM), ("BuyVal", NUM), ("SellVal", NUM),
            ("MarketId", mk), ("Exchange", ex),
        ])


def index_template(index_id: str, exchange: str, prior: float, date_js: str) -> str:
    """The day's MI template of one index (its name is its id)."""
    d = date_js
    return frame_template("MI", [
        ("IndexId", js_str(index_id)), ("IndexValue", NUM), ("PriorIndexValue", fmt_2dp(prior)),
        ("TradingDate", d), ("Time", STR), ("TotalTrade", "0.0"),
        ("TotalQtty", NUM), ("TotalValue", NUM), ("IndexName", js_str(index_id)),
        ("Advances", NUM), ("NoChanges", NUM), ("Declines", NUM),
        ("Ceilings", NUM), ("Floors", NUM), ("Change", NUM), ("RatioChange", NUM),
        ("TotalQttyPt", NUM), ("TotalValuePt", NUM), ("Exchange", js_str(exchange)),
        ("AllQty", NUM), ("AllValue", NUM), ("IndexType", '"Main"'),
        ("TradingSession", STR), ("MarketId", js_str(exchange)), ("RType", '"MI"'),
        ("TotalQttyOd", "0.0"), ("TotalValueOd", "0.0"),
    ])


class FrameWriter:
    """Mixin of the day run: fills templates into ``out`` for the subscribed channels.

    Nothing is written before ``live`` (a late start replays the morning silently).
    """

    out: list[SimEvent]
    at: datetime
    time_text: str  # "HH:MM:SS" of the current second
    live: bool
    wants_quote: bool
    wants_trade: bool
    wants_snapshot: bool
    wants_status: bool
    wants_bar: bool

    def _emit(self, data_type: str, sym: str, frame: str) -> None:
        self.out.append(SimEvent(self.at, frame, data_type, sym))

    def _book_parts(self, ins: Instrument) -> tuple[tuple[str, ...], ...]:
        """Ask prices, ask volumes, bid prices, bid volumes, padded with 0.0."""
        pf, vf, d = ins.price_text, INT_TEXT, ins.depth
        a, b = ins.asks, ins.bids
        za, zb = ZERO_PADS[d - len(a)], ZERO_PADS[d - len(b)]
        ap = tuple([pf[x[0]] for x in a]) + za
        av = tuple([vf[x[1]] for x in a]) + za
        bp = tuple([pf[x[0]] for x in b]) + zb
        bv = tuple([vf[x[1]] for x in b]) + zb
        return ap, av, bp, bv

    def _publish_book(self, ins: Instrument, session: str, est: str = "0.0", quote: bool = True) -> None:
        w_q = quote and self.wants_quote
        if not self.live or not (w_q or self.wants_snapshot):
            return
        ap, av, bp, bv = self._book_parts(ins)
        t = self.time_text
        if w_q:
            self._emit("X-QUOTE", ins.symbol, ins.quote_tpl % ((t,) + ap + av + bp + bv + (session,)))
        if self.wants_snapshot:
            self._emit("X", ins.symbol, ins.snapshot_tpl % ((t,) + self._trade_fields(ins) + bp + bv + ap + av
                                                + (session,) + self._change(ins) + (est,)))

    def _trade_fields(self, ins: Instrument) -> tuple[str, ...]:
        if ins.trade_text_stale:
            pf = ins.price_text
            if ins.total_vol:
                vfmt = fmt_int if ins.is_stock else fmt_tenths
                avg = self._avg(ins)
                ins.trade_text = (pf[ins.open], pf[ins.high], pf[ins.low], pf[ins.last],
                          fmt_2dp(avg), pf[ins.last], fmt_int(ins.last_vol),
                          vfmt(ins.total_val), fmt_int(ins.total_vol))
            else:
                ins.trade_text = ("0.0",) * 9
            ins.trade_text_stale = False
        return ins.trade_text

    @staticmethod
    def _avg(ins: Instrument) -> float:
        # Divide the TotalVal a consumer sees, so its own TotalVal/TotalVol rounds the same way.
        if ins.is_stock:
            return ins.total_val / ins.total_vol
        return (ins.total_val / 10) / ins.total_vol

    def _change(self, ins: Instrument) -> tuple[str, str]:
        if not ins.last:
            return "0.0", "0.0"
        ch = ins.last - ins.ref
        return (fmt_int(ch) if ins.is_stock else fmt_tenths(ch)), fmt_2dp(100.0 * ch / ins.ref)

    def _status_frames(self, insts: list[Instrument], session: str) -> None:
        if self.live and self.wants_status:
            t = self.time_text
            for ins in insts:
                self._emit("F", ins.symbol, ins.status_tpl % (t, session))

    def _print_trade(self, ins: Instrument, price: int, vol: int, side: str, session: str,
                     est: str | None) -> None:
        """X-TRADE and B frames of one fill (``est``: the auction price, None in continuous trading)."""
        if not self.live or not (self.wants_trade or self.wants_bar):
            return
        pf, t = ins.price_text, self.time_text
        ps = pf[price]
        if self.wants_trade:
            ch, rc = self._change(ins)
            self._emit("X-TRADE", ins.symbol, ins.trade_tpl % (
                t, fmt_2dp(self._avg(ins)), ps, fmt_int(vol),
                (fmt_int if ins.is_stock else fmt_tenths)(ins.total_val), fmt_int(ins.total_vol), session, ch, rc,
                ins.ref_text if est is None else est, pf[ins.high], pf[ins.low], side))
        if self.wants_bar:
            self._emit("B", ins.symbol, ins.bar_tpl % (t, ps, ps, ps, ps, fmt_int(vol)))

