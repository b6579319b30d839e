-- Component metrics: measurements written in large batches, read as aggregates over a window.
-- Metrics are immutable: there is no update.

-- name: copy_component_metrics()!
-- Bulk-insert metrics with COPY (1,000 to 100,000 per call): rows in, count out.
--
-- An unknown component or job execution fails the whole batch with an InvalidReference.
COPY component_metrics (component_id, job_execution_id, metric_name, value, recorded_at) FROM STDIN;

-- name: create_component_metric(component_id, job_execution_id, metric_name, value)<!
-- Record one measurement now.
-- @nullable job_execution_id
INSERT INTO component_metrics (component_id, job_execution_id, metric_name, value)
VALUES (:component_id, :job_execution_id, :metric_name, :value)
RETURNING id, component_id, job_execution_id, metric_name, value, recorded_at;

-- name: get_component_metric(id)^
-- A measurement by id.
SELECT id, component_id, job_execution_id, metric_name, value, recorded_at
FROM component_metrics
WHERE id = :id;

-- name: list_component_metrics(component_id, metric_name, since, until, limit)
-- One component's series of one metric in [since, until), oldest first, at most `limit` points.
SELECT id, component_id, job_execution_id, metric_name, value, recorded_at
FROM component_metrics
WHERE component_id = :component_id AND metric_name = :metric_name
  AND recorded_at >= :since AND recorded_at < :until
ORDER BY recorded_at
LIMIT :limit;

-- name: list_component_metric_aggregates(component_id, since, until)
-- @vet allow unbounded: one row per metric name of one component: tens
-- Per metric of one component: count, min, max, average and sum in [since, until).
SELECT metric_name,
       count(*) AS samples,
       min(value) AS "min_value!",
       max(value) AS "max_value!",
       avg(value) AS "avg_value!",
       sum(value) AS "sum_value!"
FROM component_metrics
WHERE component_id = :component_id AND recorded_at >= :since AND recorded_at < :until
GROUP BY metric_name
ORDER BY metric_name;

-- name: list_job_component_metric_aggregates(job_id, since, until)
-- @vet allow unbounded: one row per component and metric of one job: hundreds at most
-- Per component of a job and metric: count, min, max, average and sum in [since, until).
--
-- Sorted by component name, then metric.
SELECT c.id AS component_id,
       c.name AS component_name,
       m.metric_name,
       count(*) AS samples,
       min(m.value) AS "min_value!",
       max(m.value) AS "max_value!",
       avg(m.value) AS "avg_value!",
       sum(m.value) AS "sum_value!"
FROM components AS c
JOIN component_metrics AS m ON m.component_id = c.id
WHERE c.job_id = :job_id AND m.recorded_at >= :since AND m.recorded_at < :until
GROUP BY c.id, c.name, m.metric_name
ORDER BY c.name, m.metric_name;

-- name: list_job_execution_metric_aggregates(job_execution_id)
-- @vet allow unbounded: one row per component and metric of one execution: hundreds at most
-- Per component and metric, the aggregates of the values recorded during one job execution.
SELECT component_id,
       metric_name,
       count(*) AS samples,
       min(value) AS "min_value!",
       max(value) AS "max_value!",
       avg(value) AS "avg_value!",
       sum(value) AS "sum_value!"
FROM component_metrics
WHERE job_execution_id = :job_execution_id
GROUP BY component_id, metric_name
ORDER BY component_id, metric_name;

-- name: delete_component_metric(id)<!
-- Remove a measurement; None when there is no such measurement.
DELETE FROM component_metrics
WHERE id = :id
RETURNING id, component_id, job_execution_id, metric_name, value, recorded_at;
