-- name: get_pipelines_by_ids(ids)
-- IN lists as one statement: = ANY of an array parameter.
SELECT id, name FROM pipelines WHERE id = ANY(:ids) ORDER BY name;
