"""The benchmark report: samples.json, summary.md and PNG plots under benchmarks/results/.

Regenerate the summary and plots from a previous run's samples without measuring again:
``.venv/bin/python -m benchmarks._report``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import matplotlib
from matplotlib.figure import Figure  # no pyplot: files only, no display or global state
from matplotlib.ticker import FuncFormatter, NullFormatter

from benchmarks._runner import LOOPS, MODES, Cell
from etlstore._demo_targets import OPERATIONS, RATIO_GOALS, verdict

__all__ = [
    "cell_info",
    "console_summary",
    "latency_ms",
    "machine",
    "main",
    "ops_ratio",
    "write_all",
]

BASE: Final = "asyncpg_pool"
IMPLS: Final = (
    "etlstore",
    "asyncpg_pool",
    "asyncpg_held",
    "asyncpg_default_pool",
    "sqlalchemy_orm",
    "sqlalchemy_core",
    "psycopg_pool",
)
_TARGETS: Final = {op.key: op.p99_target_ms for op in OPERATIONS}
#: Compared with, without a goal of its own.
_OTHER_BASELINES: Final = ("psycopg_pool",)
#: The checkout is a part of every operation, not one users call: left out of the ratio goals.
_NOT_IN_GOALS: Final = ("acquire",)


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_ms(cell: Cell, q: float) -> float:
    """The ``q`` quantile of the cell's latencies, in ms."""
    return _quantile(cell.latencies_s, q) * 1000


def cell_info(cell: Cell, base: Cell | None) -> dict[str, object]:
    """What pytest-benchmark's JSON carries beside its own stats (extra_info)."""
    p99 = latency_ms(cell, 0.99)
    target = _TARGETS.get(cell.op)
    return {
        "implementation": cell.impl,
        "loop": cell.loop,
        "mode": cell.mode,
        "p50_ms": round(latency_ms(cell, 0.5), 4),
        "p99_ms": round(p99, 4),
        "ops_per_s": round(cell.ops_per_s, 1),
        "ratio_to_asyncpg_pool": ops_ratio(cell, base),
        "p99_target_ms": target,
        "p99_verdict": verdict(p99, target, lower_is_better=True)
        if cell.impl == "etlstore"
        else "-",
    }


def ops_ratio(cell: Cell | None, base: Cell | None) -> float | None:
    """``cell``'s ops/s ÷ ``base``'s, or None when either has none."""
    if cell is None or base is None or not base.ops_per_s or not cell.ops_per_s:
        return None
    return round(cell.ops_per_s / base.ops_per_s, 3)


def _index(cells: Iterable[Cell]) -> dict[tuple[str, str, str, str], Cell]:
    return {(c.op, c.impl, c.loop, c.mode): c for c in cells if c.latencies_s}


def _geomean(values: Sequence[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _settings(index: dict[tuple[str, str, str, str], Cell]) -> list[tuple[str, str]]:
    return [
        (loop, mode)
        for loop in LOOPS
        for mode in MODES
        if any(k[2] == loop and k[3] == mode for k in index)
    ]


def _targets_table(index: dict[tuple[str, str, str, str], Cell]) -> list[str]:
    settings = _settings(index)
    head = ["operation", "target p99", *(f"{loop} {mode}" for loop, mode in settings), "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for op in OPERATIONS:
        values = [index.get((op.key, "etlstore", loop, mode)) for loop, mode in settings]
        p99s = [None if c is None else latency_ms(c, 0.99) for c in values]
        sequential = [
            p
            for p, (_, mode) in zip(p99s, settings, strict=True)
            if p is not None and mode == "sequential"
        ]
        worst = max(sequential) if sequential else None
        target = "-" if op.p99_target_ms is None else f"< {op.p99_target_ms:g} ms"
        cells = ["-" if p is None else f"{p:.3f}" for p in p99s]
        result = verdict(worst, op.p99_target_ms, lower_is_better=True)
        lines.append(f"| {op.title} | {target} | " + " | ".join(cells) + f" | {result} |")
    return lines


def _goal_ratios(
    index: dict[tuple[str, str, str, str], Cell], baseline: str, loop: str, mode: str
) -> list[float]:
    ratios = []
    for op in OPERATIONS:
        if op.key in _NOT_IN_GOALS:
            continue
        mine = index.get((op.key, "etlstore", loop, mode))
        ratio = ops_ratio(mine, index.get((op.key, baseline, loop, mode)))
        if ratio is not None:
            ratios.append(ratio)
    return ratios


def _ratio_goals_table(index: dict[tuple[str, str, str, str], Cell]) -> list[str]:
    settings = _settings(index)
    head = ["etlstore ops/s ÷", "goal", *(f"{loop} {mode}" for loop, mode in settings)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for goal in RATIO_GOALS:
        row = [goal.title, f">= {goal.at_least:g}"]
        for loop, mode in settings:
            mean = _geomean(_goal_ratios(index, goal.baseline, loop, mode))
            met = verdict(mean, goal.at_least, lower_is_better=False)
            row.append("-" if mean is None else f"{mean:.2f} {met}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _per_op_ratios(index: dict[tuple[str, str, str, str], Cell], loop: str, mode: str) -> list[str]:
    baselines = [*(g.baseline for g in RATIO_GOALS), *_OTHER_BASELINES]
    head = ["operation", *baselines]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for op in OPERATIONS:
        mine = index.get((op.key, "etlstore", loop, mode))
        row = [op.key]
        for baseline in baselines:
            r = ops_ratio(mine, index.get((op.key, baseline, loop, mode)))
            row.append("-" if r is None else f"{r:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _detail(index: dict[tuple[str, str, str, str], Cell], loop: str, mode: str) -> list[str]:
    lines = [
        "| operation | implementation | p50 ms | p99 ms | ops/s | ÷ asyncpg_pool |",
        "|---|---|---|---|---|---|",
    ]
    for op in OPERATIONS:
        for impl in IMPLS:
            cell = index.get((op.key, impl, loop, mode))
            if cell is None:
                continue
            ratio = ops_ratio(cell, index.get((op.key, BASE, loop, mode)))
            lines.append(
                f"| {op.key} | {impl} | {latency_ms(cell, 0.5):.3f} | "
                f"{latency_ms(cell, 0.99):.3f} | "
                f"{cell.ops_per_s:,.0f} | {'-' if ratio is None else f'{ratio:.2f}'} |"
            )
    return lines


def machine() -> str:
    """Cores, architecture, OS and Python: the context every table is read in."""
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} "
        f"{platform.release()}, Python {sys.version.split()[0]}"
    )


def write_side_report(
    folder: Path, name: str, markdown: str, meta: dict[str, Any], cells: Iterable[Cell]
) -> Path:
    """``<name>.md`` and ``<name>.json`` (meta and every cell's latencies) of a scale-out module."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(markdown)
    payload = {
        "meta": meta,
        "cells": [
            {
                "op": c.op,
                "impl": c.impl,
                "mode": c.mode,
                "calls": c.calls,
                "wall_s": c.wall_s,
                "latencies_s": c.latencies_s,
            }
            for c in cells
        ],
    }
    (folder / f"{name}.json").write_text(json.dumps(payload))
    return folder / f"{name}.md"


def summary_markdown(cells: Iterable[Cell], *, when: str, machine: str, quick: bool) -> str:
    index = _index(cells)
    settings = _settings(index)
    out = [
        "# etlstore benchmarks",
        "",
        f"{when}, {machine}{' (quick run: few samples)' if quick else ''}. Latencies are per call "
        "as the caller sees it; ops/s is calls over the wall time of the batches (8 tasks at "
        "once in the concurrent mode). Ratios divide etlstore's ops/s by the other's.",
        "",
        "## etlstore p99 (ms) against the targets (judged on the sequential runs)",
        "",
        *_targets_table(index),
        "",
        "## Ratio goals (geometric mean over the operations)",
        "",
        *_ratio_goals_table(index),
    ]
    for loop, mode in settings:
        out += [
            "",
            f"## etlstore ÷ each alternative per operation ({loop}, {mode})",
            "",
            *_per_op_ratios(index, loop, mode),
        ]
    for loop, mode in settings:
        out += ["", f"## All implementations ({loop}, {mode})", "", *_detail(index, loop, mode)]
    return "\n".join(out) + "\n"


def _plot_latencies(
    index: dict[tuple[str, str, str, str], Cell], loop: str, mode: str, path: Path
) -> None:
    fig = Figure(figsize=(16, 12))
    axes = fig.subplots(3, 3)
    for ax, op in zip(axes.flat, OPERATIONS, strict=True):
        impls = [i for i in IMPLS if (op.key, i, loop, mode) in index]
        data = [[s * 1000 for s in index[(op.key, i, loop, mode)].latencies_s] for i in impls]
        ax.boxplot(
            data, orientation="horizontal", whis=(1, 99), showfliers=False, tick_labels=impls
        )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(op.title, fontsize=10)
        ax.set_xlabel("ms per call (box: p25-p75, whiskers: p1-p99)", fontsize=8)
        ax.tick_params(labelsize=8)
        if op.p99_target_ms is not None:
            ax.axvline(
                op.p99_target_ms,
                color="red",
                linestyle="--",
                linewidth=1,
                label=f"p99 target {op.p99_target_ms:g} ms",
            )
            ax.legend(fontsize=7, loc="lower right")
        ax.invert_yaxis()
    fig.suptitle(f"Latency per operation ({loop}, {mode})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _plot_ratios(index: dict[tuple[str, str, str, str], Cell], path: Path) -> None:
    settings = _settings(index)
    fig = Figure(figsize=(16, 4.5 * len(settings)))
    axes = fig.subplots(len(settings), 1, squeeze=False)
    ops = [op.key for op in OPERATIONS]
    bars: list[tuple[str, float | None]] = [(g.baseline, g.at_least) for g in RATIO_GOALS]
    bars += [(baseline, None) for baseline in _OTHER_BASELINES]
    width = 0.8 / len(bars)
    colors = matplotlib.colormaps["tab10"].colors  # type: ignore[attr-defined]
    for ax, (loop, mode) in zip(axes[:, 0], settings, strict=True):
        for n, (baseline, goal) in enumerate(bars):
            values = [
                ops_ratio(
                    index.get((op, "etlstore", loop, mode)), index.get((op, baseline, loop, mode))
                )
                or 0.0
                for op in ops
            ]
            xs = [x + (n - len(bars) / 2 + 0.5) * width for x in range(len(ops))]
            label = f"÷ {baseline}" + ("" if goal is None else f" (goal {goal:g})")
            ax.bar(xs, values, width, color=colors[n], label=label)
            if goal is not None:
                ax.axhline(goal, color=colors[n], linestyle=":", linewidth=1)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(range(len(ops)), ops)
        ax.set_ylabel("etlstore ops/s ÷ other (higher: etlstore faster)")
        ax.set_title(f"etlstore against the alternatives ({loop}, {mode}); dotted: goals")
        ax.legend(fontsize=8, ncols=3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _write_outputs(cells: list[Cell], meta: dict[str, Any], folder: Path) -> list[Path]:
    index = _index(cells)
    summary = folder / "summary.md"
    summary.write_text(
        summary_markdown(cells, when=meta["when"], machine=meta["machine"], quick=meta["quick"])
    )
    written = [summary]
    for loop, mode in _settings(index):
        path = folder / f"latency_{loop}_{mode}.png"
        _plot_latencies(index, loop, mode, path)
        written.append(path)
    ratios = folder / "ratios.png"
    _plot_ratios(index, ratios)
    return [*written, ratios]


def write_all(cells: list[Cell], folder: Path, *, quick: bool) -> list[Path]:
    """samples.json (every latency), summary.md and the plots."""
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "quick": quick,
    }
    samples = folder / "samples.json"
    payload = {
        "meta": meta,
        "cells": [
            {
                "op": c.op,
                "impl": c.impl,
                "loop": c.loop,
                "mode": c.mode,
                "calls": c.calls,
                "wall_s": c.wall_s,
                "latencies_s": c.latencies_s,
            }
            for c in cells
        ],
    }
    samples.write_text(json.dumps(payload))
    return [samples, *_write_outputs(cells, meta, folder)]


def console_summary(cells: Iterable[Cell]) -> str:
    index = _index(cells)
    return "\n".join(
        [
            "",
            "etlstore p99 (ms) against the targets:",
            *_targets_table(index),
            "",
            "ratio goals:",
            *_ratio_goals_table(index),
        ]
    )


def main(argv: Sequence[str] = ()) -> int:
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results"
    payload = json.loads((folder / "samples.json").read_text())
    cells = [
        Cell(c["op"], c["impl"], c["loop"], c["mode"], c["latencies_s"], c["calls"], c["wall_s"])
        for c in payload["cells"]
    ]
    for path in _write_outputs(cells, payload["meta"], folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
