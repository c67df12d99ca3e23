"""On a Redis Cluster: the master of the current session dies during ingest.

Its replica is promoted; ingest, projector and API recover by themselves. Afterwards the
stream holds exactly the frames the source sent (none lost, none doubled), the fold equals
a replay, and a WebSocket client saw the store go down, come back, then full state.
"""

from __future__ import annotations

import pytest

from harness.failover import run_failover

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_killing_the_sessions_master_loses_and_doubles_nothing(redis_cluster):
    result = await run_failover(redis_cluster, frames=2000, kill_after=600)
    logs = "\n".join(result.logs)
    assert result.stored == result.sent, (len(result.stored), len(result.sent), logs[-3000:])
    assert result.folded == len(result.sent)
    assert not result.replay_differences, result.replay_differences[:10]
    events = [e for e in result.ws_events if e != "killed"]
    after = result.ws_events[result.ws_events.index("killed"):]
    # Down, then up, then full state: in that order, after the kill.
    down = after.index("down")
    up = after.index("up", down)
    assert "state" in after[up:], result.ws_events
    assert events[-1] == "state" and result.final_state == result.snapshot
    assert result.retries > 0  # the writer did see the outage (and rode it out)
    # Meanwhile: /readyz and the API said 503 with a JSON body, never 500; then 200 again.
    assert ("/readyz", 503, True) in result.http, result.http
    assert all(status in (200, 503) and is_json for _, status, is_json in result.http), result.http
    assert result.http[-1][1] == 200 and [h for h in result.http if h[0] == "/readyz"][-1][1] == 200


async def test_two_batches_in_flight_through_a_failover_land_once_each_in_order(redis_cluster):
    result = await run_failover(redis_cluster, frames=2000, kill_after=600, flush_each=False)
    assert result.stored == result.sent, (len(result.stored), len(result.sent), "\n".join(result.logs)[-3000:])
    assert result.folded == len(result.sent)
    assert not result.replay_differences, result.replay_differences[:10]
    assert result.retries > 0  # the outage was seen, with two batches on their way


async def test_a_slot_client_reaches_only_its_slot_and_recovers_from_moved(redis_cluster):
    from app import keys as K
    from app.store import UNAVAILABLE, connect

    redis = await connect(redis_cluster.url)
    try:
        mine = K.SessionKeys("2026-11-24")
        # A day whose slot another master serves (which one depends on earlier failovers).
        other = next(
            K.SessionKeys(f"2026-12-{day:02d}") for day in range(1, 29)
            if redis_cluster.master_of(K.SessionKeys(f"2026-12-{day:02d}").frames)
            is not redis_cluster.master_of(mine.frames)
        )
        pinned = redis.for_slot(mine.frames)
        assert redis.for_slot(mine.meta) is pinned  # one client per slot
        await pinned.set(mine.closed, "1")
        assert await redis.get(mine.closed) == b"1"  # the cluster client sees it on the same master
        # Another slot's key answers MOVED: an outage to its caller, and the client asks again.
        with pytest.raises(UNAVAILABLE):
            await pinned.set(other.closed, "1")
        assert await pinned.get(mine.closed) == b"1"
        assert pinned.node_name == f"127.0.0.1:{redis_cluster.master_of(mine.frames).port}"
    finally:
        await redis.aclose()


def test_the_nodes_of_one_cluster_never_share_a_port(monkeypatch):
    """Ports are picked before any node listens: a repeated pick must be refused, not
    start two nodes on one port (it once failed every cluster test of a CI run)."""
    from harness import redis_cluster

    picks = iter([30001, 30001, 40001, 30002, 20002, 30003])  # a repeat, then a bus-port clash
    monkeypatch.setattr(redis_cluster.random, "randint", lambda a, b: next(picks))
    monkeypatch.setattr(redis_cluster, "_free", lambda port: True)  # whatever else the machine holds
    taken = {30001, 30001 + redis_cluster.BUS_OFFSET}
    assert redis_cluster.free_cluster_port(taken) == 30002
    taken |= {30002, 30002 + redis_cluster.BUS_OFFSET}
    assert redis_cluster.free_cluster_port(taken) == 30003
