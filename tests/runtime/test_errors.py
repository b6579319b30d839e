"""Each error class from a real violation, with its fields, and messages free of values."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

import etlstore
from etlstore.errors import (
    CheckViolation,
    Conflict,
    InvalidReference,
    InvalidValue,
    NotFound,
    NotNullViolation,
    QueryTimeout,
    SerializationConflict,
)

_SECRET_VALUE = "value-7d1c0e"


@pytest.fixture
async def shop(db: etlstore.Database) -> etlstore.Database:
    await db.execute(
        """
        DROP TABLE IF EXISTS orders, invoices, customers;
        CREATE TABLE customers (
            id int PRIMARY KEY,
            email text NOT NULL,
            region text,
            credit int CHECK (credit >= 0),
            CONSTRAINT customers_email_region_key UNIQUE (email, region)
        );
        CREATE UNIQUE INDEX customers_lower_email ON customers (lower(email), id);
        CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers (id));
        INSERT INTO customers VALUES (1, 'value-7d1c0e', 'eu', 10);
        """
    )
    return db


async def test_unique_violation_is_a_conflict_naming_constraint_and_columns(
    shop: etlstore.Database,
) -> None:
    with pytest.raises(Conflict) as raised:
        await shop.execute(
            "-- create_customer (sql/customers.sql:9)\nINSERT INTO customers VALUES ($1, $2, $3)",
            2,
            _SECRET_VALUE,
            "eu",
        )
    error = raised.value
    assert (error.schema, error.table) == ("public", "customers")
    assert error.constraint == "customers_email_region_key"
    assert error.columns == ("email", "region")
    assert (error.query, error.sqlstate) == ("create_customer", "23505")
    assert str(error) == (
        "query create_customer: duplicate key violates unique constraint "
        "customers_email_region_key on public.customers (columns: email, region)"
    )
    assert isinstance(error.__cause__, asyncpg.UniqueViolationError)
    assert _SECRET_VALUE not in str(error)


async def test_primary_key_violation_in_a_transaction_is_a_conflict_on_the_key(
    shop: etlstore.Database,
) -> None:
    with pytest.raises(Conflict) as raised:
        async with shop.transaction() as tx:
            await tx.execute("INSERT INTO customers VALUES (1, 'x', 'us', 0)")
    assert (raised.value.constraint, raised.value.columns) == ("customers_pkey", ("id",))


async def test_foreign_key_violation_is_an_invalid_reference(shop: etlstore.Database) -> None:
    with pytest.raises(InvalidReference) as raised:
        await shop.execute("INSERT INTO orders VALUES (1, $1)", 424242)
    error = raised.value
    assert (error.table, error.constraint, error.columns) == (
        "orders",
        "orders_customer_id_fkey",
        ("customer_id",),
    )
    assert "424242" not in str(error)


async def test_deleting_a_row_still_referred_to_under_restrict_is_an_invalid_reference(
    shop: etlstore.Database,
) -> None:
    await shop.execute(
        "CREATE TABLE invoices (id int PRIMARY KEY, customer_id int"
        " CONSTRAINT invoices_customer_fkey REFERENCES customers ON DELETE RESTRICT);"
        "INSERT INTO invoices VALUES (1, 1)"
    )
    with pytest.raises(InvalidReference) as raised:
        await shop.execute("DELETE FROM customers WHERE id = $1", 1)
    error = raised.value
    assert (error.sqlstate, error.constraint, error.columns) == (
        "23001",
        "invoices_customer_fkey",
        ("customer_id",),
    )


async def test_check_violation_names_constraint_and_column(shop: etlstore.Database) -> None:
    with pytest.raises(CheckViolation) as raised:
        await shop.execute("UPDATE customers SET credit = $1 WHERE id = 1", -987654)
    error = raised.value
    assert (error.constraint, error.columns) == ("customers_credit_check", ("credit",))
    assert "-987654" not in str(error)
    assert _SECRET_VALUE not in str(error)


async def test_not_null_violation_names_the_column(shop: etlstore.Database) -> None:
    with pytest.raises(NotNullViolation) as raised:
        await shop.execute("INSERT INTO customers (id, region) VALUES (5, $1)", _SECRET_VALUE)
    error = raised.value
    assert (error.table, error.column) == ("customers", "email")
    assert str(error) == "query (unnamed): NULL in NOT NULL column email of public.customers"


async def test_a_bad_enum_label_is_an_invalid_value_without_the_value(
    db: etlstore.Database,
) -> None:
    await db.execute(
        "DROP TABLE IF EXISTS moods; DROP TYPE IF EXISTS mood;"
        "CREATE TYPE mood AS ENUM ('calm', 'busy'); CREATE TABLE moods (m mood NOT NULL)"
    )
    with pytest.raises(InvalidValue) as raised:
        await db.execute("-- set_mood (sql/moods.sql:1)\nINSERT INTO moods VALUES ($1)", "sec-4411")
    error = raised.value
    assert (error.sqlstate, error.condition) == ("22P02", "invalid_text_representation")
    assert str(error) == (
        "query set_mood: invalid data: invalid_text_representation (SQLSTATE 22P02)"
    )
    assert isinstance(error.__cause__, asyncpg.InvalidTextRepresentationError)


async def test_a_number_out_of_range_is_an_invalid_value(db: etlstore.Database) -> None:
    with pytest.raises(InvalidValue) as raised:
        await db.fetchval("SELECT $1::int + 1", 2**31 - 1)
    assert raised.value.condition == "numeric_value_out_of_range"


async def test_statement_timeout_is_a_query_timeout(runtime_dsn: str) -> None:
    async with etlstore.connect(runtime_dsn, max_size=1, statement_timeout=0.05) as db:
        with pytest.raises(QueryTimeout, match="statement timeout") as raised:
            await db.fetchval("-- slow_one (t)\nSELECT pg_sleep(5)")
        assert raised.value.sqlstate == "57014"
        assert await db.fetchval("SELECT 1") == 1


async def test_client_side_timeout_is_a_query_timeout(db: etlstore.Database) -> None:
    with pytest.raises(QueryTimeout, match="client-side timeout"):
        await db.fetchval("SELECT pg_sleep(5)", timeout=0.05)
    assert await db.fetchval("SELECT 1") == 1


async def test_lock_timeout_is_a_query_timeout(shop: etlstore.Database, runtime_dsn: str) -> None:
    async with (
        etlstore.connect(runtime_dsn, max_size=1, lock_timeout=0.05) as impatient,
        shop.transaction() as holder,
    ):
        await holder.execute("SELECT 1 FROM customers WHERE id = 1 FOR UPDATE")
        with pytest.raises(QueryTimeout) as raised:
            await impatient.execute("UPDATE customers SET credit = 1 WHERE id = 1")
        assert raised.value.sqlstate == "55P03"


async def test_deadlock_is_a_serialization_conflict(shop: etlstore.Database) -> None:
    await shop.execute("INSERT INTO customers VALUES (2, 'b', 'eu', 1)")
    both_locked = asyncio.Barrier(2)

    async def lock(first: int, second: int) -> None:
        async with shop.transaction() as tx:
            # Detect the deadlock at once rather than after the default second.
            await tx.execute("SET LOCAL deadlock_timeout = '10ms'")
            await tx.execute("UPDATE customers SET credit = credit + 1 WHERE id = $1", first)
            await both_locked.wait()
            await tx.execute("UPDATE customers SET credit = credit + 1 WHERE id = $1", second)

    results = await asyncio.gather(lock(1, 2), lock(2, 1), return_exceptions=True)
    conflicts = [r for r in results if isinstance(r, SerializationConflict)]
    assert len(conflicts) == 1
    assert conflicts[0].sqlstate == "40P01"
    assert conflicts[0].retryable


async def test_plpgsql_no_data_found_is_not_found(db: etlstore.Database) -> None:
    with pytest.raises(NotFound):
        await db.execute("DO $$ DECLARE x int; BEGIN SELECT 1 INTO STRICT x WHERE false; END $$")


async def test_programming_errors_pass_through_unchanged(db: etlstore.Database) -> None:
    with pytest.raises(asyncpg.PostgresSyntaxError) as raised:
        await db.fetch("SELEC 1")
    assert type(raised.value) is asyncpg.PostgresSyntaxError
