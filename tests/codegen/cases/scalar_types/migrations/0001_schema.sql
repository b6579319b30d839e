CREATE DOMAIN short_code AS varchar(8) CHECK (VALUE ~ '^[A-Z]+$');
CREATE TABLE samples (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    payload bytea NOT NULL,
    address inet NOT NULL,
    day date NOT NULL,
    amount numeric NOT NULL,
    duration interval NOT NULL,
    small smallint NOT NULL,
    ratio real NOT NULL,
    flag boolean NOT NULL,
    code short_code NOT NULL
);
