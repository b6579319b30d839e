-- Jobs, their tags, their components (the nodes) and the dependencies between components (a DAG).
-- Keyset pages: pass the last row's sort key as `after_*`, or None for the first page.

-- name: get_job(id)^
-- A job by id (without its components: see get_job_with_components).
SELECT id, name, description, num_of_retries, file_logging, strategy_type, created_at, updated_at
FROM jobs
WHERE id = :id;

-- name: get_job_by_name(name)^
-- A job by its unique name.
SELECT id, name, description, num_of_retries, file_logging, strategy_type, created_at, updated_at
FROM jobs
WHERE name = :name;

-- name: lock_job(id)^
-- A job, locked until the end of the transaction; None when there is no such job.
--
-- Units of work that write a configuration version take it first: it serialises changes of one
-- job (version numbers, components), as the dependency cycle check also does.
SELECT id, name, description, num_of_retries, file_logging, strategy_type, created_at, updated_at
FROM jobs
WHERE id = :id
FOR NO KEY UPDATE;

-- name: get_job_with_components(id)^
-- A job with its components (sorted by name) and their dependency edges: one round trip.
-- @json components: list[Component]
-- @json dependencies: list[ComponentDependency]
SELECT j.id, j.name, j.description, j.num_of_retries, j.file_logging, j.strategy_type,
       j.created_at, j.updated_at,
       coalesce(
           (SELECT jsonb_agg(to_jsonb(c) ORDER BY c.name)
            FROM components AS c WHERE c.job_id = j.id),
           '[]'::jsonb
       ) AS components,
       coalesce(
           (SELECT jsonb_agg(to_jsonb(d) ORDER BY d.component_id, d.depends_on_id)
            FROM component_dependencies AS d WHERE d.job_id = j.id),
           '[]'::jsonb
       ) AS dependencies
FROM jobs AS j
WHERE j.id = :id;

-- name: list_jobs(after_name, limit)
-- A page of jobs sorted by name; after_name None for the first page.
-- @nullable after_name
SELECT id, name, description, num_of_retries, file_logging, strategy_type, created_at, updated_at
FROM jobs
WHERE name > coalesce(:after_name::text, '')
ORDER BY name
LIMIT :limit;

-- name: create_job(name, description, num_of_retries, file_logging, strategy_type)<!
-- Add a job (without components); a name taken is a Conflict, negative retries a CheckViolation.
INSERT INTO jobs (name, description, num_of_retries, file_logging, strategy_type)
VALUES (:name, :description, :num_of_retries, :file_logging, :strategy_type)
RETURNING id, name, description, num_of_retries, file_logging, strategy_type, created_at,
          updated_at;

-- name: update_job(id, name, description, num_of_retries, file_logging, strategy_type)<!
-- Replace a job's settings (not its components); None when there is no such job.
UPDATE jobs
SET name = :name, description = :description, num_of_retries = :num_of_retries,
    file_logging = :file_logging, strategy_type = :strategy_type
WHERE id = :id
RETURNING id, name, description, num_of_retries, file_logging, strategy_type, created_at,
          updated_at;

-- name: delete_job(id)<!
-- Remove a job with its components, edges, tags and executions; None if there is none.
--
-- Its configuration versions stay, for the audit.
DELETE FROM jobs
WHERE id = :id
RETURNING id, name, description, num_of_retries, file_logging, strategy_type, created_at,
          updated_at;

-- name: get_tag(id)^
-- A tag by id.
SELECT id, name, created_at, updated_at FROM tags WHERE id = :id;

-- name: get_tag_by_name(name)^
-- A tag by its unique name.
SELECT id, name, created_at, updated_at FROM tags WHERE name = :name;

-- name: list_tags(after_name, limit)
-- A page of tags sorted by name; after_name None for the first page.
-- @nullable after_name
SELECT id, name, created_at, updated_at
FROM tags
WHERE name > coalesce(:after_name::text, '')
ORDER BY name
LIMIT :limit;

-- name: create_tag(name)<!
-- Add a tag; a name taken is a Conflict.
INSERT INTO tags (name) VALUES (:name) RETURNING id, name, created_at, updated_at;

-- name: update_tag(id, name)<!
-- Rename a tag; None when there is no such tag.
UPDATE tags SET name = :name WHERE id = :id RETURNING id, name, created_at, updated_at;

-- name: delete_tag(id)<!
-- Remove a tag from every job; None when there is no such tag.
DELETE FROM tags WHERE id = :id RETURNING id, name, created_at, updated_at;

-- name: add_job_tag(job_id, tag_id)<!
-- Tag a job; None when it already carried the tag. Unknown ids are an InvalidReference.
INSERT INTO job_tags (job_id, tag_id)
VALUES (:job_id, :tag_id)
ON CONFLICT (job_id, tag_id) DO NOTHING
RETURNING job_id, tag_id, created_at;

-- name: remove_job_tag(job_id, tag_id)!
-- Untag a job; returns 1, or 0 when it did not carry the tag.
DELETE FROM job_tags WHERE job_id = :job_id AND tag_id = :tag_id;

-- name: list_job_tags(job_id)
-- @vet allow unbounded: a job carries a handful of tags
-- The tags of a job, sorted by name.
SELECT t.id, t.name, t.created_at, t.updated_at
FROM job_tags AS jt
JOIN tags AS t ON t.id = jt.tag_id
WHERE jt.job_id = :job_id
ORDER BY t.name;

-- name: list_jobs_by_tag(tag_id, after_job_id, limit)
-- A page of the jobs carrying a tag, in job id order; after_job_id None for the first page.
-- @nullable after_job_id
SELECT j.id, j.name, j.description, j.num_of_retries, j.file_logging, j.strategy_type,
       j.created_at, j.updated_at
FROM job_tags AS jt
JOIN jobs AS j ON j.id = jt.job_id
WHERE jt.tag_id = :tag_id
  AND jt.job_id > coalesce(:after_job_id::uuid, '00000000-0000-0000-0000-000000000000')
ORDER BY jt.job_id
LIMIT :limit;

-- name: get_component(id)^
-- A component by id.
SELECT id, job_id, name, component_type, configuration, status, dataclass_id, created_at,
       updated_at
FROM components
WHERE id = :id;

-- name: get_component_by_name(job_id, name)^
-- A component of a job by its name (unique per job).
SELECT id, job_id, name, component_type, configuration, status, dataclass_id, created_at,
       updated_at
FROM components
WHERE job_id = :job_id AND name = :name;

-- name: list_components(job_id)
-- @vet allow unbounded: a job has tens of components
-- A job's components sorted by name (jobs have tens of components, so no paging).
SELECT id, job_id, name, component_type, configuration, status, dataclass_id, created_at,
       updated_at
FROM components
WHERE job_id = :job_id
ORDER BY name;

-- name: list_components_in_topological_order(job_id)
-- @vet allow unbounded: a job has tens of components
-- A job's components, each after those it depends on.
--
-- depth is the length of the longest dependency chain leading to the component (0: none);
-- components of equal depth may run in parallel. Ties are sorted by name.
WITH RECURSIVE chain (id, depth) AS (
    SELECT c.id, 0
    FROM components AS c
    WHERE c.job_id = :job_id
    UNION
    SELECT d.component_id, chain.depth + 1
    FROM chain
    JOIN component_dependencies AS d ON d.job_id = :job_id AND d.depends_on_id = chain.id
)
SELECT c.id, c.name, c.component_type, c.status, c.dataclass_id, max(chain.depth) AS "depth!"
FROM chain
JOIN components AS c ON c.id = chain.id
GROUP BY c.id
ORDER BY max(chain.depth), c.name;

-- name: list_components_by_dataclass(dataclass_id)
-- @vet allow unbounded: the components that use one dataclass: tens
-- The components that produce a dataclass (what blocks deleting it), by job and name.
SELECT id, job_id, name, component_type, configuration, status, dataclass_id, created_at,
       updated_at
FROM components
WHERE dataclass_id = :dataclass_id
ORDER BY job_id, name;

-- name: create_component(job_id, name, component_type, configuration, status, dataclass_id)<!
-- Add a component to a job.
--
-- A name used in the job already is a Conflict; an unknown job or dataclass an InvalidReference.
-- @nullable dataclass_id
INSERT INTO components (job_id, name, component_type, configuration, status, dataclass_id)
VALUES (:job_id, :name, :component_type, :configuration, :status, :dataclass_id)
RETURNING id, job_id, name, component_type, configuration, status, dataclass_id, created_at,
          updated_at;

-- name: upsert_components*!
-- Write a job's components by name: a new name is inserted, an existing one replaced.
--
-- Components keep their ids (and so their metrics and edges) while their name stays. Follow with
-- delete_components_not_named to drop the components the new list no longer has.
-- @nullable dataclass_id
INSERT INTO components (job_id, name, component_type, configuration, status, dataclass_id)
VALUES (:job_id, :name, :component_type, :configuration, :status, :dataclass_id)
ON CONFLICT (job_id, name)
DO UPDATE SET component_type = excluded.component_type, configuration = excluded.configuration,
              status = excluded.status, dataclass_id = excluded.dataclass_id;

-- name: delete_components_not_named(job_id, names)!
-- Remove a job's components whose name is not in names (with their edges); returns how many.
DELETE FROM components WHERE job_id = :job_id AND name <> ALL(:names);

-- name: update_component(id, name, component_type, configuration, status, dataclass_id)<!
-- Replace a component's definition (it stays in its job); None when there is no such component.
-- @nullable dataclass_id
UPDATE components
SET name = :name, component_type = :component_type, configuration = :configuration,
    status = :status, dataclass_id = :dataclass_id
WHERE id = :id
RETURNING id, job_id, name, component_type, configuration, status, dataclass_id, created_at,
          updated_at;

-- name: delete_component(id)<!
-- Remove a component with its edges and metrics; None when there is no such component.
DELETE FROM components
WHERE id = :id
RETURNING id, job_id, name, component_type, configuration, status, dataclass_id, created_at,
          updated_at;

-- name: add_component_dependency(job_id, component_id, depends_on_id)<!
-- Make component_id run after depends_on_id; None when the edge exists already.
--
-- A self-edge or a cycle is a CheckViolation (constraint component_dependencies_no_self_dependency
-- or component_dependencies_no_cycle); a component of another job an InvalidReference.
INSERT INTO component_dependencies (job_id, component_id, depends_on_id)
VALUES (:job_id, :component_id, :depends_on_id)
ON CONFLICT (job_id, component_id, depends_on_id) DO NOTHING
RETURNING job_id, component_id, depends_on_id, created_at;

-- name: add_component_dependencies*!
-- Add many edges, one statement each (after delete_component_dependencies, to rewrite a DAG).
--
-- The edge that would close a cycle fails with a CheckViolation (component_dependencies_no_cycle),
-- a duplicate edge with a Conflict; the caller's transaction then rolls back the whole rewrite.
INSERT INTO component_dependencies (job_id, component_id, depends_on_id)
VALUES (:job_id, :component_id, :depends_on_id);

-- name: delete_component_dependencies(job_id)!
-- Remove all of a job's edges (before writing its new DAG); returns how many.
DELETE FROM component_dependencies WHERE job_id = :job_id;

-- name: remove_component_dependency(job_id, component_id, depends_on_id)!
-- Remove an edge; returns 1, or 0 when there was none.
DELETE FROM component_dependencies
WHERE job_id = :job_id AND component_id = :component_id AND depends_on_id = :depends_on_id;

-- name: list_component_dependencies(job_id)
-- @vet allow unbounded: the edges of one job's graph: tens
-- A job's edges: component_id runs after depends_on_id.
SELECT job_id, component_id, depends_on_id, created_at
FROM component_dependencies
WHERE job_id = :job_id
ORDER BY component_id, depends_on_id;
