"""The board's JSON API as typed models: the OpenAPI schema at /openapi.json is generated from
these, and the tests hold every answer to them (schemathesis). The handlers send JSON built by
agent.web.view, already serialised; these models describe it, they do not build it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["ready", "degraded", "at_risk", "down"]


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reason(Doc):
    lens: Literal["security", "operations"]
    level: Level
    code: str
    text: str
    subject: str


class TimelinePoint(Doc):
    ms: int
    level: Level
    security: Level
    operations: Level


class Rejection(Doc):
    received_ms: int
    reason: str = Field(description="why it failed: a reason of agent.trust.envelope, replay or invalid_body")
    detail: str
    topic: str


class Unverified(Doc):
    count: int = Field(description="copies of failed messages claiming this node in the last hour")
    by_reason: dict[str, int]
    last: Rejection | None


class Loss(Doc):
    gaps: int = Field(description="sequence numbers never received: messages lost between agent and board")
    duplicates: int = Field(description="copies of messages already stored (QoS 1 redeliveries, retained copies)")
    messages: int = Field(description="verified messages stored")
    ignored_streams: int = Field(description="messages on streams beyond the per-node limit")


class AgentVerdict(Doc):
    ts: int
    verdict: dict[str, Any]
    inputs: dict[str, int] = Field(description="stream -> sequence number of the messages the agent judged")
    agreement: Literal["agrees", "disagrees", "unchecked"]
    board: dict[str, Any] | None


class WorstDevice(Doc):
    name: str
    level: Level
    text: str


class DeviceSummary(Doc):
    count: int = Field(description="devices the node polls (its policy) or reports on")
    reading: int | None = Field(description="of them, how many read fine; None while the node is offline or silent")
    worst: WorstDevice | None = Field(description="the device in the worst state (level, then criticality)")


class NodeRow(Doc):
    node: str
    site: str
    area: str
    verified: bool = Field(description="at least one verified message stored")
    online: bool
    last_heard_ms: int
    level: Level | None = Field(description="None until the board first judged the node")
    security: Level | None
    operations: Level | None
    reasons: list[Reason]
    criticality: str
    process: str
    device_summary: DeviceSummary
    unverified: Unverified
    loss: Loss
    agent: AgentVerdict | None
    timeline: list[TimelinePoint]


class IngestInstance(Doc):
    instance: str
    started_ms: int
    heartbeat_ms: int
    connected: bool
    since_ms: int
    broker: str


class Broker(Doc):
    connected: bool = Field(description="an ingest process with a fresh heartbeat is receiving")
    since_ms: int | None
    ingest: list[IngestInstance]


class Messages(Doc):
    verified: int
    rejected: int
    duplicates: int
    ignored_streams: int
    gaps: int


class RejectedNode(Doc):
    node: str
    count: int
    by_reason: dict[str, int]
    last: Rejection | None


class Unattributed(Doc):
    count: int
    by_reason: dict[str, int]
    last: Rejection | None


class Rejected(Doc):
    unknown_nodes: list[RejectedNode] = Field(description="names seen only in failed messages: never fleet nodes")
    unknown_node_count: int
    unattributed: Unattributed = Field(description="failed messages on topics that name no node")


class Header(Doc):
    now_ms: int
    version: int
    broker: Broker
    counts: dict[Level, int]
    messages: Messages
    rejected: Rejected


class Fleet(Header):
    nodes: list[NodeRow] = Field(description="every fleet node, worst first")


class Device(Doc):
    name: str
    ts: int
    status: dict[str, Any]
    values: dict[str, Any] | None
    units: dict[str, Any] | None
    identity: dict[str, Any] | None
    criticality: str
    process: str
    max_downtime_s: float


class StoredRejection(Rejection):
    copies: int


class Outage(Doc):
    device: str
    start_ms: int
    end_ms: int | None
    criticality: str
    max_downtime_s: float


class Session(Doc):
    session: str
    first_seq: int
    last_seq: int
    received: int
    first_ms: int
    last_ms: int


class StreamMark(Doc):
    ts: int
    seq: int
    received_ms: int
    kid: str


class NodeDetail(NodeRow):
    devices: list[Device]
    host: dict[str, Any] | None
    patches: dict[str, Any] | None
    posture: dict[str, Any] | None
    status_body: dict[str, Any] | None
    streams: dict[str, StreamMark]
    rejections: list[StoredRejection]
    outages: list[Outage]
    sessions: list[Session]
    policy: dict[str, Any]


class Problem(Doc):
    error: str


class Asset(Doc):
    kind: Literal["node", "device"]
    node: str
    device: str = Field(description="empty for a node")
    vendor: str = Field(description="from the device identification (Modbus FC 43/14)")
    product_code: str
    revision: str
    criticality: str
    process: str = Field(description="the business process it serves")
    max_downtime_s: float = Field(description="the tolerated downtime agreed for it")
    address: str = Field(description="a device's line (transport, host and port, or serial port) and unit id")
    site: str
    area: str
    state: str
    first_seen_ms: int | None
    last_seen_ms: int | None
    last_success_ms: int | None


class Assets(Doc):
    assets: list[Asset] = Field(description="every node, each followed by its Modbus devices")


class Decision(Doc):
    node: str
    lens: Literal["security", "operations"]
    text: str


class Review(Doc):
    since_ms: int
    now_ms: int
    time_zone: str
    counts: dict[Level, int]
    security: dict[str, Any] = Field(description="pending, past_sla, compliance, backlog [ms, pending, past SLA], "
                                                 "rejected by reason, posture_flips")
    operations: dict[str, Any] = Field(description="devices, outages, breaches, down_now, gaps")
    decisions: list[Decision]
    more_decisions: int
    nodes: list[dict[str, Any]] = Field(description="per node: timeline, time_in_ms, devices, patches, "
                                                    "posture_flips, maintenance, breaches, rejected, gaps")
