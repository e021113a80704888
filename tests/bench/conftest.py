"""Benchmarks: the web app's fixtures (support/web_fixtures.py) for test_bench_web.py."""

from support.web_fixtures import browser, dist, make_tablet, web_server  # noqa: F401
