"""The SSI client's pure parts: IndexComponents parsing, token expiry, channel specs."""

from __future__ import annotations

import base64
import json

import pytest

from app.config import Settings
from app.ingest.live import channels_for
from app.ingest.signalr import FeedError, _jwt_expiry, default_channels, parse_index_components

DOCUMENTED = {
    "data": [
        {
            "IndexCode": "VN30",
            "IndexName": "VN30",
            "Exchange": "HOSE",
            "TotalSymbolNo": "30",
            "IndexComponent": [{"Isin": "ACB", "StockSymbol": "ACB"}, {"Isin": "BCM", "StockSymbol": "BCM"}],
        }
    ],
    "message": "Success",
    "status": "Success",
    "totalRecord": 1,
}


def test_index_components_nested_list_as_documented():
    assert parse_index_components(DOCUMENTED) == ["ACB", "BCM"]


def test_index_components_2020_lower_case_form():
    body = {"dataList": [{"indexcode": "VN30", "indexcomponentList": [{"stocksymbol": "SSI"}, {"stocksymbol": "VNM"}]}]}
    assert parse_index_components(body) == ["SSI", "VNM"]


def test_index_components_flat_list_is_not_mistaken_for_constituents():
    # The mistake of the original backend: reading data[i].StockSymbol gives nothing.
    with pytest.raises(FeedError, match="no constituents"):
        parse_index_components({"data": [{"StockSymbol": "ACB"}, {"StockSymbol": "VCB"}]})
    with pytest.raises(FeedError, match="no data list"):
        parse_index_components({"data": None, "message": "Error"})


def test_index_components_other_indices_are_ignored():
    body = {"data": [{"IndexCode": "VN100", "IndexComponent": [{"StockSymbol": "X"}]}, *DOCUMENTED["data"]]}
    assert parse_index_components(body) == ["ACB", "BCM"]


def _jwt(payload: dict, urlsafe: bool) -> str:
    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    body = enc(json.dumps(payload).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.sig"


@pytest.mark.parametrize("urlsafe", [True, False])
def test_token_expiry_is_read_from_the_jwt(urlsafe):
    assert _jwt_expiry(_jwt({"exp": 1_800_000_000, "sub": "a>b?c"}, urlsafe)) == 1_800_000_000
    assert _jwt_expiry("not-a-jwt") is None


def test_default_channels_cover_stocks_futures_and_indices():
    specs = default_channels(["ACB", "VCB"], ["VN30F2612", "VN30F2701"], ["VNINDEX", "VN30", "HNXIndex"])
    assert specs == (
        "X-QUOTE:ACB-VCB-VN30F2612-VN30F2701",
        "X-TRADE:ACB-VCB-VN30F2612-VN30F2701",
        "R:ACB-VCB-VN30F2612-VN30F2701",
        "MI:VNINDEX-VN30-HNXIndex",
    )


@pytest.mark.anyio
async def test_channels_from_settings_or_the_front_and_next_futures():
    from datetime import datetime

    from app.clock import VN_TZ

    day = datetime(2026, 12, 18, 10, 0, tzinfo=VN_TZ)  # the day after December's last trading day
    specs = await channels_for(Settings(), ["ACB"], day)
    assert specs[0] == "X-QUOTE:ACB-VN30F2701-VN30F2702"
    krx = await channels_for(Settings(futures_naming="krx"), ["ACB"], day)
    assert krx[0] == "X-QUOTE:ACB-41I1H1000-41I1H2000"
    custom = await channels_for(Settings(ssi_channels="X:ALL; MI:VN30"), ["ACB"], day)
    assert custom == ("X:ALL", "MI:VN30")
