"""Facts about PostgreSQL's builtin functions and operators that the nullability analysis uses.

Each set is an allow-list (from pg_proc and pg_operator, checked by hand): a name missing here is
treated as possibly returning NULL, which is always the safe answer.
"""

from __future__ import annotations

__all__ = [
    "AGGREGATES",
    "ALWAYS_NON_NULL_FUNCTIONS",
    "FIRST_ARGUMENT_FUNCTIONS",
    "INFINITY_SAFE_FIELDS",
    "NON_NULL_OPERATORS",
    "RANKING_WINDOW_FUNCTIONS",
    "STRICT_NON_NULL_FUNCTIONS",
    "VALUE_WINDOW_FUNCTIONS",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Aggregates that return NULL over no rows (or only NULL inputs); count() is the exception.
AGGREGATES = _words(
    """
    any_value array_agg avg bit_and bit_or bit_xor bool_and bool_or corr covar_pop covar_samp
    every json_agg json_agg_strict json_object_agg json_object_agg_strict
    json_object_agg_unique json_object_agg_unique_strict jsonb_agg jsonb_agg_strict
    jsonb_object_agg jsonb_object_agg_strict jsonb_object_agg_unique
    jsonb_object_agg_unique_strict max min mode percentile_cont percentile_disc range_agg
    range_intersect_agg regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx
    regr_sxy regr_syy stddev stddev_pop stddev_samp string_agg sum var_pop var_samp variance xmlagg
    """
)

RANKING_WINDOW_FUNCTIONS = _words("row_number rank dense_rank percent_rank cume_dist")
VALUE_WINDOW_FUNCTIONS = _words("lag lead first_value last_value nth_value")

# Return a non-NULL value whatever their arguments (NULL arguments are skipped or rendered).
ALWAYS_NON_NULL_FUNCTIONS = _words(
    """
    concat json_build_array json_build_object jsonb_build_array jsonb_build_object num_nonnulls
    num_nulls quote_nullable
    """
)

# Non-NULL when their first argument (the separator or format string) is non-NULL.
FIRST_ARGUMENT_FUNCTIONS = frozenset(("concat_ws", "format"))

# Strict functions that never return NULL for non-NULL arguments. Deliberately absent:
# array_length/array_lower/array_upper/array_dims/array_ndims (NULL for an empty array),
# array_position, regexp_match, substring (its regex forms), jsonb_extract_path,
# jsonb_path_query_first, to_char and extract/date_part (NULL for infinite timestamps; the
# analysis accepts extract of the fields that stay infinite), scale/min_scale (NULL for NaN),
# uuid_extract_*.
STRICT_NON_NULL_FUNCTIONS = _words(
    """
    abs age array_append array_cat array_fill array_positions array_prepend array_remove
    array_replace array_reverse array_sample array_shuffle array_sort array_to_json
    array_to_string ascii bit_length btrim cardinality casefold cbrt ceil ceiling char_length
    character_length chr clock_timestamp convert_from convert_to crc32 crc32c current_database
    date_add date_bin date_subtract date_trunc decode degrees div encode exp factorial floor
    gcd gen_random_uuid initcap isfinite json_array_length json_object like_escape
    json_strip_nulls json_typeof jsonb_array_length jsonb_insert jsonb_object jsonb_pretty
    jsonb_set jsonb_set_lax jsonb_strip_nulls jsonb_typeof justify_days justify_hours
    justify_interval lastval lcm left length ln log log10 lower lpad ltrim make_date make_interval
    make_time make_timestamp make_timestamptz md5 mod nextval normalize now
    octet_length overlay pg_backend_pid pg_current_xact_id pg_try_advisory_lock
    pg_try_advisory_xact_lock pi position pow power quote_ident quote_literal radians random
    random_normal regexp_count regexp_instr regexp_like regexp_replace repeat replace reverse
    right round row_to_json rpad rtrim setval sha224 sha256 sha384 sha512 sign
    similar_to_escape split_part sqrt starts_with statement_timestamp strpos string_to_array
    substr timeofday timezone to_date to_hex to_json to_jsonb to_number to_timestamp
    transaction_timestamp translate trim_array trim_scale trunc txid_current upper uuidv4 uuidv7
    version width_bucket
    """
)

# extract()/date_part() fields that stay (+/-)Infinity, not NULL, for infinite inputs.
INFINITY_SAFE_FIELDS = frozenset(("epoch", "year", "decade", "century", "millennium"))

# Operators that never return NULL for non-NULL operands. Deliberately absent: -> ->> #> #>>
# (NULL for a missing key), @@ and @? (NULL for an unknown jsonpath result), # (NULL when
# two geometric objects do not intersect).
NON_NULL_OPERATORS = _words(
    """
    = <> != < > <= >= + - * / % ^ |/ ||/ @ & | ~ << >> || ~~ ~~* !~~ !~~* ~* !~ !~* @> <@ &&
    ? ?| ?& #- ^@ -|- &< &> <<| |>>
    """
)
