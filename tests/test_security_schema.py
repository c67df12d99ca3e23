"""A bounded schemathesis run against the OpenAPI spec a real node serves.

Every operation of ``/schema/openapi.json`` gets requests generated from the spec, valid
and invalid (derandomized: the same examples each run), plus requests naming data that
exists, against a uvicorn node over a real redis-server holding two sessions. Every
response must be no 5xx, a status code and a content type the spec documents, and a body
that matches the documented schema. A second, shorter run has ``API_TOKENS`` set: with
the token every route still conforms; without it, each guarded route's 401 is one the
spec documents. With Redis gone, the 503s are the documented ones.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.local_redis import private_redis_server
from tests import factory as F
from tests.apiserver import ApiServer
from tests.test_api import market_frames, project
from tests.test_frames import FIXTURES

pytestmark = pytest.mark.anyio

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
TOKEN = "schema-run-token-1f0c"
OLD_SESSION = "2026-07-20"  # the recorded SSI frames' trading day
# Values the loaded sessions hold (and a few that are wrong), tried one parameter at a
# time on every operation that takes it, so the routes answer with data as well as errors.
KNOWN_PATH = {"symbol": ["ACB", "FPT", "VN30F2612", "NOPE"], "index_id": ["VN30", "VNINDEX"]}
KNOWN_QUERY = {
    "date": [F.SESSION, OLD_SESSION, "2026-01-05", "2026-13-45", "31/02/2026"],
    "symbols": ["VN30", "HOSE", "DER", "ACB,FPT", "*", "A B"],
    "symbol": ["ACB", "FPT", "??"],
    "interval": ["5m", "1d", "2m"],
    "limit": ["1", "3", "0", "x"],
}
# Generated per operation: ~17 operations stay well under a minute; more for a deeper run.
EXAMPLES = int(os.environ.get("SCHEMA_EXAMPLES", "25"))
AUTHED_EXAMPLES = 6
NO_RATE_LIMIT = {"API_RATE_LIMIT": "0"}  # the run is a burst from one address


async def load_sessions(redis, settings) -> None:
    fixture = [l for l in (FIXTURES / "ssi_mi_messages.jsonl").read_text().splitlines() if l]
    await project(redis, settings, fixture)  # an earlier session, by date
    await project(redis, settings, market_frames())  # the current one


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


def known_cases(operation, headers: dict[str, str] | None) -> list:
    """Requests naming what the sessions hold: each path value, then each query value."""
    names = [p.name for p in operation.path_parameters]
    paths = [{}]
    if names:
        width = max(len(KNOWN_PATH[n]) for n in names)
        paths = [{n: KNOWN_PATH[n][i % len(KNOWN_PATH[n])] for n in names} for i in range(width)]
    queries = [{}] + [{p.name: v} for p in operation.query for v in KNOWN_QUERY.get(p.name, [])]
    return [
        operation.Case(path_parameters=path or None, query=query or None, headers=headers)
        for path in paths for query in queries
    ]


def fuzz(
    schema, base_url: str, *, examples: int, headers: dict[str, str] | None = None, seen: dict | None = None
) -> list[str]:
    """Run every operation; the failures found, one entry per operation.

    ``seen`` collects the status codes each operation answered (label -> Counter).
    """
    failures: list[str] = []
    seen = {} if seen is None else seen
    for operation in operations(schema):
        statuses = seen.setdefault(operation.label, Counter())

        def check(case) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=10)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)

        # No shrinking: a failure is reported as found (with its curl line), in bounded time.
        @hypothesis.settings(
            max_examples=examples, deadline=None, derandomize=True, database=None,
            phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of([operation.as_strategy(generation_mode=m, headers=headers) for m in GenerationMode]))
        def generated(case) -> None:
            check(case)

        try:
            for case in known_cases(operation, headers):
                check(case)
            generated()
        except (Exception, BaseExceptionGroup) as exc:  # collected: every operation's failures at once
            failures.append(f"{operation.label}: {report(exc)}")
    return failures


def report(exc: BaseException) -> str:
    """A short account of a failed run: each distinct failure, and how to reproduce one."""
    kinds = dict.fromkeys(describe(exc))
    curl = re.search(r"curl [^\n]+", str(exc))
    return "\n  ".join([*kinds, curl.group(0) if curl else ""])


def describe(exc: BaseException) -> list[str]:
    if isinstance(exc, BaseExceptionGroup):
        return [line for inner in exc.exceptions for line in describe(inner)]
    if isinstance(exc, Failure):
        return [f"{exc.title}: {' '.join(exc.message.split())[:400]}"]
    return [f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"]


def guarded(label: str) -> bool:
    """Whether a credential guards the operation (DESIGN.md §3: /api/* and /metrics)."""
    path = label.split(" ", 1)[1]
    return path.startswith("/api/") or path == "/metrics"


@pytest.fixture(scope="module")
def open_node(redis_server):
    with ApiServer(redis_server.url, **NO_RATE_LIMIT) as server:
        yield server


@pytest.fixture(scope="module")
def token_node(redis_server):
    with ApiServer(redis_server.url, API_TOKENS=f"other-token,{TOKEN}", **NO_RATE_LIMIT) as server:
        yield server


async def test_every_operation_conforms_to_the_spec(redis, settings, open_node):
    await load_sessions(redis, settings)
    schema = schemathesis.openapi.from_url(open_node.http + "/schema/openapi.json")
    assert len(operations(schema)) >= 17
    seen: dict[str, Counter] = {}
    failures = fuzz(schema, open_node.http, examples=EXAMPLES, seen=seen)
    assert not failures, "\n\n".join(failures)
    # The run reached the routes' data and their errors, not only one or the other.
    assert all(any(200 <= s < 300 for s in c) for c in seen.values()), seen
    assert sum(c[400] for c in seen.values()) >= 50 and sum(c[404] for c in seen.values()) >= 5, seen


async def test_errors_any_route_can_give_are_documented(open_node):
    spec = schemathesis.openapi.from_url(open_node.http + "/schema/openapi.json").raw_schema
    body = {"$ref": "#/components/schemas/ErrorBody"}
    scheme = spec["components"]["securitySchemes"]["BearerToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, item in spec["paths"].items():
        for method, op in item.items():
            label = f"{method.upper()} {path}"
            codes = op["responses"]
            if guarded(label):
                assert op.get("security") == [{"BearerToken": []}], label
                for code in ("401", "429", "503"):
                    assert codes[code]["content"]["application/json"]["schema"] == body, (label, code)
            else:  # open: no credential, no rate limit (app.api.auth.OPEN)
                assert "401" not in codes and "429" not in codes and "security" not in op, label
            if op.get("parameters"):  # anything a client passes can be wrong
                assert codes["400"]["content"]["application/json"]["schema"] == body, label
    # An integer is one JSON number: oneOf [integer, number] would refuse every price.
    assert '{"type": "integer"}, {"type": "number"}' not in str(spec).replace("'", '"')


async def test_with_a_token_configured_every_operation_still_conforms(redis, settings, token_node):
    await load_sessions(redis, settings)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    schema = schemathesis.openapi.from_url(token_node.http + "/schema/openapi.json", headers=bearer)
    seen: dict[str, Counter] = {}
    failures = fuzz(schema, token_node.http, examples=AUTHED_EXAMPLES, headers=bearer, seen=seen)
    assert not failures, "\n\n".join(failures)
    assert all(any(200 <= s < 300 for s in c) for c in seen.values()), seen
    assert not any(c[401] for c in seen.values()), seen
    # Without it: whatever comes back (a 401 on a guarded route) is what the spec says.
    seen = {}
    failures = fuzz(schema, token_node.http, examples=2, seen=seen)
    assert not failures, "\n\n".join(failures)
    assert all(c[401] for label, c in seen.items() if guarded(label)), seen
    assert not any(c[401] for label, c in seen.items() if not guarded(label)), seen


async def test_store_outage_answers_are_the_documented_503s(redis_binary):
    store = private_redis_server(redis_binary)
    store.start()
    try:
        with ApiServer(store.url, **NO_RATE_LIMIT) as node:
            schema = schemathesis.openapi.from_url(node.http + "/schema/openapi.json")
            store.cleanup()  # Redis gone under a running node
            answered = {}
            for operation in operations(schema):
                case = known_cases(operation, None)[0]
                response = case.call(base_url=node.http, timeout=10)
                answered[operation.label] = response.status_code
                # A 503 here is the answer the spec promises, not a server fault.
                case.validate_response(response, checks=CHECKS[1:])
    finally:
        store.cleanup()
    down = {label for label, status in answered.items() if status == 503}
    assert down == {label for label in answered if guarded(label)} | {"GET /readyz"}, answered
