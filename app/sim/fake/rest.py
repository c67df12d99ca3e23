"""The fake's REST side: AccessToken, and the Bearer-checked Market endpoints (Securities, IndexComponents, IndexList)."""
from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Callable

from litestar import Request, Response, get, post
from litestar.enums import MediaType

from app.sim.fake.state import FakeServer, Session, fake_of
from app.ssi_protocol import ACCESS_TOKEN_PATH, MARKET_PATH

__all__ = ["REST_HANDLERS", "DENIED", "authorized", "bearer", "json_response", "denied"]

log = logging.getLogger("stock_tracker.fake_ssi")

DENIED = "Authorization has been denied for this request."


def bearer(headers: Any) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def json_response(content: Any, status: int = 200) -> Response:
    return Response(content=content, status_code=status, media_type=MediaType.JSON)


def denied() -> Response:
    # ASP.NET Web API's stock 401 body; the SDK json-decodes every response.
    return json_response({"Message": DENIED}, 401)


def envelope(data: list | None, total: int, status: str = "Success", message: str = "Success") -> Response:
    return json_response({"data": data, "message": message, "status": status, "totalRecord": total})


def authorized(request: Request, session: Session | None = None) -> bool:
    """A valid Bearer token on the request, or else on the SignalR session it names."""
    token = bearer(request.headers) or (session.bearer if session else None)
    return fake_of(request).token_ok(token)


def _params(request: Request) -> dict[str, str]:
    """Query params by lower-cased name, ``lookupRequest.`` prefix removed (ASP.NET binds both)."""
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        k = key.lower()
        if k.startswith("lookuprequest."):
            k = k[len("lookuprequest."):]
        out.setdefault(k, value)
    return out


def _page(params: dict[str, str]) -> tuple[int, int]:
    try:
        index = int(params.get("pageindex") or 1)
        size = int(params.get("pagesize") or 100)
    except ValueError:
        raise ValueError("pageIndex and pageSize must be integers") from None
    if index < 1 or size < 1:
        raise ValueError("pageIndex and pageSize must be positive")
    return index, size


@post(ACCESS_TOKEN_PATH, status_code=200)
async def access_token(request: Request) -> Response:
    fake = fake_of(request)
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        body = None
    fields = {str(k).lower(): v for k, v in body.items()} if isinstance(body, dict) else {}
    cid, secret = str(fields.get("consumerid") or ""), str(fields.get("consumersecret") or "")
    good = (hmac.compare_digest(cid.encode(), fake.consumer_id.encode())
            and hmac.compare_digest(secret.encode(), fake.consumer_secret.encode()))
    if fake.rejecting_tokens or not good:
        log.warning("event=token_refused consumer=%s reason=%s", cid[:40] or "-",
                    "rejecting" if fake.rejecting_tokens else "bad_credentials")
        # The SDK splats the body into Response(status, message, data): these three keys only.
        return json_response({"message": "The connection is invalid", "status": 400, "data": None})
    token = fake.tokens.issue()
    log.info("event=token_issued consumer=%s ttl_s=%d issued=%d", cid[:40], fake.token_ttl_s,
             fake.stats.tokens_issued)
    return json_response({"message": "Success", "status": 200, "data": {"accessToken": token}})


@get(MARKET_PATH + "/{endpoint:str}")
async def market(request: Request) -> Response:
    endpoint = str(request.path_params["endpoint"])
    handler = _ENDPOINTS.get(endpoint.lower())
    if handler is None:
        return json_response({"Message": f"No HTTP resource was found for Market/{endpoint[:40]}."}, 404)
    if not authorized(request):
        log.warning("event=rest_unauthorized endpoint=%s", endpoint[:40])
        return denied()
    params = _params(request)
    try:
        return handler(fake_of(request), params)
    except ValueError as exc:
        return envelope(None, 0, status="Error", message=str(exc))


def index_components(fake: FakeServer, params: dict[str, str]) -> Response:
    """One object per index (every one with constituents without ``indexCode``), its
    constituents nested in IndexComponent and paged."""
    index, size = _page(params)
    code = (params.get("indexcode") or "").strip().upper()
    listed = fake.sim.listing.indices
    wanted = [i for i, (_, members) in listed.items() if members and (not code or i.upper() == code)]
    data = []
    for idx in wanted:
        exchange, symbols = listed[idx]
        data.append({
            "IndexCode": idx,
            "IndexName": idx,
            "Exchange": exchange,
            "TotalSymbolNo": str(len(symbols)),
            "IndexComponent": [{"Isin": s, "StockSymbol": s} for s in symbols[(index - 1) * size: index * size]],
        })
    return envelope(data, len(data))


def securities(fake: FakeServer, params: dict[str, str]) -> Response:
    index, size = _page(params)
    market_id = (params.get("market") or "").strip().upper()
    rows = [{"Market": ex, "Symbol": s, "StockName": s, "StockEnName": s}
            for s, ex in fake.sim.listing.exchanges.items()]
    rows += [{"Market": "DER", "Symbol": f, "StockName": f"Hợp đồng tương lai chỉ số VN30 {f}",
              "StockEnName": f"VN30 index futures {f}"} for f in fake.sim.futures]
    if market_id:
        rows = [r for r in rows if r["Market"] == market_id]
    return envelope(rows[(index - 1) * size: index * size], len(rows))


def index_list(fake: FakeServer, params: dict[str, str]) -> Response:
    index, size = _page(params)
    exchange = (params.get("exchange") or "").strip().upper()
    rows = [{"IndexCode": i, "IndexName": i, "Exchange": ex} for i, (ex, _) in fake.sim.listing.indices.items()]
    if exchange:
        rows = [r for r in rows if r["Exchange"] == exchange]
    return envelope(rows[(index - 1) * size: index * size], len(rows))


# Market/{endpoint} by lower-cased name (ASP.NET routes ignore case).
_ENDPOINTS: dict[str, Callable[[FakeServer, dict[str, str]], Response]] = {
    "indexcomponents": index_components,
    "securities": securities,
    "indexlist": index_list,
}


REST_HANDLERS = [access_token, market]
