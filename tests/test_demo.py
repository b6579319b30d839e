"""``etlstore demo``: seeds once, puts the store under a mixed workload, stops cleanly on Ctrl-C.

Only what the workload did is checked, never how fast: timings belong in benchmarks/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from etlstore.cli import main

_TINY = ["--scale", "0.01"]  # 10 pipelines, 1,000 executions and events, 100 metrics
_DID_WORK_SQL = """
SELECT (SELECT count(*) FROM pipeline_executions
        WHERE claimed_by LIKE 'demo-worker-%' AND status IN ('succeeded', 'failed')),
       (SELECT count(*) FROM events WHERE claimed_by LIKE 'demo-consumer-%' AND status = 'done'),
       (SELECT count(*) FROM events WHERE data->>'uri' LIKE 's3://landing/demo/%'),
       (SELECT count(*) FROM pipelines WHERE name LIKE 'demo-%')
"""


def _counts(dsn: str) -> tuple[int, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(_DID_WORK_SQL).fetchone()
    assert row is not None
    return tuple(row)


def test_demo_seeds_then_workers_consumers_and_writers_all_do_work(
    empty_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)

    assert main(["demo", "--seconds", "2", *_TINY]) == 0

    out = capsys.readouterr().out
    assert "seed: 2," in out  # 1,000 executions + 1,000 events + ... were added
    finished, consumed, ingested, created = _counts(empty_database)
    assert finished > 0
    assert consumed > 0
    assert ingested >= 1_000
    assert created > 0
    final = out[out.index("etlstore demo: ") :]
    for operation in ("get pipeline", "claim execution", "COPY 1,000 events", "target p99"):
        assert operation in final
    assert "python3 dev.py bench" in out


def test_a_second_demo_run_reuses_the_seed(
    empty_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)
    assert main(["demo", "--seconds", "0.5", *_TINY]) == 0
    capsys.readouterr()

    assert main(["demo", "--seconds", "0.5", *_TINY]) == 0

    assert "seed: reused" in capsys.readouterr().out


def test_sigint_stops_the_workload_and_still_prints_the_final_table(
    empty_database: str, tmp_path: Path
) -> None:
    env = dict(os.environ, DATABASE_URL=empty_database)
    out_path = tmp_path / "demo.out"
    with out_path.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "etlstore.cli", "demo", "--seconds", "120", *_TINY],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while "workload:" not in out_path.read_text():
                assert demo.poll() is None, out_path.read_text()
                assert time.monotonic() < deadline, "the workload never started"
                time.sleep(0.1)
            time.sleep(1)
            demo.send_signal(signal.SIGINT)
            code = demo.wait(timeout=30)
        finally:
            demo.kill()
    text = out_path.read_text()
    assert code in (0, 130), text
    assert "(interrupted)" in text
    assert "Traceback" not in text
    assert _counts(empty_database)[0] > 0
