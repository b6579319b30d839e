-- name: reset_metrics#
-- A script: no parameters, no result.
TRUNCATE component_metrics;
