"""A realistic volume of ETL metadata, made on the server (generate_series) in resumable chunks.

Shared by ``etlstore demo`` and ``benchmarks/``. Every step tops its table up to the target
count, so a second run finds the data present and does nothing, and an interrupted run resumes.
Rows are built by the server: no row crosses the network, which is what makes a million
executions take seconds rather than minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import etlstore

__all__ = ["SEED_PIPELINE_PREFIX", "Scale", "SeedStep", "plan_seed", "seed"]

SEED_PIPELINE_PREFIX: Final = "seed-pipeline-"
_CHUNK = 100_000
_STEPS_PER_PIPELINE = 5


@dataclass(frozen=True, slots=True)
class Scale:
    """How many rows of each high-volume table to have (the rest follows from pipelines)."""

    pipelines: int
    executions: int
    events: int
    metrics: int

    @property
    def users(self) -> int:
        return max(20, self.pipelines // 10)

    def times(self, factor: float) -> Scale:
        """This scale multiplied (at least one row of each)."""
        return Scale(
            *(
                max(1, round(n * factor))
                for n in (self.pipelines, self.executions, self.events, self.metrics)
            )
        )


@dataclass(frozen=True, slots=True)
class SeedStep:
    """One statement of the seed: what it fills, how many rows, and how to run it."""

    label: str
    rows: int
    run: Callable[[etlstore.Database], Awaitable[object]]


# Fixed catalog and access data: a handful of rows each, idempotent by their unique keys.
_ACCESS_SQL: Final = """-- seed_access (etlstore demo seed)
WITH codes AS (
    SELECT e || ':' || a AS code
    FROM unnest(ARRAY['pipeline', 'job', 'execution', 'event', 'plugin']) AS e,
         unnest(ARRAY['read', 'write', 'run', 'admin']) AS a
), perms AS (
    INSERT INTO permissions (code, description)
    SELECT code, 'seeded' FROM codes
    ON CONFLICT (code) DO NOTHING
    RETURNING id
), roles_in AS (
    INSERT INTO roles (name, description)
    SELECT 'seed-role-' || g, 'seeded' FROM generate_series(1, 10) AS g
    ON CONFLICT (name) DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM perms) + (SELECT count(*) FROM roles_in)
"""

_ROLE_PERMISSIONS_SQL: Final = """-- seed_role_permissions (etlstore demo seed)
INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM roles AS r
JOIN permissions AS p ON (hashtext(r.name || p.code) & 3) = 0
WHERE r.name LIKE 'seed-role-%'
ON CONFLICT DO NOTHING
"""

_USERS_SQL: Final = """-- seed_users (etlstore demo seed)
INSERT INTO users (username, email, password_hash)
SELECT 'seed-user-' || g, 'seed-user-' || g || '@example.com', 'not-a-real-hash'
FROM generate_series(1, $1::int) AS g
ON CONFLICT DO NOTHING
"""

_USER_ROLES_SQL: Final = """-- seed_user_roles (etlstore demo seed)
WITH r AS (
    SELECT array_agg(id ORDER BY name) AS ids FROM roles WHERE name LIKE 'seed-role-%'
)
INSERT INTO user_roles (user_id, role_id)
SELECT u.id, r.ids[1 + (abs(hashtext(u.username)) + k) % cardinality(r.ids)]
FROM users AS u, r, generate_series(0, 2) AS k
WHERE u.username LIKE 'seed-user-%'
ON CONFLICT DO NOTHING
"""

_PLUGINS_SQL: Final = """-- seed_plugins (etlstore demo seed)
INSERT INTO plugins (name, plugin_type, version, namespace, settings_schema)
SELECT 'seed-plugin-' || g,
       (ARRAY['extractor', 'loader', 'transformer', 'utility']::plugin_type[])[1 + g % 4],
       '1.' || g % 7 || '.0', 'seed_' || g % 5,
       jsonb_build_object('type', 'object', 'required', jsonb_build_array('uri'))
FROM generate_series(1, 40) AS g
ON CONFLICT DO NOTHING
"""

_PIPELINES_SQL: Final = """-- seed_pipelines (etlstore demo seed)
INSERT INTO pipelines (name, description, environment_variables, schedule_expression,
                       max_concurrent_executions, retry_attempts)
SELECT 'seed-pipeline-' || lpad(g::text, 6, '0'), 'Seeded pipeline ' || g,
       jsonb_build_object('TARGET', 'warehouse_' || g % 10, 'BATCH', (g % 5 + 1) * 1000),
       CASE WHEN g % 3 = 0 THEN '*/15 * * * *' END, 10, g % 3
FROM generate_series(1, $1::int) AS g
ON CONFLICT (name) DO NOTHING
"""

_STEPS_SQL: Final = """-- seed_pipeline_steps (etlstore demo seed)
WITH pl AS (
    SELECT array_agg(id ORDER BY name) AS ids FROM plugins WHERE name LIKE 'seed-plugin-%'
)
INSERT INTO pipeline_steps (pipeline_id, position, plugin_id, configuration)
SELECT p.id, s, pl.ids[1 + (abs(hashtext(p.name)) + s) % cardinality(pl.ids)],
       jsonb_build_object('uri', 's3://bucket/' || p.name || '/' || s, 'parallelism', s + 1)
FROM pipelines AS p, pl, generate_series(0, $1::int - 1) AS s
WHERE p.name LIKE 'seed-pipeline-%'
ON CONFLICT DO NOTHING
"""

_JOBS_SQL: Final = """-- seed_jobs (etlstore demo seed)
WITH j AS (
    INSERT INTO jobs (name, strategy_type)
    SELECT 'seed-job-' || g,
           (ARRAY['batch', 'streaming', 'incremental']::strategy_type[])[1 + g % 3]
    FROM generate_series(1, 100) AS g
    ON CONFLICT DO NOTHING
    RETURNING id
), c AS (
    INSERT INTO components (job_id, name, component_type)
    SELECT j.id, 'component-' || k,
           (ARRAY['extractor', 'transformer', 'validator', 'loader']::component_type[])[k]
    FROM j, generate_series(1, 4) AS k
    RETURNING id
)
INSERT INTO job_executions (job_id, status, triggered_by, queued_at, started_at, finished_at)
SELECT j.id, 'succeeded', 'schedule', now() - interval '1 day' * k,
       now() - interval '1 day' * k, now() - interval '1 day' * k + interval '5 minutes'
FROM j, generate_series(1, 10) AS k
"""

# One in a thousand is queued (workers claim them), spread over the pipelines (+ g / 1000);
# a tenth of the rest failed.
_EXECUTIONS_SQL: Final = """-- seed_pipeline_executions (etlstore demo seed)
WITH p AS (
    SELECT array_agg(id ORDER BY name) AS ids FROM pipelines WHERE name LIKE 'seed-pipeline-%'
), t AS (
    SELECT g, now() - interval '90 days' * (1 - g::float8 / $3::int) AS queued_at,
           (g % 1000 = 0) AS queued
    FROM generate_series($1::int + 1, $1::int + $2::int) AS g
)
INSERT INTO pipeline_executions (
    pipeline_id, status, triggered_by, queued_at, claimed_by, claimed_at, started_at, finished_at,
    rows_processed, error, context
)
SELECT p.ids[1 + (t.g::bigint * 7919 + t.g / 1000) % cardinality(p.ids)],
       CASE WHEN t.queued THEN 'queued' WHEN t.g % 10 = 1 THEN 'failed' ELSE 'succeeded' END
           ::execution_status,
       (ARRAY['schedule', 'api', 'user']::trigger_kind[])[1 + t.g % 3],
       CASE WHEN t.queued THEN now() - interval '1 minute' ELSE t.queued_at END,
       CASE WHEN NOT t.queued THEN 'seed-worker-' || t.g % 8 END,
       CASE WHEN NOT t.queued THEN t.queued_at + interval '1 second' END,
       CASE WHEN NOT t.queued THEN t.queued_at + interval '1 second' END,
       CASE WHEN NOT t.queued THEN t.queued_at + interval '1 second' * (2 + t.g % 600) END,
       CASE WHEN NOT t.queued THEN (t.g * 31) % 100000 ELSE 0 END,
       CASE WHEN NOT t.queued AND t.g % 10 = 1 THEN 'extract failed: connection reset' END,
       jsonb_build_object('run', t.g)
FROM t, p
"""

_EVENTS_SQL: Final = """-- seed_events (etlstore demo seed)
WITH t AS (
    SELECT g, now() - interval '90 days' * (1 - g::float8 / $3::int) AS created_at,
           (g % 1000 = 0) AS pending
    FROM generate_series($1::int + 1, $1::int + $2::int) AS g
)
INSERT INTO events (event_type, data, task_context, status, attempts, created_at, processed_at)
SELECT (ARRAY['file.arrived', 'table.updated', 'schema.changed', 'run.requested'])[1 + g % 4],
       jsonb_build_object('uri', 's3://landing/' || g || '.parquet', 'bytes', (g * 37) % 1000000),
       CASE WHEN NOT pending THEN jsonb_build_object('rows', g % 5000) END,
       CASE WHEN pending THEN 'pending' ELSE 'done' END::event_status,
       CASE WHEN pending THEN 0 ELSE 1 END,
       CASE WHEN pending THEN now() - interval '1 minute' ELSE created_at END,
       CASE WHEN NOT pending THEN created_at + interval '2 seconds' END
FROM t
"""

_METRICS_SQL: Final = """-- seed_component_metrics (etlstore demo seed)
WITH c AS (
    SELECT array_agg(c.id ORDER BY c.id) AS ids
    FROM components AS c JOIN jobs AS j ON j.id = c.job_id WHERE j.name LIKE 'seed-job-%'
), x AS (
    SELECT array_agg(id ORDER BY id) AS ids FROM job_executions
)
INSERT INTO component_metrics (component_id, job_execution_id, metric_name, value, recorded_at)
SELECT c.ids[1 + g % cardinality(c.ids)], x.ids[1 + g % cardinality(x.ids)],
       (ARRAY['rows_per_second', 'latency_ms', 'memory_mb', 'errors'])[1 + g % 4],
       random() * 1000, now() - interval '30 days' * (1 - g::float8 / $3::int)
FROM c, x, generate_series($1::int + 1, $1::int + $2::int) AS g
"""

_COUNTS_SQL: Final = """-- seed_counts (etlstore demo seed)
SELECT (SELECT count(*) FROM pipelines WHERE name LIKE 'seed-pipeline-%'),
       (SELECT count(*) FROM pipeline_steps),
       (SELECT count(*) FROM pipeline_executions),
       (SELECT count(*) FROM events),
       (SELECT count(*) FROM component_metrics),
       (SELECT count(*) FROM users WHERE username LIKE 'seed-user-%'),
       (SELECT count(*) FROM jobs WHERE name LIKE 'seed-job-%')
"""

_ANALYZE_SQL: Final = "ANALYZE"
# The history above reaches 90 days back: its months get partitions of their own first (the
# month of `at` and the policy's premake after it), rather than all landing in the default one.
_IS_PARTITIONED_SQL: Final = "SELECT to_regclass('partition_policies') IS NOT NULL"
_PARTITIONS_SQL: Final = "SELECT count(*) FROM maintain_partitions(now() - interval '90 days')"


def _statement(sql: str, *args: object) -> Callable[[etlstore.Database], Awaitable[object]]:
    async def run(db: etlstore.Database) -> object:
        return await db.execute(sql, *args)

    return run


def _chunks(label: str, sql: str, have: int, target: int) -> list[SeedStep]:
    """Rows have+1 .. target in chunks; times rise with the row number (appends to indexes)."""
    starts = range(have, target, _CHUNK)
    return [
        SeedStep(
            label, min(_CHUNK, target - s), _statement(sql, s, min(_CHUNK, target - s), target)
        )
        for s in starts
    ]


async def plan_seed(db: etlstore.Database, scale: Scale) -> tuple[list[SeedStep], list[SeedStep]]:
    """What is missing: (steps to run in order, then chunks that may run side by side)."""
    row = await db.fetchrow(_COUNTS_SQL)
    assert row is not None
    pipelines, steps, executions, events, metrics, users, jobs = row
    ordered: list[SeedStep] = []
    if users < scale.users:
        ordered += [
            SeedStep("roles", 30, _statement(_ACCESS_SQL)),
            SeedStep("roles", 10, _statement(_ROLE_PERMISSIONS_SQL)),
            SeedStep("users", scale.users, _statement(_USERS_SQL, scale.users)),
            SeedStep("users", scale.users, _statement(_USER_ROLES_SQL)),
        ]
    if pipelines < scale.pipelines:
        ordered += [
            SeedStep("plugins", 40, _statement(_PLUGINS_SQL)),
            SeedStep("pipelines", scale.pipelines, _statement(_PIPELINES_SQL, scale.pipelines)),
        ]
    if steps < scale.pipelines * _STEPS_PER_PIPELINE:
        rows = scale.pipelines * _STEPS_PER_PIPELINE
        ordered.append(SeedStep("steps", rows, _statement(_STEPS_SQL, _STEPS_PER_PIPELINE)))
    if jobs == 0:
        ordered.append(SeedStep("jobs", 100, _statement(_JOBS_SQL)))
    if (
        executions < scale.executions or events < scale.events or metrics < scale.metrics
    ) and await db.fetchval(_IS_PARTITIONED_SQL):
        ordered.append(SeedStep("partitions", 0, _statement(_PARTITIONS_SQL)))
    parallel = [
        *_chunks("executions", _EXECUTIONS_SQL, executions, scale.executions),
        *_chunks("events", _EVENTS_SQL, events, scale.events),
        *_chunks("metrics", _METRICS_SQL, metrics, scale.metrics),
    ]
    if ordered or parallel:
        parallel.append(SeedStep("analyze", 0, _statement(_ANALYZE_SQL)))
    return ordered, parallel


async def _run_side_by_side(
    db: etlstore.Database, steps: Sequence[SeedStep], done: Callable[[SeedStep], None], width: int
) -> None:
    *chunks, last = steps
    queue = list(reversed(chunks))

    async def drain() -> None:
        while queue:
            step = queue.pop()
            await step.run(db)
            done(step)

    await asyncio.gather(*(drain() for _ in range(width)))
    await last.run(db)
    done(last)


async def seed(db: etlstore.Database, scale: Scale, console: Console | None = None) -> int:
    """Top every table up to ``scale`` with a progress bar; returns rows added (0: reused)."""
    console = console or Console(stderr=True)
    ordered, parallel = await plan_seed(db, scale)
    if not ordered and not parallel:
        return 0
    total = sum(step.rows for step in (*ordered, *parallel))
    columns = (
        TextColumn("seeding {task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=total)

        def done(step: SeedStep) -> None:
            progress.update(task, advance=step.rows, description=step.label)
            if not console.is_terminal:  # no bar to redraw: one line per step instead
                console.print(f"seeded {step.label}: +{step.rows:,} rows")

        for step in ordered:
            await step.run(db)
            done(step)
        if parallel:
            # The server does the work: two statements keep two cores busy.
            await _run_side_by_side(db, parallel, done, width=2)
    return total
