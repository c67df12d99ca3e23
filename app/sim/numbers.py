"""Numbers as text exactly as SSI's Json.NET writes them (``22950.0``, ``1905.3``), with caches."""
from __future__ import annotations

__all__ = ["fmt_int", "fmt_tenths", "fmt_2dp", "INT_TEXT", "TENTHS_TEXT", "ZERO_PADS"]


def fmt_int(x: int) -> str:
    """An integral amount as Json.NET writes a double: ``22950.0``."""
    return f"{x}.0"


def fmt_tenths(x: int) -> str:
    """A count of tenths as a one-decimal double: ``19053 -> 1905.3``."""
    if x < 0:
        return f"-{-x // 10}.{-x % 10}"
    return f"{x // 10}.{x % 10}"


def fmt_2dp(x: float) -> str:
    # "+ 0.0" turns a rounded -0.0 into 0.0.
    return repr(round(x, 2) + 0.0)


class _IntText(dict):
    def __missing__(self, k: int) -> str:
        if len(self) > 500_000:  # bound memory on unbounded runs
            self.clear()
        s = self[k] = f"{k}.0"
        return s


class _TenthsText(dict):
    def __missing__(self, k: int) -> str:
        if len(self) > 500_000:
            self.clear()
        s = self[k] = fmt_tenths(k)
        return s


# Book prices and volumes repeat endlessly; caching their text saves most of the formatting.
INT_TEXT = _IntText()
TENTHS_TEXT = _TenthsText()
ZERO_PADS = tuple(("0.0",) * n for n in range(11))
