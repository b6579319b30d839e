-- name: copy_metrics()!
-- Bulk-load metrics with COPY: rows in, count out.
COPY component_metrics (execution_id, metric_name, value, labels) FROM STDIN;
