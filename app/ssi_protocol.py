"""SSI FastConnect Data v2 wire names shared by the real client and the fake server (docs/ssi.md)."""
from __future__ import annotations

__all__ = [
    "DEFAULT_URL", "DEFAULT_STREAM_URL", "MARKET_PATH", "ACCESS_TOKEN_PATH", "INDEX_COMPONENTS_PATH",
    "SIGNALR_PATH", "HUB", "SWITCH_CHANNELS", "BROADCAST",
]

# REST (tokens, reference data) and the SignalR stream live on different hosts.
DEFAULT_URL = "https://fc-data.ssi.com.vn/"
DEFAULT_STREAM_URL = "https://fc-datahub.ssi.com.vn/"

# REST paths, from the host root.
MARKET_PATH = "/api/v2/Market"
ACCESS_TOKEN_PATH = MARKET_PATH + "/AccessToken"
INDEX_COMPONENTS_PATH = MARKET_PATH + "/IndexComponents"

# Classic SignalR 2.x: negotiate/connect/start/... hang off this path.
SIGNALR_PATH = "/v2.0/signalr"
HUB = "FcMarketDataV2Hub"
SWITCH_CHANNELS = "SwitchChannels"  # client -> hub: subscribe
BROADCAST = "Broadcast"  # hub -> client: one market frame per argument
