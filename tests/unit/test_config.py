import subprocess
import sys
from pathlib import Path

import pytest

from agent import config
from agent.trust import keys

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = '[node]\nid = "panel-1"\n[signing]\nkey_file = "node.key"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", ["config/agent.toml", "simulators/demo/demo.toml"])
def test_shipped_configs_load(path):
    loaded = config.load(ROOT / path)
    assert loaded.node.id


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    loaded = config.load(write(tmp_path, MINIMAL))
    assert loaded.signing.key_file == tmp_path / "node.key"


def test_durations_accept_units(tmp_path):
    loaded = config.load(write(tmp_path, MINIMAL + '[collectors.host]\ninterval = "2m"\n'))
    assert loaded.collectors.host.interval == 120.0


@pytest.mark.parametrize("extra, expected", [
    ('[mqtt]\nurl = "http://broker"\n', "mqtt.url: 'http://broker' is not a broker URL"),
    ('[mqtt]\nqos = 2\n', "mqtt.qos: must be 0 or 1"),
    ('[mqtt]\nurl = "mqtt://user:pw@broker"\n', "mqtt.url: put no credentials in the URL"),
    ('[collectors.host]\ninterval = "soon"\n', "collectors.host.interval: 'soon' is not a duration"),
    ('[collectors.host]\ninterval = 0\n', "collectors.host.interval: must be longer than zero"),
    ('[colectors]\n', "colectors: unknown field"),
    ('[mqtt.tls]\ncert_file = "c.pem"\n', "mqtt.tls: set both cert_file and key_file"),
])
def test_each_problem_names_file_field_and_fix(tmp_path, extra, expected):
    path = write(tmp_path, MINIMAL + extra)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert any(line.startswith(f"{path}: {expected}") for line in caught.value.problems), caught.value.problems


def test_missing_required_fields_are_listed_one_per_line(tmp_path):
    path = write(tmp_path, "[node]\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert caught.value.problems == [
        f"{path}: node.id: required field is missing: add it",
        f"{path}: signing: required field is missing: add it",
    ]


def test_toml_syntax_error_names_the_file(tmp_path):
    path = write(tmp_path, "[node\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert caught.value.problems[0].startswith(f"{path}: TOML syntax error:")


def test_check_config_cli_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, MINIMAL + '[mqtt]\nqos = 7\n')
    result = subprocess.run([sys.executable, "-m", "agent.cli", "check-config", "-c", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: mqtt.qos: must be 0 or 1 (got 7)"
    assert "Traceback" not in result.stderr


def test_check_config_cli_accepts_valid_file(tmp_path):
    keys.generate(tmp_path / "node.key")
    result = subprocess.run([sys.executable, "-m", "agent.cli", "check-config", "-c", str(write(tmp_path, MINIMAL))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_configuration_reference_matches_the_models():
    from agent import configdoc

    assert configdoc.main(["--check"]) == 0, "run: python -m agent.configdoc --write"
