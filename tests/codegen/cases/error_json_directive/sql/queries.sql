-- name: pipeline_env(id)^
-- @json environment: dict[str, Unknown]
-- @json name: list[str]
SELECT environment, name FROM pipelines WHERE id = :id;
