-- name: get_sample(id)^
SELECT id, payload, address, day, amount, duration, small, ratio, flag, code
FROM samples WHERE id = :id;

-- name: add_sample(payload, address, day, amount, duration, small, ratio, flag, code)<!
INSERT INTO samples (payload, address, day, amount, duration, small, ratio, flag, code)
VALUES (:payload, :address, :day, :amount, :duration, :small, :ratio, :flag, :code)
RETURNING id;
