"""What the benchmarks and the tests both run on: a redis-server to start, a probe feed.

Outside ``app`` (not the product) and outside ``tests`` (the benches must not depend on
the test suite).
"""
