-- name: find_by_description(description)
-- @nullable description
SELECT id FROM pipelines WHERE description IS NOT DISTINCT FROM :description;
