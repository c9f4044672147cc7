"""The README's first step on a fresh checkout: `scripts/bootstrap.sh` (which `scripts/test.sh` and
`scripts/demo.sh` run) makes a working .venv and says one line, not pip's and setuptools' noise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_cold_install_says_one_line_and_works(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    done = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=checkout, capture_output=True, text=True, timeout=600)
    said = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 0, said
    assert said == ["bootstrap: installing the agent and its test tools into .venv (log: .venv/install.log)"], said
    assert (checkout / ".venv/install.log").stat().st_size > 0  # the noise is kept, not lost
    version = subprocess.run([str(checkout / ".venv/bin/edge-agent"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("edge-agent "), version
    again = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=checkout, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and not (again.stdout + again.stderr).strip()  # installed once, silent after
