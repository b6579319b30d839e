"""etlstore: a raw-SQL data access layer with code generation for PostgreSQL."""

from etlstore import errors
from etlstore._connect import connect
from etlstore._database import Database, Health, PoolStats, Stats
from etlstore._observability import QueryStats
from etlstore._replicas import ReplicaExecutor, ReplicaStatus
from etlstore._transaction import Transaction
from etlstore.errors import ReadOnly

__all__ = [
    "Database",
    "Health",
    "PoolStats",
    "QueryStats",
    "ReadOnly",
    "ReplicaExecutor",
    "ReplicaStatus",
    "Stats",
    "Transaction",
    "connect",
    "errors",
]
