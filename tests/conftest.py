"""Fixtures shared by unit and integration tests: node keys and private Mosquitto brokers.

Ports: `simulators.localnet.free_port` / `wait_for_port`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust import keys
from simulators.mosquitto import PrivateMosquitto, mosquitto_binary
from stores import throwaway_postgres

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

@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> Iterator[str]:
    """The same test against a SQLite file and a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "fleet.sqlite")
        return
    with throwaway_postgres() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database, for what only PostgreSQL serves (several processes)."""
    with throwaway_postgres() as url:
        yield url
