"""The `[collectors.posture]` config section."""

from __future__ import annotations

from pydantic import Field

from agent.core.settings import PositiveDuration, Section


class PostureConfig(Section):
    """Security posture checks (firewall, SSH, ports, time sync, MAC, USB storage, encryption)."""

    enabled: bool = True
    interval: PositiveDuration = Field(3600.0, description="how often a posture reading is published")
    allowed_ports: list[int] | None = Field(
        None, description="ports allowed to listen beyond loopback; unset: the ports are listed, not judged"
    )
