"""Pipelines: get by id, create (RETURNING), load with steps and plugins, and the pool checkout.

Run with ``python3 dev.py bench`` (``--quick`` for a smoke run). Every test replays its share of
one interleaved measurement (``_fixtures.bench_results``, design in ``_runner``): the
parameters are the implementation, the event loop and sequential or 8 concurrent tasks.
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks._fixtures import Results, bench_results, replay
from benchmarks._report import IMPLS
from benchmarks._runner import LOOPS, MODES

__all__ = ["bench_results"]

_CASES = [(i, loop, mode) for loop in LOOPS for mode in MODES for i in IMPLS]


@pytest.mark.parametrize(("impl", "loop", "mode"), _CASES)
def test_get_pipeline(
    benchmark: BenchmarkFixture, bench_results: Results, impl: str, loop: str, mode: str
) -> None:
    replay(benchmark, bench_results, "get", impl, loop, mode)


@pytest.mark.parametrize(("impl", "loop", "mode"), _CASES)
def test_create_pipeline(
    benchmark: BenchmarkFixture, bench_results: Results, impl: str, loop: str, mode: str
) -> None:
    replay(benchmark, bench_results, "create", impl, loop, mode)


@pytest.mark.parametrize(("impl", "loop", "mode"), _CASES)
def test_get_pipeline_with_steps(
    benchmark: BenchmarkFixture, bench_results: Results, impl: str, loop: str, mode: str
) -> None:
    replay(benchmark, bench_results, "nested", impl, loop, mode)


@pytest.mark.parametrize(("impl", "loop", "mode"), _CASES)
def test_pool_acquire(
    benchmark: BenchmarkFixture, bench_results: Results, impl: str, loop: str, mode: str
) -> None:
    replay(benchmark, bench_results, "acquire", impl, loop, mode)
