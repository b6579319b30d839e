"""Nullability inference: pure unit tests over a hand-built catalog (no database)."""

from __future__ import annotations

import pytest

from codegen._nullability import (
    Catalog,
    CatalogColumn,
    CatalogTable,
    Nullability,
    NullabilityParseError,
    infer_nullability,
)


def _table(name: str, columns: str, schema: str = "public") -> CatalogTable:
    """`columns` is "id! name! description": a trailing ! marks NOT NULL."""
    parsed = tuple(CatalogColumn(c.rstrip("!"), c.endswith("!")) for c in columns.split())
    return CatalogTable(schema, name, parsed)


CATALOG = Catalog(
    tables=(
        _table("users", "id! username! email! password_hash! display_name is_active! created_at!"),
        _table("plugins", "id! name! plugin_type! variant version! settings_schema is_enabled!"),
        _table(
            "pipelines",
            "id! name! description environment_variables! schedule_expression timezone! "
            "max_concurrent_executions! timeout_seconds retry_attempts! is_paused! created_at! "
            "updated_at!",
        ),
        _table(
            "pipeline_steps", "id! pipeline_id! position! plugin_id! configuration! created_at!"
        ),
        _table(
            "pipeline_executions",
            "id! pipeline_id! status! attempt! triggered_by queued_at! started_at finished_at "
            "rows_processed error context!",
        ),
        _table("components", "id! job_id! name! dataclass_id"),
        _table("component_dependencies", "component_id! depends_on_id!"),
        _table("active_pipelines", "id name"),  # a view: columns nullable unless proven
        _table("audit_log", "id! actor! at!", schema="audit"),
    )
)


def infer(sql: str, **kwargs: frozenset[int]) -> list[Nullability]:
    return infer_nullability(sql, CATALOG, **kwargs)


def nullable(sql: str) -> list[bool]:
    return [n.nullable for n in infer(sql)]


def reasons(sql: str) -> list[str]:
    return [n.reason for n in infer(sql)]


# --- table columns and outer joins ----------------------------------------------------------


def test_not_null_table_column_is_non_null_with_reason() -> None:
    assert infer("SELECT name FROM pipelines") == [
        Nullability(False, "non-null: pipelines.name is NOT NULL")
    ]


def test_nullable_table_column_is_nullable_with_reason() -> None:
    assert infer("SELECT description FROM pipelines") == [
        Nullability(True, "nullable: pipelines.description allows NULL")
    ]


def test_column_from_right_side_of_left_join_is_nullable() -> None:
    sql = """
        SELECT p.name, steps.position
        FROM pipelines p LEFT JOIN pipeline_steps steps ON steps.pipeline_id = p.id
    """
    assert infer(sql) == [
        Nullability(False, "non-null: pipelines.name is NOT NULL"),
        Nullability(True, "nullable: right side of LEFT JOIN steps"),
    ]


def test_column_from_left_side_of_right_join_is_nullable() -> None:
    sql = "SELECT p.name, s.position FROM pipelines p RIGHT JOIN pipeline_steps s ON true"
    assert nullable(sql) == [True, False]
    assert reasons(sql)[0] == "nullable: left side of RIGHT JOIN p"


def test_both_sides_of_full_join_are_nullable() -> None:
    sql = "SELECT p.name, s.position FROM pipelines p FULL JOIN pipeline_steps s ON true"
    assert nullable(sql) == [True, True]


def test_inner_join_keeps_not_null_columns_non_null() -> None:
    sql = "SELECT p.name, s.position FROM pipelines p JOIN pipeline_steps s ON s.pipeline_id = p.id"
    assert nullable(sql) == [False, False]


def test_cross_join_and_comma_join_keep_not_null_columns_non_null() -> None:
    assert nullable("SELECT p.name, u.email FROM pipelines p CROSS JOIN users u") == [False, False]
    assert nullable("SELECT p.name, u.email FROM pipelines p, users u") == [False, False]


def test_nested_join_on_nullable_side_makes_every_relation_in_it_nullable() -> None:
    sql = """
        SELECT p.name, s.position, pl.name
        FROM pipelines p
        LEFT JOIN (pipeline_steps s JOIN plugins pl ON pl.id = s.plugin_id) ON s.pipeline_id = p.id
    """
    assert nullable(sql) == [False, True, True]


def test_inner_join_after_left_join_keeps_the_earlier_left_join_nullable() -> None:
    sql = """
        SELECT s.position, pl.name
        FROM pipelines p
        LEFT JOIN pipeline_steps s ON s.pipeline_id = p.id
        JOIN plugins pl ON true
    """
    assert nullable(sql) == [True, False]


def test_left_join_of_left_join_chain() -> None:
    sql = """
        SELECT p.name, s.position, pl.name
        FROM pipelines p
        LEFT JOIN pipeline_steps s ON s.pipeline_id = p.id
        LEFT JOIN plugins pl ON pl.id = s.plugin_id
    """
    assert nullable(sql) == [False, True, True]


def test_nullable_column_keeps_its_own_reason_on_the_outer_side() -> None:
    sql = "SELECT r.description FROM users u LEFT JOIN pipelines r ON true"
    assert reasons(sql) == ["nullable: pipelines.description allows NULL"]


def test_view_columns_are_nullable() -> None:
    assert nullable("SELECT id, name FROM active_pipelines") == [True, True]


# --- column resolution ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT pipelines.name FROM pipelines", [False]),
        ("SELECT public.pipelines.name FROM pipelines", [False]),
        ("SELECT x.name FROM pipelines AS x", [False]),
        ("SELECT name, position FROM pipelines JOIN pipeline_steps ON true", [False, False]),
        ("SELECT a.n, a.d FROM pipelines AS a(i, n, d)", [False, True]),
        ("SELECT actor FROM audit.audit_log", [False]),
        ("SELECT audit.audit_log.actor FROM audit.audit_log", [False]),
    ],
    ids=[
        "table-qualified",
        "schema-qualified",
        "alias-qualified",
        "unqualified-unique-across-relations",
        "alias-column-list-renames",
        "table-in-another-schema",
        "schema-table-column",
    ],
)
def test_column_references_resolve_to_their_table(sql: str, expected: list[bool]) -> None:
    assert nullable(sql) == expected


def test_unknown_table_is_nullable_with_reason() -> None:
    assert reasons("SELECT x FROM nowhere") == ["nullable: table nowhere is not in the catalog"]


def test_unresolvable_column_is_nullable() -> None:
    assert nullable("SELECT p.missing FROM pipelines p") == [True]


def test_ambiguous_unqualified_column_is_nullable() -> None:
    assert nullable("SELECT id FROM pipelines, users") == [True]


def test_join_using_column_from_left_join_follows_the_left_side() -> None:
    sql = "SELECT id FROM pipelines LEFT JOIN pipeline_steps USING (id)"
    assert nullable(sql) == [False]


def test_join_using_column_of_full_join_is_non_null_when_both_sides_are() -> None:
    sql = "SELECT id, pipeline_steps.id FROM pipelines FULL JOIN pipeline_steps USING (id)"
    assert nullable(sql) == [False, True]


def test_natural_join_merges_common_columns() -> None:
    sql = "SELECT created_at FROM pipelines NATURAL LEFT JOIN pipeline_steps"
    assert nullable(sql) == [False]


def test_aliased_join_exposes_its_columns_under_the_alias() -> None:
    sql = """
        SELECT j.position FROM (pipelines p LEFT JOIN pipeline_steps s ON s.pipeline_id = p.id) AS j
    """
    assert nullable(sql) == [True]


def test_correlated_column_in_subquery_resolves_to_the_outer_query() -> None:
    sql = "SELECT (SELECT p.name) FROM pipelines p"
    assert nullable(sql) == [False]


def test_whole_row_reference_is_nullable_on_the_outer_side_of_a_join() -> None:
    sql = "SELECT to_jsonb(p), to_jsonb(s) FROM pipelines p LEFT JOIN pipeline_steps s ON true"
    assert nullable(sql) == [False, True]


# --- subqueries, CTEs, LATERAL, functions in FROM ------------------------------------------


def test_column_from_right_side_of_left_join_through_cte_is_nullable() -> None:
    sql = """
        WITH latest AS (SELECT pipeline_id, max(queued_at) AS at FROM pipeline_executions
                        GROUP BY pipeline_id)
        SELECT p.name, latest.pipeline_id
        FROM pipelines p LEFT JOIN latest ON latest.pipeline_id = p.id
    """
    assert infer(sql) == [
        Nullability(False, "non-null: pipelines.name is NOT NULL"),
        Nullability(True, "nullable: right side of LEFT JOIN latest"),
    ]


def test_left_join_inside_a_cte_stays_nullable_outside() -> None:
    sql = """
        WITH x AS (SELECT p.name, s.position
                   FROM pipelines p LEFT JOIN pipeline_steps s ON s.pipeline_id = p.id)
        SELECT name, position FROM x
    """
    assert nullable(sql) == [False, True]


def test_select_star_inside_a_cte_expands_from_the_catalog() -> None:
    sql = "WITH x AS (SELECT * FROM pipelines) SELECT x.name, x.description FROM x"
    assert nullable(sql) == [False, True]


def test_cte_column_alias_list_renames_columns() -> None:
    sql = "WITH x(a, b) AS (SELECT name, description FROM pipelines) SELECT a, b FROM x"
    assert nullable(sql) == [False, True]


def test_cte_shadows_a_table_of_the_same_name() -> None:
    sql = "WITH pipelines AS (SELECT NULL::text AS name) SELECT name FROM pipelines"
    assert nullable(sql) == [True]


def test_subquery_in_from_with_column_aliases() -> None:
    sql = "SELECT q.n, q.d FROM (SELECT name, description FROM pipelines) AS q(n, d)"
    assert nullable(sql) == [False, True]


def test_left_join_lateral_subquery_is_nullable() -> None:
    sql = """
        SELECT p.name, last.status
        FROM pipelines p
        LEFT JOIN LATERAL (SELECT e.status FROM pipeline_executions e
                           WHERE e.pipeline_id = p.id ORDER BY e.id DESC LIMIT 1) last ON true
    """
    assert infer(sql)[1] == Nullability(True, "nullable: right side of LEFT JOIN last")


def test_cross_join_lateral_sees_earlier_relations() -> None:
    sql = """
        SELECT n.nm FROM pipelines p CROSS JOIN LATERAL (SELECT p.name AS nm) AS n
    """
    assert nullable(sql) == [False]


def test_unnest_elements_are_nullable_and_ordinality_is_not() -> None:
    sql = "SELECT u.x, u.n FROM unnest($1::int[]) WITH ORDINALITY AS u(x, n)"
    assert nullable(sql) == [True, False]


def test_generate_series_of_non_null_arguments_is_non_null() -> None:
    assert nullable("SELECT g FROM generate_series(1, 10) AS g") == [False]


def test_unknown_function_in_from_is_nullable() -> None:
    sql = "SELECT r.a FROM jsonb_to_record($1) AS r(a int)"
    assert nullable(sql) == [True]


def test_values_list_is_nullable_where_any_row_is() -> None:
    sql = "SELECT v.a, v.b FROM (VALUES (1, 'x'), (2, NULL)) AS v(a, b)"
    assert nullable(sql) == [False, True]


def test_recursive_cte_widens_nullability_from_the_recursive_term() -> None:
    sql = """
        WITH RECURSIVE chain(id, parent) AS (
            SELECT id, 0 FROM components
            UNION ALL
            SELECT c.id, c.dataclass_id FROM chain JOIN components c ON c.id = chain.parent
        )
        SELECT id, parent FROM chain
    """
    assert nullable(sql) == [False, True]
    assert "recursive term of CTE chain" in reasons(sql)[1]


# --- aggregates and window functions --------------------------------------------------------


def test_sum_over_left_join_is_nullable() -> None:
    sql = """
        SELECT p.id, sum(e.rows_processed), count(e.id)
        FROM pipelines p LEFT JOIN pipeline_executions e ON e.pipeline_id = p.id GROUP BY p.id
    """
    assert nullable(sql) == [False, True, False]


def test_max_of_not_null_column_is_nullable_because_of_no_rows() -> None:
    assert infer("SELECT max(position) FROM pipeline_steps") == [
        Nullability(True, "nullable: max() returns NULL over no rows")
    ]


def test_count_is_non_null() -> None:
    assert infer("SELECT count(*) FROM pipelines") == [
        Nullability(False, "non-null: count() never returns NULL")
    ]


@pytest.mark.parametrize(
    "aggregate",
    [
        "sum(position)",
        "avg(position)",
        "min(position)",
        "array_agg(id)",
        "json_agg(id)",
        "jsonb_agg(id)",
        "string_agg(id::text, ',')",
        "bool_and(true)",
        "bool_or(true)",
        "every(true)",
    ],
)
def test_aggregates_other_than_count_are_nullable(aggregate: str) -> None:
    assert nullable(f"SELECT {aggregate} FROM pipeline_steps") == [True]


@pytest.mark.parametrize("count", ["count(*)", "count(id)", "count(DISTINCT pipeline_id)"])
def test_count_forms_are_non_null(count: str) -> None:
    assert nullable(f"SELECT {count} FROM pipeline_steps GROUP BY pipeline_id") == [False]


def test_count_with_filter_is_non_null() -> None:
    assert nullable(
        "SELECT count(*) FILTER (WHERE status = 'failed') FROM pipeline_executions"
    ) == [False]


@pytest.mark.parametrize(
    ("window", "is_nullable"),
    [
        ("row_number()", False),
        ("rank()", False),
        ("dense_rank()", False),
        ("count(*)", False),
        ("ntile(4)", False),
        ("lag(id)", True),
        ("lead(id)", True),
        ("first_value(id)", True),
        ("last_value(id)", True),
        ("nth_value(id, 2)", True),
        ("sum(id)", True),
    ],
)
def test_window_functions_follow_the_same_rules(window: str, is_nullable: bool) -> None:
    sql = f"SELECT {window} OVER (PARTITION BY pipeline_id ORDER BY position) FROM pipeline_steps"
    assert nullable(sql) == [is_nullable]


def test_rollup_makes_grouped_columns_nullable_but_not_count() -> None:
    sql = "SELECT pipeline_id, count(*) FROM pipeline_steps GROUP BY ROLLUP (pipeline_id)"
    assert nullable(sql) == [True, False]


@pytest.mark.parametrize(
    "group_by", ["CUBE (pipeline_id)", "GROUPING SETS ((pipeline_id), ())", "ROLLUP (1)"]
)
def test_grouping_sets_make_grouped_values_nullable(group_by: str) -> None:
    sql = f"SELECT coalesce(pipeline_id, 0) FROM pipeline_steps GROUP BY {group_by}"
    assert nullable(sql) == [True]


def test_plain_group_by_keeps_grouped_column_non_null() -> None:
    sql = "SELECT pipeline_id, count(*) FROM pipeline_steps GROUP BY pipeline_id"
    assert nullable(sql) == [False, False]


# --- expressions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "is_nullable"),
    [
        ("1", False),
        ("'text'", False),
        ("true", False),
        ("NULL", True),
        ("$1", False),
        ("name::varchar", False),
        ("description::varchar", True),
        ("NULL::text", True),
        ('name COLLATE "C"', False),
        ("id + 1", False),
        ("timeout_seconds * 2", True),
        ("-retry_attempts", False),
        ("name || '!'", False),
        ("name || description", True),
        ("id = 1", False),
        ("timeout_seconds > 0", True),
        ("is_paused AND id > 0", False),
        ("NOT is_paused", False),
        ("is_paused OR timeout_seconds > 1", True),
        ("name LIKE 'a%'", False),
        ("description ILIKE 'a%'", True),
        ("id BETWEEN 1 AND 10", False),
        ("id IN (1, 2, 3)", False),
        ("id IN (1, NULL)", True),
        ("id = ANY(ARRAY[1, 2])", False),
        ("id = ANY($1)", True),
        ("description IS NULL", False),
        ("description IS NOT NULL", False),
        ("description IS DISTINCT FROM name", False),
        ("description IS NOT DISTINCT FROM name", False),
        ("timeout_seconds > 0 IS TRUE", False),
        ("name IS JSON", False),
        ("description IS NOT JSON", True),
        ("NULLIF(name, '')", True),
        ("COALESCE(description, name)", False),
        ("COALESCE(description, schedule_expression)", True),
        ("GREATEST(timeout_seconds, 0)", False),
        ("LEAST(timeout_seconds, NULL)", True),
        ("CASE WHEN is_paused THEN 'p' ELSE 'r' END", False),
        ("CASE WHEN is_paused THEN 'p' END", True),
        ("CASE WHEN is_paused THEN description ELSE 'r' END", True),
        ("CASE id WHEN 1 THEN 'one' ELSE 'many' END", False),
        ("ARRAY[description]", False),
        ("ROW(description, 1)", False),
        ("(ROW(1, description) = ROW(1, 'x'))", True),
        ("environment_variables -> 'a'", True),
        ("environment_variables ->> 'a'", True),
        ("environment_variables @> '{}'", False),
        ("environment_variables || '{}'", False),
        ("(ARRAY[1, 2])[1]", True),
        ("current_timestamp", False),
        ("current_date", False),
        ("current_user", False),
        ("current_schema", True),
        ("EXISTS (SELECT 1 FROM users)", False),
        ("ARRAY(SELECT id FROM users)", False),
        ("(SELECT id FROM users LIMIT 1)", True),
        ("id IN (SELECT pipeline_id FROM pipeline_steps)", False),
        ("id IN (SELECT timeout_seconds FROM pipelines)", True),
    ],
)
def test_expression_rules(expression: str, is_nullable: bool) -> None:
    assert nullable(f"SELECT {expression} FROM pipelines") == [is_nullable]


@pytest.mark.parametrize(
    ("call", "is_nullable"),
    [
        ("lower(name)", False),
        ("upper(description)", True),
        ("length(name)", False),
        ("char_length(name)", False),
        ("concat(description, NULL)", False),
        ("concat_ws(',', description)", False),
        ("format('%s', description)", False),
        ("now()", False),
        ("gen_random_uuid()", False),
        ("jsonb_build_object('a', description)", False),
        ("json_build_object('a', NULL)", False),
        ("jsonb_build_array(description)", False),
        ("to_jsonb(name)", False),
        ("to_jsonb(description)", True),
        ("date_trunc('day', created_at)", False),
        ("extract(epoch FROM created_at)", False),
        ("extract(day FROM created_at)", True),
        ("date_part('year', created_at)", False),
        ("to_char(created_at, 'YYYY')", True),
        ("abs(retry_attempts)", False),
        ("round(retry_attempts / 3.0, 2)", False),
        ("btrim(name)", False),
        ("trim(name)", False),
        ("replace(name, 'a', 'b')", False),
        ("substring(name FROM 1 FOR 3)", False),
        ("substring(name FROM 'a.')", True),
        ("left(name, 3)", False),
        ("md5(name)", False),
        ("array_length(ARRAY[1], 1)", True),
        ("cardinality(ARRAY[1])", False),
        ("created_at AT TIME ZONE 'UTC'", False),
        ("pg_catalog.lower(name)", False),
        ("myschema.lower(name)", True),
        ("my_function(name)", True),
    ],
)
def test_function_rules(call: str, is_nullable: bool) -> None:
    assert nullable(f"SELECT {call} FROM pipelines") == [is_nullable]


def test_unknown_function_reason_names_the_function() -> None:
    assert reasons("SELECT my_function(1)") == [
        "nullable: function my_function() is not known to return non-null"
    ]


def test_coalesce_with_literal_is_non_null() -> None:
    assert infer("SELECT COALESCE(description, 'none') FROM pipelines") == [
        Nullability(False, "non-null: COALESCE with a non-null argument (literal)")
    ]


def test_case_without_else_reason() -> None:
    assert reasons("SELECT CASE WHEN id > 1 THEN 1 END FROM pipelines") == [
        "nullable: CASE without ELSE"
    ]


def test_scalar_subquery_that_may_return_no_row_is_nullable() -> None:
    sql = "SELECT (SELECT name FROM pipelines WHERE id = $1)"
    assert infer(sql) == [Nullability(True, "nullable: scalar subquery may return no row")]


def test_scalar_count_subquery_always_returns_one_non_null_row() -> None:
    sql = """
        SELECT (SELECT count(*) FROM pipeline_steps s WHERE s.pipeline_id = p.id) FROM pipelines p
    """
    assert nullable(sql) == [False]


def test_scalar_aggregate_subquery_with_limit_may_return_no_row() -> None:
    sql = "SELECT (SELECT count(*) FROM pipeline_steps LIMIT $1)"
    assert nullable(sql) == [True]


def test_scalar_subquery_whose_aggregate_belongs_to_the_outer_query_may_return_no_row() -> None:
    sql = "SELECT (SELECT count(p.id) FROM users u) FROM pipelines p"
    assert nullable(sql) == [True]


def test_parameters_are_non_null_unless_declared_nullable() -> None:
    assert nullable("SELECT $1, $2") == [False, False]
    assert [n.nullable for n in infer("SELECT $1, $2", nullable_params=frozenset({2}))] == [
        False,
        True,
    ]


def test_where_is_not_null_proves_a_left_joined_column_non_null() -> None:
    sql = """
        SELECT s.position, s.plugin_id
        FROM pipelines p LEFT JOIN pipeline_steps s ON s.pipeline_id = p.id
        WHERE s.position IS NOT NULL AND p.is_paused
    """
    assert infer(sql) == [
        Nullability(False, "non-null: WHERE s.position IS NOT NULL"),
        Nullability(True, "nullable: right side of LEFT JOIN s"),
    ]


def test_where_is_not_null_under_or_proves_nothing() -> None:
    sql = "SELECT description FROM pipelines WHERE description IS NOT NULL OR id > 1"
    assert nullable(sql) == [True]


# --- set operations -------------------------------------------------------------------------


def test_union_column_is_nullable_if_any_branch_is() -> None:
    sql = "SELECT name, id FROM pipelines UNION SELECT description, id FROM pipelines"
    assert nullable(sql) == [True, False]


def test_union_all_of_non_null_branches_is_non_null() -> None:
    sql = "SELECT name FROM pipelines UNION ALL SELECT username FROM users"
    assert nullable(sql) == [False]


@pytest.mark.parametrize("operation", ["INTERSECT", "EXCEPT"])
def test_intersect_and_except_follow_the_left_branch(operation: str) -> None:
    sql = f"SELECT name, description FROM pipelines {operation} SELECT username, email FROM users"
    assert nullable(sql) == [False, True]


def test_distinct_order_by_and_limit_do_not_change_nullability() -> None:
    sql = "SELECT DISTINCT name, description FROM pipelines ORDER BY name LIMIT 5 OFFSET 2"
    assert nullable(sql) == [False, True]


def test_top_level_values_statement() -> None:
    assert nullable("VALUES (1, NULL), (2, 'x')") == [False, True]


# --- markers --------------------------------------------------------------------------------


def test_bang_marker_forces_non_null() -> None:
    assert infer('SELECT description AS "description!" FROM pipelines') == [
        Nullability(False, "non-null: forced by the ! marker")
    ]


def test_question_marker_forces_nullable() -> None:
    assert infer('SELECT name AS "name?" FROM pipelines') == [
        Nullability(True, "nullable: forced by the ? marker")
    ]


def test_marker_applies_in_returning() -> None:
    sql = 'UPDATE pipelines SET name = $1 RETURNING description AS "description!"'
    assert nullable(sql) == [False]


# --- INSERT / UPDATE / DELETE / MERGE -------------------------------------------------------


def test_insert_returning_follows_the_target_columns() -> None:
    sql = """
        INSERT INTO pipelines (name, description) VALUES ($1, $2)
        RETURNING id, name, description, created_at
    """
    assert nullable(sql) == [False, False, True, False]


def test_insert_on_conflict_do_nothing_returning_is_still_per_column() -> None:
    sql = (
        "INSERT INTO users (username) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id, display_name"
    )
    assert nullable(sql) == [False, True]


def test_insert_with_target_alias() -> None:
    sql = "INSERT INTO pipelines AS p (name) VALUES ($1) RETURNING p.id, p.timeout_seconds"
    assert nullable(sql) == [False, True]


def test_update_from_other_table_returning_both() -> None:
    sql = """
        UPDATE pipeline_steps s SET plugin_id = pl.id FROM plugins pl
        WHERE pl.name = $1 RETURNING s.id, pl.variant, pl.version
    """
    assert nullable(sql) == [False, True, False]


def test_delete_returning_follows_the_target_columns() -> None:
    assert nullable("DELETE FROM pipelines WHERE id = $1 RETURNING id, description") == [
        False,
        True,
    ]


def test_returning_old_and_new_rows() -> None:
    sql = "UPDATE pipelines SET name = $1 RETURNING old.name, new.name"
    assert nullable(sql) == [False, False]
    assert nullable("DELETE FROM pipelines RETURNING old.name, new.name") == [False, True]
    assert nullable("INSERT INTO pipelines (name) VALUES ($1) RETURNING old.name, new.name") == [
        True,
        False,
    ]


def test_returning_expressions_follow_expression_rules() -> None:
    sql = "UPDATE pipelines SET name = $1 RETURNING upper(name), timeout_seconds + 1, 42"
    assert nullable(sql) == [False, True, False]


def test_statement_without_returning_has_no_columns() -> None:
    assert infer("UPDATE pipelines SET name = $1 WHERE id = $2") == []
    assert infer("CREATE TABLE t (a int)") == []


def test_merge_returning_makes_source_nullable_when_not_matched_by_source() -> None:
    sql = """
        MERGE INTO pipelines p USING users u ON p.name = u.username
        WHEN MATCHED THEN UPDATE SET description = u.email
        WHEN NOT MATCHED BY SOURCE THEN DELETE
        RETURNING merge_action(), p.name, u.email
    """
    assert nullable(sql) == [False, False, True]


# --- unparseable and unsupported statements -------------------------------------------------


def test_unparseable_sql_raises_nullability_parse_error_with_reason() -> None:
    with pytest.raises(NullabilityParseError) as caught:
        infer("SELEC 1")
    assert caught.value.reason.startswith("nullable: cannot parse the statement")


def test_several_statements_raise_nullability_parse_error() -> None:
    with pytest.raises(NullabilityParseError, match="expected one statement, found 2"):
        infer("SELECT 1; SELECT 2")


def test_row_returning_utility_statement_raises_nullability_parse_error() -> None:
    with pytest.raises(NullabilityParseError, match="cannot analyse ExplainStmt"):
        infer("EXPLAIN SELECT 1")


def test_star_over_relation_of_unknown_shape_raises_nullability_parse_error() -> None:
    with pytest.raises(NullabilityParseError, match="cannot determine the output columns"):
        infer("SELECT * FROM jsonb_to_record($1) AS r(a int)")


def test_unhandled_construct_is_nullable_with_the_node_name() -> None:
    assert reasons("SELECT xmlelement(name foo)") == ["nullable: cannot analyse XmlExpr"]


# --- real-world shaped queries --------------------------------------------------------------


def test_keyset_page_query() -> None:
    sql = """
        SELECT id, name, description, created_at
        FROM pipelines
        WHERE (created_at, id) > ($1, $2)
        ORDER BY created_at, id
        LIMIT $3
    """
    assert nullable(sql) == [False, False, True, False]


def test_nested_load_with_jsonb_agg_filter_and_coalesce() -> None:
    sql = """
        SELECT p.id, p.name,
               COALESCE(
                   jsonb_agg(
                       jsonb_build_object('id', s.id, 'position', s.position, 'plugin', pl.name)
                       ORDER BY s.position
                   ) FILTER (WHERE s.id IS NOT NULL),
                   '[]'
               ) AS steps,
               jsonb_agg(s.id) AS raw_steps
        FROM pipelines p
        LEFT JOIN pipeline_steps s ON s.pipeline_id = p.id
        LEFT JOIN plugins pl ON pl.id = s.plugin_id
        WHERE p.id = $1
        GROUP BY p.id
    """
    assert nullable(sql) == [False, False, False, True]


def test_update_returning_query() -> None:
    sql = """
        UPDATE pipeline_executions
        SET status = 'succeeded', finished_at = now(), rows_processed = $2
        WHERE id = $1 AND status = 'running'
        RETURNING id, status, finished_at, rows_processed, error
    """
    assert nullable(sql) == [False, False, True, True, True]


def test_claim_query_with_cte_for_update_skip_locked() -> None:
    sql = """
        WITH next AS (
            SELECT id FROM pipeline_executions
            WHERE status = 'queued'
            ORDER BY queued_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE pipeline_executions e
        SET status = 'running', started_at = now()
        FROM next
        WHERE e.id = next.id
        RETURNING e.id, e.pipeline_id, e.attempt, e.started_at, next.id AS claimed_id
    """
    assert nullable(sql) == [False, False, False, True, False]


def test_failure_rate_query_with_count_filter_and_nullif() -> None:
    sql = """
        SELECT p.id, p.name,
               count(*) FILTER (WHERE e.status = 'failed') AS failures,
               count(e.id) AS runs,
               count(*) FILTER (WHERE e.status = 'failed')::float8 / NULLIF(count(e.id), 0) AS rate,
               COALESCE(count(*) FILTER (WHERE e.status = 'failed')::float8
                        / NULLIF(count(e.id), 0), 0) AS rate_or_zero
        FROM pipelines p
        LEFT JOIN pipeline_executions e
               ON e.pipeline_id = p.id AND e.queued_at > now() - interval '1 day'
        GROUP BY p.id, p.name
    """
    assert nullable(sql) == [False, False, False, False, True, False]


def test_recursive_cte_for_topological_order() -> None:
    sql = """
        WITH RECURSIVE ordered(id, name, depth, path) AS (
            SELECT c.id, c.name, 0, ARRAY[c.id]
            FROM components c
            WHERE c.job_id = $1
              AND NOT EXISTS (SELECT 1 FROM component_dependencies d WHERE d.component_id = c.id)
            UNION ALL
            SELECT c.id, c.name, o.depth + 1, o.path || c.id
            FROM ordered o
            JOIN component_dependencies d ON d.depends_on_id = o.id
            JOIN components c ON c.id = d.component_id
            WHERE NOT c.id = ANY(o.path)
        )
        SELECT id, name, max(depth) AS depth
        FROM ordered
        GROUP BY id, name
        ORDER BY max(depth), name
    """
    assert nullable(sql) == [False, False, True]


def test_user_permissions_through_roles_query() -> None:
    sql = """
        SELECT u.id, u.username, COALESCE(array_agg(u.email) FILTER (WHERE u.is_active), '{}')
        FROM users u
        WHERE u.id = $1
        GROUP BY u.id
    """
    assert nullable(sql) == [False, False, False]


def test_data_modifying_cte_feeds_its_returning_columns() -> None:
    sql = """
        WITH moved AS (
            UPDATE pipeline_executions SET status = 'queued' WHERE id = $1
            RETURNING id, error
        )
        SELECT moved.id, moved.error FROM moved
    """
    assert nullable(sql) == [False, True]


def test_join_using_alias_names_the_merged_columns() -> None:
    sql = "SELECT j.id FROM pipelines LEFT JOIN pipeline_steps USING (id) AS j"
    assert nullable(sql) == [False]


def test_like_with_escape_of_non_null_operands_is_non_null() -> None:
    assert nullable("SELECT name LIKE 'a!%' ESCAPE '!' FROM pipelines") == [False]


def test_geometric_intersection_operator_is_nullable() -> None:
    assert nullable("SELECT lseg '[(0,0),(1,1)]' # lseg '[(2,0),(3,1)]'") == [True]


def test_nested_reason_names_the_root_cause() -> None:
    sql = "SELECT lower(s.position::text) FROM pipelines p LEFT JOIN pipeline_steps s ON true"
    assert reasons(sql) == ["nullable: lower() of a nullable operand (right side of LEFT JOIN s)"]


def test_recursive_cte_cycle_clause_adds_non_null_columns() -> None:
    sql = """
        WITH RECURSIVE walk(id) AS (
            SELECT id FROM components
            UNION ALL
            SELECT d.depends_on_id
            FROM walk JOIN component_dependencies d ON d.component_id = walk.id
        ) CYCLE id SET is_cycle USING path
        SELECT id, is_cycle, path FROM walk
    """
    assert nullable(sql) == [False, False, False]


def test_subquery_output_names_follow_postgres_defaults() -> None:
    sql = """
        SELECT q.count, q.lower, q.current_date, q.exists
        FROM (SELECT (SELECT count(*) FROM users), lower(name), current_date,
                     EXISTS (SELECT 1 FROM users)
              FROM pipelines) AS q
    """
    assert nullable(sql) == [False, False, False, False]


def test_aggregate_over_relation_of_unknown_shape_is_not_assumed_local() -> None:
    sql = """
        SELECT (SELECT count(x) FROM jsonb_to_record($1) AS r(a int)) FROM (SELECT 1 AS x) AS o
    """
    assert nullable(sql) == [True]


@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("SELECT x.y.z FROM pipelines x", 1),
        ("SELECT (p).name FROM pipelines p", 1),
        ("SELECT 'a' IS NORMALIZED, 'a' IS JSON OBJECT", 2),
        ("SELECT json_array(SELECT 1), json_value('{}', '$.a')", 2),
        ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY position) FROM pipeline_steps", 1),
        ("SELECT * FROM pipelines NATURAL FULL JOIN pipeline_steps", 16),
        ("SELECT * FROM pipelines p, LATERAL (SELECT * FROM pipeline_steps) s", 18),
        ("TABLE pipelines", 12),
        ("SELECT FROM pipelines", 0),
        ("UPDATE pipelines SET (name, description) = (SELECT 'a', 'b') RETURNING *", 12),
        ("DELETE FROM pipelines p USING pipeline_steps s RETURNING p.*, s.*", 18),
        ("SELECT * FROM pipelines TABLESAMPLE BERNOULLI (10)", 12),
        ("SELECT current_setting('x'), pg_typeof(1), OPERATOR(pg_catalog.+)(1, 2)", 3),
    ],
)
def test_unusual_statements_yield_one_answer_per_output_column(sql: str, count: int) -> None:
    assert len(infer(sql)) == count


def test_json_set_returning_functions_in_from_name_their_value_column() -> None:
    sql = """
        SELECT e.value, t.value, k.k
        FROM pipelines p
        CROSS JOIN LATERAL jsonb_array_elements(p.environment_variables) AS e
        CROSS JOIN LATERAL jsonb_array_elements_text(p.environment_variables) AS t
        CROSS JOIN LATERAL jsonb_object_keys(p.environment_variables) AS k
    """
    assert nullable(sql) == [False, True, False]
