"""etlstore: a raw-SQL data access layer with code generation for PostgreSQL."""

__all__: list[str] = []
