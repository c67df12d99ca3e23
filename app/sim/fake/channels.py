"""SwitchChannels specs: parsing ``"X-QUOTE:ACB-VCB,MI:ALL"`` and writing them back for logs."""
from __future__ import annotations

from app.sim.wire import ALL_CHANNELS

__all__ = ["KNOWN_CHANNELS", "parse_channels", "spec_text"]

# OL (odd lots) is accepted as a subscription though the simulator never trades odd lots.
KNOWN_CHANNELS = frozenset(ALL_CHANNELS | {"OL"})


def parse_channels(text: str) -> dict[str, frozenset[str] | None]:
    """``"X-QUOTE:ACB-VCB,MI:ALL"`` -> ``{"X-QUOTE": {"ACB", "VCB"}, "MI": None}`` (None = ALL).

    Channel names and targets are upper-cased; spaces around any part are ignored.
    """
    out: dict[str, frozenset[str] | None] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, targets = part.partition(":")
        name = name.strip().upper()
        if not sep or not name:
            raise ValueError(f"bad channel spec {part[:40]!r}: expected CHANNEL:TARGETS")
        if name not in KNOWN_CHANNELS:
            raise ValueError(f"unknown channel {name[:20]!r}")
        symbols = {t.strip().upper() for t in targets.split("-") if t.strip()}
        if not symbols:
            raise ValueError(f"channel {name} has no targets")
        if "ALL" in symbols or out.get(name, frozenset()) is None:
            out[name] = None
        else:
            out[name] = frozenset(symbols | (out.get(name) or frozenset()))
    if not out:
        raise ValueError("no channels")
    return out


def spec_text(sub: dict[str, frozenset[str] | None]) -> list[str]:
    """A subscription as sorted ``CHANNEL:TARGETS`` specs (for logs and /_fake/stats)."""
    return [f"{ch}:{'ALL' if t is None else '-'.join(sorted(t))}" for ch, t in sorted(sub.items())]
