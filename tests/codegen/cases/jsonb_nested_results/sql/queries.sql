-- name: get_pipeline_with_steps(id)^
-- A pipeline and its ordered steps in one round trip.
-- @json steps: list[PipelineStep]
SELECT p.id,
       p.name,
       coalesce(
           (SELECT jsonb_agg(to_jsonb(s) ORDER BY s.position)
            FROM pipeline_steps s WHERE s.pipeline_id = p.id),
           '[]'::jsonb
       ) AS steps
FROM pipelines p
WHERE p.id = :id;
