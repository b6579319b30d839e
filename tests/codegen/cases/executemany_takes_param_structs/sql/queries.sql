-- name: add_metrics*!
-- Insert many metrics, one statement per row.
INSERT INTO component_metrics (execution_id, metric_name, value, labels)
VALUES (:execution_id, :metric_name, :value, :labels);
