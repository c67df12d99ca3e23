"""``@stores``: run a test on one Redis and on a Redis Cluster (tests/conftest.py)."""

import pytest

stores = pytest.mark.parametrize("redis_server", ["single", "cluster"], indirect=True)
