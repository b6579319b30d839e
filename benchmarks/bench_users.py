"""Users: a user's effective permissions through their roles.

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
def test_list_user_permissions(
    benchmark: BenchmarkFixture, bench_results: Results, impl: str, loop: str, mode: str
) -> None:
    replay(benchmark, bench_results, "permissions", impl, loop, mode)
