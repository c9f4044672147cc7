"""Hostile input for the config loader: any file content and any TOML-shaped data either
loads or fails with ConfigError whose every line names the file and says what is wrong;
nothing else escapes and nothing hangs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import Config, ConfigError, load, validate

REPO = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
EXAMPLE = tomllib.loads((REPO / "config" / "agent.toml").read_text())

toml_values = st.recursive(
    st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.sampled_from(["30s", "5m", "-1s", "mqtts://h:8883", "mqtt://", "x" * 70, "", "../../etc/passwd"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)


def assert_loads_or_explains(attempt, source: str) -> None:
    try:
        config = attempt()
    except ConfigError as exc:
        assert exc.problems
        for line in exc.problems:
            assert line.startswith(f"{source}: ") and len(line) > len(source) + 4, line
    else:
        assert isinstance(config, Config)


@FUZZ
@given(st.binary(max_size=400))
def test_any_file_content_loads_or_explains(tmp_path_factory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "agent.toml"
    path.write_bytes(content)
    assert_loads_or_explains(lambda: load(path), str(path))


@FUZZ
@given(st.dictionaries(st.text(max_size=12), toml_values, max_size=6))
def test_any_data_validates_or_explains(data) -> None:
    assert_loads_or_explains(lambda: validate(data, "fuzz.toml"), "fuzz.toml")


def leaf_paths(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield prefix + (key,)
            yield from leaf_paths(value, prefix + (key,))


PATHS = sorted(leaf_paths(EXAMPLE))


@FUZZ
@given(st.sampled_from(PATHS), toml_values)
def test_example_with_one_value_replaced_validates_or_explains(path, value) -> None:
    data = tomllib.loads((REPO / "config" / "agent.toml").read_text())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert_loads_or_explains(lambda: validate(data, "agent.toml", REPO / "config"), "agent.toml")


def test_the_example_itself_is_valid() -> None:
    assert validate(EXAMPLE, "agent.toml").node.id


@pytest.mark.parametrize("content", [b"a = " + b"[" * 5000 + b"]" * 5000, b"x = '" + b"a" * 200_000 + b"'",
                                     b"[node]\nid = " + b"1" * 50_000])
def test_pathological_files_finish(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(content)
    assert_loads_or_explains(lambda: load(path), str(path))
