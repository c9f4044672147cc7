"""Throwaway PostgreSQL databases for tests (127.0.0.1:5432, user postgres, trust auth;
`bash scripts/test.sh` installs and starts the server where it is missing)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import pytest

POSTGRES_ADMIN = os.environ.get("EDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped WITH (FORCE) afterwards."""
    import psycopg

    name = f"edge_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN} is not reachable ({exc}); `bash scripts/test.sh` starts it")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
