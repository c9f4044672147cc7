"""Fixtures shared by unit and integration tests: node keys and private Mosquitto brokers.

Ports: `simulators.localnet.free_port` / `wait_for_port`."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust import keys
from simulators.mosquitto import PrivateMosquitto, mosquitto_binary

Broker = PrivateMosquitto  # the name tests use


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator:
    """Factory: `make_broker(extra_config="")` starts a private Mosquitto on a free port."""
    try:
        mosquitto_binary()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (or run `bash scripts/test.sh`, which installs it)")
    brokers: list[Broker] = []

    def start(extra_config: str = "") -> Broker:
        broker = Broker.in_folder(tmp_path / f"broker{len(brokers)}", extra_config).start()
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        broker.kill()


@pytest.fixture
def broker(make_broker) -> Broker:
    return make_broker()


@pytest.fixture
def node_key(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey, str]:
    """A fresh node key on disk: (path, private key, key id); `<path>.pub` beside it."""
    path = tmp_path / "keys" / "node.key"
    private_key, kid = keys.generate(path)
    return path, private_key, kid


# ----------------------------------------------------------------------------- fleet stores

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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> Iterator[str]:
    """The same test against a SQLite file and a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "fleet.sqlite")
        return
    with throwaway_postgres() as url:
        yield url
