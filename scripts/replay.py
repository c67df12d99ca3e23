#!/bin/sh
# Run as ./scripts/replay.py, the shell reads the lines up to the closing quotes and
# re-runs this file with the repository's .venv python (where the dependencies are),
# else python3; python reads them as a string and carries on below.
''':'
here=$(dirname "$0")
if [ -x "$here/../.venv/bin/python" ]; then exec "$here/../.venv/bin/python" "$0" "$@"; fi
exec python3 "$0" "$@"
'''
"""Rebuild one session from its stream: ``scripts/replay.py --date 2026-11-25 [--verify]``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

try:
    from app.cli import main  # noqa: E402
except ImportError as exc:  # a python without the project's dependencies
    sys.exit(f"stock-tracker: {exc}; run it with the project's python: .venv/bin/python {sys.argv[0]} ...")

if __name__ == "__main__":
    sys.exit(main(["replay", *sys.argv[1:]]))
