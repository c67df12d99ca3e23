#!/usr/bin/env python3
"""Rebuild one session from its stream: ``scripts/replay.py --date 2026-11-25 [--verify]``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["replay", *sys.argv[1:]]))
