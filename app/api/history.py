"""REST routes of the price board and the day's history (every one takes ``?date=``)."""

from __future__ import annotations

import re
from typing import Annotated

from litestar import Controller, get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import PathParameter, QueryParameter
from redis.asyncio import Redis

from app import keys as K
from app.api.deps import ClosedCacheDep, LiveDep, RedisDep, SettingsDep
from app.api.openapi_errors import BEARER, errors
from app.api.routes import DateParam, cached_or_built, dated, json_response
from app.projections import read, read_history
from app.projections.hashes import comma_list
from app.schemas import (
    BasisHistory,
    Board,
    Candles,
    ForeignHistory,
    IndexHistory,
    SessionRef,
    Sessions,
    Trades,
)

EXCHANGES = ("HOSE", "HNX", "UPCOM", "DER")
MAX_SYMBOLS = 2000
_SYMBOL = re.compile(r"[A-Z0-9_.\-]{1,32}")
_ERRORS = [ValidationException, NotFoundException]
_RESPONSES = errors(400, 404)


def _symbol(text: str) -> str:
    symbol = text.upper()
    if not _SYMBOL.fullmatch(symbol):
        raise ValidationException(detail=f"not a symbol: {text!r}")
    return symbol


class BoardController(Controller):
    path = "/api/market"
    tags = ["board"]

    @get("/board", summary="The price board: one row per symbol quoted or traded", raises=_ERRORS,
         responses=_RESPONSES, security=BEARER)
    async def board(
        self, redis: RedisDep, closed_cache: ClosedCacheDep, live: LiveDep, date: str | None = DateParam,
        symbols: str | None = QueryParameter(
            required=False, description="A,B,C | VN30 | HOSE | HNX | UPCOM | DER; default: every symbol"
        ),
    ) -> Board:
        wanted, exchange = await self._selection(redis, symbols)

        async def answer(ref: SessionRef | None) -> bytes:
            if date is None and ref is not None and not ref.closed and live.trusted():
                # The live session: from this node's board cache, read again only where it changed.
                return (await live.board_text(ref, wanted, exchange)).encode()
            return await closed_cache.get(("board", symbols), ref, lambda: build(ref))

        async def build(ref: SessionRef | None) -> Board:
            if ref is None:
                return Board(session=None)
            rows = await read_history.read_board(redis, ref.date, wanted)
            if exchange is not None:
                rows = {s: r for s, r in rows.items() if r.exchange == exchange}
            return Board(session=ref, rows=rows)

        return json_response(await dated(redis, closed_cache, ("board", symbols), date, answer))

    @staticmethod
    async def _selection(redis: Redis, symbols: str | None) -> tuple[list[str] | None, str | None]:
        if symbols is None or symbols.strip() in ("", "*"):
            return None, None
        spec = symbols.strip().upper()
        if spec in EXCHANGES:
            return None, spec
        if spec == "VN30":
            return comma_list(await redis.hget(K.VN30_COMPONENTS, "symbols")), None
        names = sorted({_symbol(s.strip()) for s in spec.split(",") if s.strip()})
        if len(names) > MAX_SYMBOLS:
            raise ValidationException(detail=f"at most {MAX_SYMBOLS} symbols per request")
        return names, None

    @get("/trades/{symbol:str}", summary="Time and sales: the symbol's latest counted trades, newest first",
         raises=_ERRORS, responses=_RESPONSES, security=BEARER)
    async def trades(
        self, redis: RedisDep, settings: SettingsDep, closed_cache: ClosedCacheDep,
        symbol: Annotated[str, PathParameter()], date: str | None = DateParam,
        limit: int | None = QueryParameter(required=False, description="How many (default and at most TAPE_LENGTH)"),
    ) -> Trades:
        sym = _symbol(symbol)
        cap = settings.tape_length
        n = cap if limit is None else limit
        if not 1 <= n <= cap:
            raise ValidationException(detail=f"limit must be 1..{cap}")
        async def build(ref: SessionRef | None) -> Trades:
            rows = await read_history.read_trades(redis, ref.date, sym, n) if ref else []
            return Trades(session=ref, symbol=sym, trades=rows)

        return json_response(await cached_or_built(redis, closed_cache, ("trades", sym, n), date, build))


class HistoryController(Controller):
    path = "/api/history"
    tags = ["history"]

    @get("/candles/{symbol:str}", summary="Candles of one symbol with active buy / sell volume", raises=_ERRORS,
         responses=_RESPONSES, security=BEARER)
    async def candles(
        self, redis: RedisDep, closed_cache: ClosedCacheDep, symbol: Annotated[str, PathParameter()],
        date: str | None = DateParam,
        interval: str = QueryParameter(default="1m", description="1m | 5m | 15m | 30m | 1h | 1d"),
    ) -> Candles:
        sym = _symbol(symbol)
        if interval not in read_history.INTERVALS:
            raise ValidationException(detail=f"interval must be one of {', '.join(read_history.INTERVALS)}")
        async def build(ref: SessionRef | None) -> Candles:
            bars = await read_history.read_candles(redis, ref.date, sym, interval) if ref else []
            return Candles(session=ref, symbol=sym, interval=interval, candles=bars)

        return json_response(await cached_or_built(redis, closed_cache, ("candles", sym, interval), date, build))

    @get("/foreign", summary="Foreign flow per minute: the market's, or one symbol's", raises=_ERRORS,
         responses=_RESPONSES, security=BEARER)
    async def foreign(
        self, redis: RedisDep, closed_cache: ClosedCacheDep, date: str | None = DateParam,
        symbol: str | None = QueryParameter(required=False, description="One symbol; default: the whole market"),
    ) -> ForeignHistory:
        sym = _symbol(symbol) if symbol else None
        async def build(ref: SessionRef | None) -> ForeignHistory:
            minutes = await read_history.read_foreign_minutes(redis, ref.date, sym) if ref else []
            return ForeignHistory(session=ref, symbol=sym, minutes=minutes)

        return json_response(await cached_or_built(redis, closed_cache, ("foreign", sym), date, build))

    @get("/index/{index_id:str}", summary="Candles of one index (VN30, VNINDEX, HNXIndex, ...)", raises=_ERRORS,
         responses=_RESPONSES, security=BEARER)
    async def index(
        self, redis: RedisDep, closed_cache: ClosedCacheDep, index_id: Annotated[str, PathParameter()],
        date: str | None = DateParam,
    ) -> IndexHistory:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,32}", index_id):
            raise ValidationException(detail=f"not an index id: {index_id!r}")
        async def build(ref: SessionRef | None) -> IndexHistory:
            bars = await read_history.read_index_candles(redis, ref.date, index_id) if ref else []
            return IndexHistory(session=ref, index_id=index_id, candles=bars)

        return json_response(await cached_or_built(redis, closed_cache, ("index", index_id), date, build))

    @get("/basis", summary="The VN30 futures basis, minute by minute", raises=_ERRORS,
         responses=_RESPONSES, security=BEARER)
    async def basis(self, redis: RedisDep, closed_cache: ClosedCacheDep, date: str | None = DateParam) -> BasisHistory:
        async def build(ref: SessionRef | None) -> BasisHistory:
            return BasisHistory(session=ref, points=await read_history.read_basis(redis, ref.date) if ref else [])

        return json_response(await cached_or_built(redis, closed_cache, ("basis",), date, build))


@get("/api/sessions", tags=["history"], summary="The known sessions, newest first: closed, frames, dead letters",
     responses=errors(), security=BEARER)
async def sessions(redis: RedisDep) -> Sessions:
    return Sessions(current=await read.current_session(redis), sessions=await read_history.read_sessions(redis))
