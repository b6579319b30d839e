-- name: sums()^
SELECT 1 + 1;
