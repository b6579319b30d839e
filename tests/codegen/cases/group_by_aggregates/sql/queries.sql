-- name: execution_stats()
-- count() never NULL; sum/avg/min/max nullable.
SELECT pipeline_id,
       count(*) AS executions,
       count(rows_processed) AS with_rows,
       sum(rows_processed) AS total_rows,
       avg(cost) AS average_cost,
       min(queued_at) AS first_queued,
       max(finished_at) AS last_finished
FROM pipeline_executions
GROUP BY pipeline_id
HAVING count(*) > 0;
