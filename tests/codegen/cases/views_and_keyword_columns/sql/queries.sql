-- name: list_active(kind)
SELECT id, "from", "class" FROM active_routes WHERE "class" = :kind;

-- name: get_route(id)^
-- Keyword column names become from_ and class_; the table's model is still reused.
SELECT id, "from", "class", active FROM routes WHERE id = :id;
