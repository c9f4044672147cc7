"""The `[collectors.host]` config section."""

from __future__ import annotations

from pydantic import Field

from agent.core.settings import PositiveDuration, Section


class HostConfig(Section):
    """Host health: CPU, memory, disks, temperatures, clock sync, failed units."""

    enabled: bool = True
    interval: PositiveDuration = Field(30.0, description="how often to sample")
