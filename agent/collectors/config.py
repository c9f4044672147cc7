"""The `[collectors]` config section: host, patches and posture (Modbus devices have `[modbus]`)."""

from __future__ import annotations

from pydantic import Field

from agent.collectors.host.config import HostConfig
from agent.collectors.patches.config import PatchesConfig
from agent.collectors.posture.config import PostureConfig
from agent.core.settings import Section


class CollectorsConfig(Section):
    """Which collectors run and how often."""

    host: HostConfig = Field(default_factory=HostConfig)
    patches: PatchesConfig = Field(default_factory=PatchesConfig)
    posture: PostureConfig = Field(default_factory=PostureConfig)
