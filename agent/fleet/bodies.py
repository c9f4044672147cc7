"""The consumer side's typed model of each message kind's body, as the agent's docs describe it
(docs/protocol.md for host, docs/modbus.md, docs/patches.md, docs/posture.md,
docs/operations.md for status, docs/readiness.md, docs/security.md for key notices).

A signature says who sent a body, not that it is well formed: a trusted node with a bug (or a
stolen key) can sign `{"disks": 5}`. `problem(kind, body)` returns None for a body the board
can use, or one line naming the first field that breaks its kind's model
(`host.disks: Input should be a valid list`); the ingest rejects such a message as
`invalid_body`. Types are strict (JSON's own: no "5" for 5, no true for 1, no NaN); fields
the docs call optional may be absent; fields the board does not read are not checked, so a
newer agent may add some. Kinds without a model (a newer agent's) pass unchecked.
Pure: no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.readiness.model import LEVELS

Level = Literal["ready", "degraded", "at_risk", "down"]
assert set(LEVELS) == {"ready", "degraded", "at_risk", "down"}  # the Literal above spells the model's levels
Number = int | float  # JSON numbers; strict mode refuses booleans and strings for both
# Times and sequence numbers the store keeps in BIGINT columns: the envelope's own range.
Millis = Annotated[int, Field(ge=0, le=2**53 - 1)]


class Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


# ----------------------------------------------------------------------------- host


class Cpu(Model):
    count: int | None = None
    percent: Number | None = None
    load1: Number | None = None
    load5: Number | None = None
    load15: Number | None = None


class Memory(Model):
    total_bytes: int | None = None
    available_bytes: int | None = None
    percent: Number | None = None
    pressure: dict[str, Number] | None = None


class Swap(Model):
    total_bytes: int | None = None
    used_bytes: int | None = None
    percent: Number | None = None


class Disk(Model):
    mount: str
    device: str | None = None
    fstype: str | None = None
    total_bytes: int | None = None
    used_bytes: int | None = None
    free_bytes: int | None = None
    percent: Number | None = None


class Clock(Model):
    synchronized: bool | None = None
    source: str | None = None
    offset_us: Number | None = None
    max_error_us: Number | None = None
    est_error_us: Number | None = None


class Host(Model):
    cpu: Cpu | None = None
    memory: Memory | None = None
    swap: Swap | None = None
    disks: list[Disk] | None = None
    temperatures: dict[str, Number] | None = None
    boot_time_ms: Millis | None = None
    uptime_s: Number | None = None
    network: dict[str, dict[str, Number]] | None = None
    clock: Clock | None = None
    failed_units: list[str] | None = None
    emmc_life_time: dict[str, str] | None = None


# ----------------------------------------------------------------------------- modbus


class DeviceError(Model):
    kind: str
    message: str = ""
    ts_ms: Millis | None = None
    points: int | None = None  # in a cycle's device-level `error`: how many points it left unread


class DeviceStatus(Model):
    state: Literal["online", "degraded", "offline"]
    last_success_ms: Millis | None = None
    consecutive_failures: int = 0
    latency_ms: Number | None = None
    errors: dict[str, int] | None = None
    last_error: DeviceError | None = None


class Identity(Model):
    vendor_name: str | None = None
    product_code: str | None = None
    revision: str | None = None


class Modbus(Model):
    device: str | None = None
    unit: int | None = None
    line: str | None = None
    values: dict[str, bool | int | float | str] = Field(default_factory=dict)
    units: dict[str, str] | None = None
    point_errors: dict[str, DeviceError] | None = None
    error: DeviceError | None = None
    unchanged: list[str] | None = None
    status: DeviceStatus
    requests: int | None = None
    identity: Identity | None = None


# ----------------------------------------------------------------------------- patches


class SecurityUpdate(Model):
    package: str
    installed: str | None = None
    fixed: str | None = None
    candidate: str | None = None
    hidden: bool | None = None
    installable: bool | None = None
    severity: str = "unspecified"
    advisories: list[str] | None = None
    first_seen_ms: Millis


class Reboot(Model):
    required: bool | None = None
    flag_packages: list[str] = Field(default_factory=list)
    running_kernel: str | None = None
    newest_kernel: str | None = None
    kernel_pending: bool | None = None
    installed_kernels: list[str] | None = None


class Window(Model):
    start_ms: Millis
    end_ms: Millis
    start_local: str
    ongoing: bool = False


class Patches(Model):
    schema_: int | None = Field(None, alias="schema")
    status: Literal["ok", "stale", "unknown"]
    status_reasons: list[str] = Field(default_factory=list)
    backend: str | None = None
    security_pending: int | None = None
    security_updates: list[SecurityUpdate] = Field(default_factory=list)
    reboot_required: bool | None = None
    reboot: Reboot | None = None
    last_install_ms: Millis | None = None
    time_zone: str | None = None
    next_window: Window | None = None
    following_window: Window | None = None
    due_in_next_window: list[str] | None = None
    sla_breaches: list[dict[str, Any]] | None = None


# ----------------------------------------------------------------------------- posture


class Check(Model):
    id: str
    title: str = ""
    status: Literal["pass", "fail", "unknown"]
    evidence: str = ""


class Listener(Model):
    proto: str
    address: str
    port: int


class Posture(Model):
    schema_: int | None = Field(None, alias="schema")
    checks: list[Check]
    listening: list[Listener] | None = None


# ----------------------------------------------------------------------------- status, readiness, key


class Status(Model):
    state: Literal["online", "offline"]
    reason: str | None = None
    site: str = ""
    area: str = ""
    key_id: str | None = None
    session: str | None = None
    devices: list[str] | None = None
    collectors: list[str] | None = None
    collector_state: dict[str, str] | None = None
    will_seq: Millis | None = None  # the sequence number of the Last Will the broker holds for this connection


class Reason(Model):
    lens: Literal["security", "operations"]
    level: Level
    code: str
    text: str
    subject: str = ""


class Verdict(Model):
    level: Level
    security: Level
    operations: Level
    reasons: list[Reason] = Field(default_factory=list)


class Readiness(Model):
    verdict: Verdict
    policy: dict[str, Any] | None = None  # read leniently by agent.readiness.policy.Policy.from_body
    inputs: dict[str, int] | None = None


class KeyNotice(Model):
    action: str
    alg: str
    new_kid: str
    public_key: str


MODELS: dict[str, type[Model]] = {
    "host": Host, "modbus": Modbus, "patches": Patches, "posture": Posture,
    "status": Status, "readiness": Readiness, "key": KeyNotice,
}


def problem(kind: str, body: Any) -> str | None:
    """None when `body` fits the model of `kind` (or `kind` has none), else `kind.field: what is wrong`."""
    model = MODELS.get(kind)
    if model is None:
        return None
    try:
        model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        where = ".".join(str(part) for part in (kind, *first["loc"]))
        return f"{where}: {first['msg']}"[:300]
    return None
