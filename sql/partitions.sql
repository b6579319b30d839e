-- Partition maintenance, run as the schema's owner (`etlstore partitions`): how each partitioned
-- table is kept (partition_policies), its partitions, and maintain_partitions(), which creates
-- future partitions and retires expired ones. The application role can run none of these.

-- name: list_partition_policies()
-- How each partitioned table is partitioned and kept, by table name.
SELECT table_name, partition_unit, premake, retention, retention_action, updated_at
FROM partition_policies
ORDER BY table_name;

-- name: update_partition_policy(table_name, partition_unit, premake, retention, retention_action)<!
-- Change how a table is partitioned and kept; None for a table that is not partitioned.
--
-- Takes effect at the next maintain_partitions: a new unit applies to the partitions created
-- from then on (existing ones keep their ranges); a shorter retention retires more at once.
-- @nullable retention
UPDATE partition_policies
SET partition_unit = :partition_unit, premake = :premake, retention = :retention,
    retention_action = :retention_action
WHERE table_name = :table_name
RETURNING table_name, partition_unit, premake, retention, retention_action, updated_at;

-- name: list_partitions(table_name)
-- The partitions of a partitioned table, oldest first, the default partition last.
--
-- Bounds are None for the default partition; estimated_rows is the planner's estimate (0 until
-- the partition is first analyzed). No rows for a table that is not partitioned.
SELECT p.partition_name AS "partition_name!",
       p.lower_bound,
       p.upper_bound,
       p.is_default AS "is_default!",
       p.estimated_rows AS "estimated_rows!"
FROM partition_policies AS t
CROSS JOIN LATERAL partitions_of(t.table_name::regclass) AS p
WHERE t.table_name = :table_name;

-- name: maintain_partitions(at)
-- Create the partitions needed from `at` on and retire expired ones; one row per action.
--
-- Per partition_policies: the partition holding `at` and `premake` more are created; with a
-- retention, partitions whose upper bound is older than at - retention are dropped or detached
-- (their step executions and idempotency keys go first), and expired rows in the default
-- partition are deleted. A partition whose range already has rows in the default partition is
-- not created: the action says so ('blocked by rows in the default partition'). Pass now() to
-- run it as of today; run it daily, inside its own transaction. It takes short ACCESS EXCLUSIVE
-- locks on the tables and waits at most 1 s for each (QueryTimeout: run it again).
SELECT table_name AS "table_name!",
       partition_name,
       action AS "action!",
       lower_bound,
       upper_bound,
       affected_rows AS "affected_rows!"
FROM maintain_partitions(:at);
