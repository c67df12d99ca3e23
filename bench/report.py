#!/usr/bin/env python3
"""Run every benchmark and write its figures as one markdown table (docs/benchmarks.md).

Runs bench/core.py and bench/api.py, one after the other, as subprocesses of this
interpreter, and puts each figure beside the baseline the bench measured in the same run,
with the ratio and the target README.md sets, under a header that says on what machine,
with which versions and with which commands. Usually started as `bench/report`.

The output file is replaced only once every bench has succeeded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api import E2E_MARGIN_MS, LAG_TARGET_MS, level_note  # noqa: E402  (bench/api.py: one definition)
import ws_subs  # noqa: E402
from harness.redis_binary import NoRedisServer, redis_server_binary  # noqa: E402

FULL_FRAMES = 1_000_000
QUICK_FRAMES = 100_000

# The targets README.md sets; the benches print the same ones.
INGEST_MIN, INGEST_RATIO = 100_000, 0.8
FOLD_MIN, FOLD_RATIO = {"vn30": 85_000, "all": 60_000}, 0.6
KINDS_RATIO = 0.85  # the fold with the day's history kinds, to the fold without them
SCRIPT_P99_MS = 10.0
SNAPSHOT_MS = 15.0
FULL_DAY_REPLAY_S = 45.0
CAPACITY_MIN = 1_000


class BenchFailed(Exception):
    pass


# ---------------------------------------------------------------------------------
# Running the benches
# ---------------------------------------------------------------------------------


def shown(cmd: list[str], tmp: str) -> str:
    """The command as one could retype it from the repo root."""
    out = []
    for part in cmd:
        if part.startswith(tmp):
            part = "<tmp>" + part[len(tmp):]
        elif os.path.isabs(part) and Path(part).is_relative_to(ROOT):
            part = os.path.relpath(part, ROOT)
        out.append(part)
    return shlex.join(out)


def run_bench(name: str, options: list[str], tmp: str) -> tuple[dict, str, float]:
    """Run bench/<name>.py; return its raw figures, the command shown, and seconds taken."""
    out = os.path.join(tmp, f"{name}.json")
    cmd = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *options, "--json-out", out]
    print(f"== {shown(cmd, tmp)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    # Its table goes to stderr with its progress, so stdout stays for what the report says.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sys.stderr)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        # The bench got the same Ctrl-C and is stopping the servers it started;
        # killing it now would leave them running.
        proc.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    seconds = time.perf_counter() - started
    if code != 0:
        raise BenchFailed(f"bench/{name}.py failed (exit {code}); see its output above")
    try:
        return json.loads(Path(out).read_text()), shown(cmd, tmp), seconds
    except (OSError, ValueError) as exc:
        raise BenchFailed(f"bench/{name}.py exited 0 but left no readable figures: {exc}") from exc


# ---------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------


def cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    models = re.findall(r"^model name\s*:\s*(.+)$", text, re.M)
    count = len(re.findall(r"^processor\s*:", text, re.M)) or os.cpu_count()
    names = sorted(set(m.strip() for m in models)) or [platform.machine()]
    return f"{' + '.join(names)}, {count} CPUs"


def memory() -> str:
    try:
        kib = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))
    except (OSError, AttributeError):
        return ""
    return f", {kib / 2**20:.1f} GiB RAM"


def redis_version() -> str:
    try:
        binary = redis_server_binary()
    except NoRedisServer as exc:
        return f"none ({exc})"
    try:
        text = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({binary}: {exc})"
    found = re.search(r"v=(\S+)", text)
    return f"{found.group(1) if found else text.strip()} (`{binary}`)"


def revision() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"`{head}`" + (" with uncommitted changes" if dirty else "")


# ---------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------


def _nan(value: float) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def ms(value: float) -> str:
    return "n/a" if _nan(value) else f"{value:,.1f} ms"


def ratio(ours: float, baseline: float) -> str:
    if _nan(ours) or _nan(baseline) or not baseline:
        return "n/a"
    r = ours / baseline
    return f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


SIZES = (("vn30", "VN30"), ("all", "full market"))


def _cell(r: dict | None, text) -> str:
    return text(r) if r else "n/a"


def core_rows(core: dict) -> list[tuple[str, ...]]:
    """bench/core's figures, one column per size (VN30, the full market) measured in the
    same run, each ``ours (ratio to the same-run baseline)``."""
    if "frames" in core:  # one size only (an older bench/core): shown as VN30
        core = {"vn30": core}
    vn, full = core.get("vn30"), core.get("all")

    def pair(fmt, target: str, ok) -> tuple[str, ...]:
        cells = tuple(_cell(r, fmt) for r in (vn, full))
        checks = [ok(u, r) for u, r in (("vn30", vn), ("all", full)) if r]
        return (*cells, target, met(all(checks)) if checks else "n/a")

    def rate(section: str, base_note: str):
        return lambda r: (f"{r[section]['ours']:,.0f} frames/s ({ratio(r[section]['ours'], r[section]['baseline'])}"
                          f" of {r[section]['baseline']:,.0f} {base_note})")

    out = [
        ("ingest (file -> stream)", *pair(rate("ingest", "bare XADD"),
         f">= {INGEST_MIN // 1000}k/s and >= {INGEST_RATIO}x",
         lambda u, r: r["ingest"]["ours"] >= INGEST_MIN and r["ingest"]["ours"] >= INGEST_RATIO * r["ingest"]["baseline"])),
        ("fold (stream -> hashes, exactly once, median of 3)", *pair(rate("fold", "in memory"),
         f">= {FOLD_MIN['vn30'] // 1000}k/s (VN30), >= {FOLD_MIN['all'] // 1000}k/s and >= {FOLD_RATIO}x (full)",
         lambda u, r: r["fold"]["ours"] >= FOLD_MIN[u] and (u == "vn30" or r["fold"]["ours"] >= FOLD_RATIO * r["fold"]["baseline"]))),
        ("fold, all kinds vs only the original ones", *pair(
         lambda r: (f"{ratio(r['kinds']['ours'], r['kinds']['baseline'])} of {r['kinds']['baseline']:,.0f} frames/s"
                    f" (in memory {ratio(r['kinds']['in_memory'], r['kinds']['in_memory_baseline'])})"),
         f">= {KINDS_RATIO}x", lambda u, r: r["kinds"]["ours"] >= KINDS_RATIO * r["kinds"]["baseline"])),
        ("apply script, Redis server time p99 (p50)", *pair(
         lambda r: f"{r['script']['p99_ms']:.1f} ms ({r['script']['p50_ms']:.1f} ms), {r['script']['over_10ms']} calls over 10 ms",
         f"<= {SCRIPT_P99_MS:.0f} ms", lambda u, r: r["script"]["p99_ms"] <= SCRIPT_P99_MS)),
        ("snapshot build (API node, after a notice; built whole)", *pair(
         lambda r: (f"{r['snapshot']['ms']:.1f} ms ({r['snapshot'].get('whole_ms', 0):.1f} ms whole),"
                    f" {r['snapshot']['bytes'] / 1000:,.0f} KB"),
         f"<= {SNAPSHOT_MS:.0f} ms (full)", lambda u, r: u == "vn30" or r["snapshot"]["ms"] <= SNAPSHOT_MS)),
        ("replay (scripts/replay.py), then --verify", *pair(
         lambda r: (f"{r['replay']['ours']:.1f} s for {r['frames']:,} frames"
                    + (f" ({r['replay']['full_day_s']:.0f} s a full-market day)" if "full_day_s" in r["replay"] else "")
                    + ("" if r["replay"]["identical"] else " **DIFFERENT**")),
         f"<= {FULL_DAY_REPLAY_S:.0f} s a full-market day, identical",
         lambda u, r: r["replay"]["identical"] and (u == "vn30" or r["replay"].get("full_day_s", 0) <= FULL_DAY_REPLAY_S))),
        ("memory (stream)", *pair(
         lambda r: f"{r['memory']['ours']:,.0f} B/frame ({ratio(r['memory']['ours'], r['memory']['baseline'])} of raw)",
         "", lambda u, r: True)),
    ]
    return [row[:-1] + ("",) if not row[-2] else row for row in out]


def rows(core: dict, api: dict) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    e = api["e2e"]
    pubsub = "(PUBLISH -> redis-py subscriber)"
    e2e_target = api["throttle_ms"] + E2E_MARGIN_MS
    lost = f" ({e['missing']:,} of {e['probes']:,} probes missed)" if e["missing"] else ""
    label = f"latency %s, append -> /ws/market ({e['rate']:,.0f} frames/s)"
    out += [
        (label % "p50", ms(e["p50_ms"]) + lost, f"{ms(e['pubsub_p50_ms'])} {pubsub}",
         ratio(e["p50_ms"], e["pubsub_p50_ms"]), "", ""),
        (label % "p99", ms(e["p99_ms"]) + lost, f"{ms(e['pubsub_p99_ms'])} {pubsub}",
         ratio(e["p99_ms"], e["pubsub_p99_ms"]),
         f"<= {e2e_target:.0f} ms (throttle {api['throttle_ms']} + {E2E_MARGIN_MS:.0f})",
         met(not _nan(e["p99_ms"]) and e["p99_ms"] <= e2e_target and not e["missing"])),
    ]

    f = api["fanout"]
    base = f["baseline"]["p99_ms"]
    for level in f["levels"]:
        note = level_note(level)
        ok = (not _nan(level["p99_ms"]) and level["p99_ms"] <= LAG_TARGET_MS and not level["missing"]
              and level["connected"] == level["target"])
        out.append((f"fan-out p99 lag, {level['target']:,} clients, 1 worker", ms(level["p99_ms"]) + note,
                    f"{ms(base)} (1 client)", ratio(level["p99_ms"], base), f"<= {LAG_TARGET_MS:.0f} ms", met(ok)))
    largest = max((level["target"] for level in f["levels"]), default=0)
    out.append((f"fan-out: most clients with p99 <= {LAG_TARGET_MS:.0f} ms", f"{f['capacity']:,}",
                f"largest tried: {largest:,}", "", f">= {CAPACITY_MIN:,}", met(f["capacity"] >= CAPACITY_MIN)))

    h, s = api["rest"]["healthz"], api["rest"]["snapshot"]
    conc = api["rest"]["concurrency"]
    errors = s["errors"] + s["lost"]
    bad = f" ({errors:,} errors)" if errors else ""
    out += [
        (f"REST /api/market/snapshot, {conc} concurrent", f"{s['rps']:,.0f} req/s{bad}",
         f"{h['rps']:,.0f} req/s (/healthz)", ratio(s["rps"], h["rps"]), "", ""),
        (f"REST /api/market/snapshot p99, {conc} concurrent", ms(s["p99_ms"]) + bad,
         f"{ms(h['p99_ms'])} (/healthz)", ratio(s["p99_ms"], h["p99_ms"]), "", ""),
    ]
    b = api["rest"].get("board")
    if b:
        out.append((f"REST /api/market/board, {conc} concurrent ({api.get('board_row_bytes', 0):,} bytes a row)",
                    f"{b['rps']:,.0f} req/s", f"{h['rps']:,.0f} req/s (/healthz)", ratio(b["rps"], h["rps"]), "", ""))
    if "subs" in api:
        out += ws_subs.rows(api["subs"], api["throttle_ms"])
    return out


def document(core: dict, api: dict, runs: list[tuple[str, float]], args: argparse.Namespace,
             argv: list[str], when: datetime, total: float) -> str:
    lines = ["# Benchmarks", ""]
    if args.quick:
        lines += [
            f"> **Quick run** (`--quick`): {args.frames or QUICK_FRAMES:,}-frame sessions and shorter API runs, "
            "to check that the benches work. Not the figures to quote: regenerate with `bench/report`.",
            "",
        ]
    f = api["fanout"]
    rest = api["rest"]
    lines += [
        f"Written by `{shlex.join(['bench/report', *argv])}` on {when:%Y-%m-%d %H:%M} UTC, "
        f"in {total / 60:.1f} min.",
        "",
        f"- Machine: {cpu()} (`/proc/cpuinfo`){memory()}, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"redis-server {redis_version()}",
        f"- Code: {revision()}",
        "- Commands (from the repo root):",
        *(f"  - `{cmd}` ({seconds:.0f} s)" for cmd, seconds in runs),
        f"- API session: {api['frames']:,} frames projected, snapshot {api['snapshot_bytes']:,} bytes; "
        f"fan-out: a change every {f['push_ms']:.0f} ms, {f['levels'][0]['pushes'] if f['levels'] else 0} "
        f"per level{', clients negotiate permessage-deflate' if f['deflate'] else ''}; "
        f"REST /healthz errors {rest['healthz']['errors'] + rest['healthz']['lost']}.",
        "",
        "Each baseline is measured by the same bench in the same run, on the same machine and input "
        "(see `bench/README.md`); ratio = stock-tracker / baseline. Targets are those README.md sets.",
        "",
        "Core, one simulated session of each size (VN30; the full market, ~1,600 symbols) in the same run:",
        "",
        "| benchmark | VN30 | full market | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in core_rows(core)]
    lines += [
        "",
        "| benchmark | stock-tracker | baseline (same run) | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(core, api)]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"about 1-2 min: a {QUICK_FRAMES:,}-frame core run and bench/api.py --quick")
    parser.add_argument("--frames", type=int, metavar="N",
                        help=f"frames for bench/core.py (default {FULL_FRAMES:,}, {QUICK_FRAMES:,} with --quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", metavar="PATH",
                        help="markdown file to write (default docs/benchmarks.md)")
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    frames = args.frames or (QUICK_FRAMES if args.quick else FULL_FRAMES)
    if frames <= 0:
        parser.error("--frames must be positive")
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out

    when = datetime.now(timezone.utc)
    started = time.perf_counter()
    runs: list[tuple[str, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="stock-tracker-report-") as tmp:
            core, cmd, seconds = run_bench("core", ["--frames", str(frames)], tmp)
            runs.append((cmd, seconds))
            api, cmd, seconds = run_bench("api", ["--quick"] if args.quick else [], tmp)
            runs.append((cmd, seconds))
        text = document(core, api, runs, args, argv, when, time.perf_counter() - started)
        write_atomically(out, text)
    except BenchFailed as exc:
        sys.exit(f"bench/report: {exc}; {out} left unchanged")
    except KeyboardInterrupt:
        print(f"bench/report: interrupted; {out} left unchanged", file=sys.stderr)
        sys.exit(130)
    print(f"wrote {out} ({(time.perf_counter() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
