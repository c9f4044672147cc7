"""The `[collectors.patches]` config section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.core.settings import PositiveDuration, Section


class PatchesConfig(Section):
    """Pending updates, security fixes, index freshness and reboot state."""

    enabled: bool = True
    interval: PositiveDuration = Field(300.0, description="how often a patches reading is published")
    rescan_interval: PositiveDuration = Field(
        21600.0, description="re-read package state at least this often even if dpkg status and the lists are untouched"
    )
    stale_after: PositiveDuration = Field(
        7 * 86400.0, description="package lists older than this make the status \"stale\""
    )
    backend: Literal["auto", "python-apt", "apt-get", "dnf"] = Field(
        "auto", description="auto: python3-apt if Debian's python3-apt for this Python is installed, else apt-get -s; "
                           "dnf on the RHEL family"
    )
