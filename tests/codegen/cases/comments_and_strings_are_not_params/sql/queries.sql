-- name: odd_text(id)^
-- ':not_a_param' in strings, comments and casts is left alone.
SELECT id::text AS id_text, ':skip' AS literal, $$ :also_skip $$ AS dollar -- :comment
FROM pipelines /* :block */
WHERE id = :id;
