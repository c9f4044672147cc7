"""What operations and security agreed in advance: criticality, business process, tolerable
downtime and host limits; and the plain-data `Policy` the readiness model evaluates against.

The agent publishes its Policy inside its signed `readiness` message, so a consumer (the
fleet board) recomputes the verdict against exactly the tolerances the node was given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import Field

from agent.core.settings import PositiveDuration, Section
from agent.readiness.maintenance import SlaConfig

Criticality = Literal["critical", "important", "supporting"]
CRITICALITIES: tuple[str, ...] = ("critical", "important", "supporting")



class AssetReadiness(Section):
    """How much a device's outage costs, as agreed between operations and security."""

    criticality: Criticality = Field("important", description="critical, important or supporting")
    process: str = Field("", description="the business process it serves, e.g. \"Line 2 filling\"")
    max_downtime: PositiveDuration = Field(900.0, description="maximum tolerable downtime, e.g. \"15m\"")


class HostLimits(Section):
    """Host health limits: at `warn` the node is degraded, at `critical` at risk."""

    disk_warn_percent: float = Field(90.0, gt=0, le=100)
    disk_critical_percent: float = Field(97.0, gt=0, le=100)
    memory_warn_percent: float = Field(90.0, gt=0, le=100)
    memory_critical_percent: float = Field(97.0, gt=0, le=100)
    temperature_warn_c: float = 80.0
    temperature_critical_c: float = 90.0


class ReadinessConfig(Section):
    """The node's own criticality and tolerances, and how often it publishes its verdict."""

    criticality: Criticality = Field("important", description="critical, important or supporting")
    process: str = Field("", description="the business process this panel PC serves")
    max_downtime: PositiveDuration = Field(1800.0, description="maximum tolerable downtime of the node itself")
    interval: PositiveDuration = Field(30.0, description="how often the agent publishes its own verdict")
    stale_after: PositiveDuration = Field(300.0, description="a device or host reading older than this is no data")
    host: HostLimits = Field(default_factory=HostLimits)


@dataclass(frozen=True)
class Asset:
    criticality: str = "important"
    process: str = ""
    max_downtime_s: float = 900.0


@dataclass(frozen=True)
class Policy:
    """Plain data the pure model reads; travels in the readiness message body."""

    node: Asset = field(default_factory=lambda: Asset(max_downtime_s=1800.0))
    devices: dict[str, Asset] = field(default_factory=dict)
    patch_sla_s: dict[str, float] = field(default_factory=lambda: SlaConfig().model_dump())
    host: dict[str, float] = field(default_factory=lambda: HostLimits().model_dump())
    stale_after_s: float = 300.0

    def device(self, name: str) -> Asset:
        """A device's tolerances; one missing from the policy gets the defaults."""
        return self.devices.get(name) or Asset()

    def sla_s(self, severity: str) -> float:
        """How long a security update of `severity` may stay pending; an unknown severity gets
        the `unspecified` SLA."""
        return self.patch_sla_s.get(severity, self.patch_sla_s.get("unspecified", SlaConfig().unspecified))

    def to_body(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_body(cls, body: Any) -> "Policy":
        """The policy a node published; anything missing or malformed falls back to defaults."""
        if not isinstance(body, dict):
            return cls()
        default = cls()

        def asset(raw: Any, fallback: Asset) -> Asset:
            if not isinstance(raw, dict):
                return fallback
            crit = raw.get("criticality")
            downtime = raw.get("max_downtime_s")
            return Asset(
                criticality=crit if crit in CRITICALITIES else fallback.criticality,
                process=str(raw.get("process", "")),
                max_downtime_s=float(downtime) if _positive_number(downtime) else fallback.max_downtime_s,
            )

        devices = body.get("devices")
        sla = body.get("patch_sla_s")
        host = body.get("host")
        stale = body.get("stale_after_s")
        return cls(
            node=asset(body.get("node"), default.node),
            devices={str(k): asset(v, Asset()) for k, v in devices.items()} if isinstance(devices, dict) else {},
            patch_sla_s={**default.patch_sla_s, **{str(k): float(v) for k, v in sla.items() if _positive_number(v)}}
            if isinstance(sla, dict) else default.patch_sla_s,
            host={**default.host, **{k: float(v) for k, v in host.items() if k in default.host and _number(v)}}
            if isinstance(host, dict) else default.host,
            stale_after_s=float(stale) if _positive_number(stale) else default.stale_after_s,
        )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_number(value: Any) -> bool:
    return _number(value) and value > 0


def policy_from_config(config: Any) -> Policy:
    """The Policy of an agent.config.Config (readiness section, device tolerances, patch SLA)."""
    readiness: ReadinessConfig = getattr(config, "readiness", None) or ReadinessConfig()
    devices = {}
    for device in config.modbus.devices:
        asset = getattr(device, "readiness", None) or AssetReadiness()
        devices[device.name] = Asset(asset.criticality, asset.process, asset.max_downtime)
    sla = getattr(getattr(config, "maintenance", None), "sla", None)
    return Policy(
        node=Asset(readiness.criticality, readiness.process, readiness.max_downtime),
        devices=devices,
        patch_sla_s=(sla or SlaConfig()).model_dump(),
        host=readiness.host.model_dump(),
        stale_after_s=readiness.stale_after,
    )
