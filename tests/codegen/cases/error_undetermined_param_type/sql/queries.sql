-- name: is_missing(value)$
-- The server cannot tell the type of a parameter only compared with IS NULL.
SELECT :value IS NULL AS missing;
