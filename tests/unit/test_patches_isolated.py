"""The package scan runs in a child process: same result as in-process, and a child that dies
becomes a scan error instead of taking the daemon down."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from agent.collectors.patches.collector import Scan, scan
from agent.collectors.patches.common import Update
from agent.collectors.patches.isolated import from_json, scan_in_child, to_json

ROOTS = Path(__file__).resolve().parents[1] / "fixtures" / "roots"


def test_json_round_trip_keeps_every_field():
    original = Scan("dnf", [Update("openssl", "1:3.0.7-1", "1:3.0.7-2", "1:3.0.7-2", True, True, True,
                                   severity="Important", advisories=("RHSA-2024:1", "RHSA-2024:2"))],
                    None, 1_700_000_000_000, dnf_metadata_ms=1_699_000_000_000, dnf_reboot=True)
    assert from_json(to_json(original)) == original


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_child_scan_equals_in_process_scan(tmp_path):
    root = tmp_path / "debian12"
    shutil.copytree(ROOTS / "debian12", root, symlinks=True)
    in_process = scan("apt-get", root, 1)
    assert in_process.error is None and in_process.updates
    assert scan_in_child("apt-get", root, 1) == in_process


def test_a_dying_child_is_a_scan_error(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    result = scan_in_child("apt-get", Path("/"), 5)
    assert result.updates == [] and result.scanned_ms == 5
    assert result.error is not None and result.error.startswith("scan process failed (1)")
