"""Pipeline executions: a 50-row page, COPY of 1,000, a worker's claim, a 3-statement transaction.

Run with ``python3 dev.py bench``; see ``bench_pipelines`` for how the tests replay one
interleaved measurement.
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
def test_list_pipeline_executions_page(
    benchmark: BenchmarkFixture, bench_results: Results, impl: str, loop: str, mode: str
) -> None:
    replay(benchmark, bench_results, "list_page", impl, loop, mode)


@pytest.mark.parametrize(("impl", "loop", "mode"), _CASES)
def test_bulk_insert_1000_executions(
    benchmark: BenchmarkFixture, bench_results: Results, impl: str, loop: str, mode: str
) -> None:
    replay(benchmark, bench_results, "bulk_1000", impl, loop, mode)


@pytest.mark.parametrize(("impl", "loop", "mode"), _CASES)
def test_claim_next_execution(
    benchmark: BenchmarkFixture, bench_results: Results, impl: str, loop: str, mode: str
) -> None:
    replay(benchmark, bench_results, "claim", impl, loop, mode)


@pytest.mark.parametrize(("impl", "loop", "mode"), _CASES)
def test_three_statement_transaction(
    benchmark: BenchmarkFixture, bench_results: Results, impl: str, loop: str, mode: str
) -> None:
    replay(benchmark, bench_results, "transaction", impl, loop, mode)
