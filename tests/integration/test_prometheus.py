"""config/prometheus/ with Debian's Prometheus (`prometheus` package: `promtool`, `prometheus`;
scripts/test.sh installs it): the rules and config check, every alert's unit test passes, and a
real Prometheus (started here on a free port, temp config and storage) scrapes a running board
that requires a login, with a `metrics` bearer token from a credentials file,
and fires the alerts the board's store calls for."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from fleet_harness import Clock, Fleet, make_nodes
from waiting import wait_until

from agent.fleet.store import open_store
from agent.trust import envelope
from agent.web.auth import tokens, users
from agent.web.board import Board
from simulators.localnet import free_port

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "config" / "prometheus"
RULES = CONFIG / "edge-board.rules.yml"
FORGERIES = (envelope.BAD_SIGNATURE, envelope.UNKNOWN_KEY, envelope.REVOKED_KEY, envelope.TOPIC_MISMATCH,
             envelope.NODE_NOT_ALLOWED, envelope.REPLAY)


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if found is None:
        pytest.fail(f"{name} is not installed: `apt-get install -y prometheus` (scripts/test.sh installs it)")
    return found


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], cwd=CONFIG, capture_output=True, text=True, timeout=60)


def test_the_rules_and_the_scrape_config_check() -> None:
    rules = promtool("check", "rules", RULES.name)
    assert rules.returncode == 0 and "SUCCESS: 5 rules found" in rules.stdout, rules.stdout + rules.stderr
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_has_a_passing_unit_test() -> None:
    result = promtool("test", "rules", "edge-board.rules.test.yml")
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    alerts = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (CONFIG / "edge-board.rules.test.yml").read_text()))
    assert alerts == tested and len(alerts) == 5


def test_a_broken_unit_test_fails() -> None:
    """promtool really compares: the same test expecting no alert where one fires fails."""
    text = (CONFIG / "edge-board.rules.test.yml").read_text()
    broken = text.replace("summary: \"Edge node panel-1 is down or silent\"", "summary: \"something else\"")
    assert broken != text
    path = CONFIG / ".broken.test.yml"
    try:
        path.write_text(broken)
        assert promtool("test", "rules", path.name).returncode != 0
    finally:
        path.unlink()


def test_the_forgery_alert_names_every_forgery_reason() -> None:
    (pattern,) = re.findall(r'reason=~"([^"]+)"', RULES.read_text())
    assert set(pattern.split("|")) == set(FORGERIES)


# ----------------------------------------------------------------------------- a real scrape


@pytest.fixture
def board_with_trouble(tmp_path: Path):
    """A board over a store where panel-1's critical PLC has been down 20 min (15 tolerated) and a
    forged message arrived; served on a free port."""
    url = str(tmp_path / "fleet.sqlite")
    clock = Clock(time.time() - 21 * 60)
    trust, nodes = make_nodes(clock, "panel-1", "panel-2")
    fleet = Fleet(url, trust, clock)
    for minute in range(21):
        nodes["panel-1"].devices["plc-line2"].online = minute == 0  # last read at minute 0
        fleet.feed(nodes["panel-1"].cycle() + nodes["panel-2"].cycle())
        clock.now += 60
    topic, payload, _ = nodes["panel-2"].sent[-2]
    assert fleet.feed([(topic, payload.replace(b'"pass"', b'"fail"', 1), False)]) == ["rejected"]
    fleet.tick()
    fleet.close()
    db = open_store(url)  # a board with a user requires a login: Prometheus scrapes with a metrics token
    users.add(db, "alice", "correct horse battery", "admin", 0)
    token_file = tmp_path / "edge-board.token"
    token_file.write_text(tokens.add(db, "prometheus", "metrics", 0) + "\n")
    db.close()
    board = Board(None, None, db=url, listen=("127.0.0.1", 0)).start()
    board.token_file = token_file
    yield board
    board.stop()


@pytest.fixture
def prometheus(tmp_path: Path, board_with_trouble):
    host, port = board_with_trouble.http.socket.getsockname()[:2]
    listen = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: edge-board
    static_configs: [{{targets: ["{host}:{port}"]}}]
    authorization: {{type: Bearer, credentials_file: "{board_with_trouble.token_file}"}}
""")
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen([tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                f"--web.listen-address=127.0.0.1:{listen}", "--log.level=warn"],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{listen}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def query(base: str, promql: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}", timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success"
    return answer["data"]["result"]


def test_a_real_prometheus_scrapes_the_board_and_fires_its_alerts(prometheus, board_with_trouble) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:  # without the token: no metrics
        urllib.request.urlopen(board_with_trouble.url + "metrics", timeout=10)
    assert refused.value.code == 401
    up = wait_until(lambda: query(prometheus, 'up{job="edge-board"} == 1'), "Prometheus to scrape the board",
                    timeout=60, interval=0.5, tolerate=(OSError,))
    assert up[0]["metric"]["job"] == "edge-board"
    levels = {r["metric"]["node"]: float(r["value"][1])
              for r in query(prometheus, 'edge_fleet_node_level{lens="operations"}')}
    assert levels == {"panel-1": 3.0, "panel-2": 0.0}  # down: the critical PLC is past its tolerance
    (outage,) = query(prometheus, "edge_fleet_device_outage_seconds")
    assert outage["metric"]["device"] == "plc-line2" and float(outage["value"][1]) >= 20 * 60
    def firing() -> set | None:
        alerts = {(r["metric"]["alertname"], r["metric"].get("device") or r["metric"].get("reason"))
                  for r in query(prometheus, 'ALERTS{alertstate="firing"}')}
        return alerts if len(alerts) >= 2 else None

    fired = wait_until(firing, "the two alerts to fire", timeout=60, interval=0.5)
    assert fired == {("EdgeCriticalDevicePastTolerance", "plc-line2"), ("EdgeForgedOrReplayedMessages", "bad_signature")}
