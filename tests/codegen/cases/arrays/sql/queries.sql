-- name: pipeline_tags(id)$
SELECT tags FROM pipelines WHERE id = :id;

-- name: tag_pipeline(id, tags)!
UPDATE pipelines SET tags = :tags WHERE id = :id;
