CREATE TABLE routes (
    id integer PRIMARY KEY,
    "from" text NOT NULL,
    "class" text NOT NULL,
    active boolean NOT NULL DEFAULT true
);
COMMENT ON COLUMN routes."from" IS 'Where the route starts.';
CREATE VIEW active_routes AS SELECT id, "from", "class" FROM routes WHERE active;
