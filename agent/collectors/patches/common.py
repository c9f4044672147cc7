"""What every package-manager backend reports, the persisted first-seen times, and the body."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.collectors.patches import debversion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Update:
    """One installed package that has a newer version somewhere in the cached indexes."""

    package: str
    installed: str
    candidate: str | None  # what the resolver would install; None if nothing (held, pinned, kept back)
    security_version: str | None  # newest version newer than installed from a security origin
    upgradable: bool  # `apt list --upgradable` shows it: the candidate is newer (holds included)
    in_upgrade: bool  # a plain `apt-get upgrade` / `dnf upgrade` installs it
    in_dist_upgrade: bool  # `apt-get dist-upgrade` installs it
    held: bool = False
    phased: bool = False
    pinned: bool = False
    severity: str = "unspecified"
    advisories: tuple[str, ...] = field(default=())

    @property
    def hidden_security(self) -> bool:
        """A security fix the candidate does not come with (newer non-security candidate, or none)."""
        return self.security_version is not None and self.security_version != self.candidate


class FirstSeen:
    """When the agent first saw each security update pending; kept in the state dir.

    A missing or read-only state dir (one-shot use on a copied image) only loses persistence:
    the times then start at this run.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.times: dict[str, int] = {}
        self._warned = False
        if path is not None:
            try:
                loaded = json.loads(path.read_text())
                self.times = {str(k): int(v) for k, v in loaded.items()}
            except FileNotFoundError:
                pass
            except (OSError, ValueError, AttributeError) as exc:
                log.warning("first-seen file unreadable, starting afresh path=%s error=%s", path, exc)

    def update(self, packages: list[str], now_ms: int) -> dict[str, int]:
        """Record `packages` as pending at `now_ms`; forget those no longer pending."""
        current = {name: self.times.get(name, now_ms) for name in packages}
        if current != self.times:
            self.times = current
            self._save()
        return dict(current)

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".first-seen-")
            with os.fdopen(fd, "w") as handle:
                json.dump(self.times, handle, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._warned:
                # an absent state dir is normal for one-shot use; an unwritable one is not
                level = logging.WARNING if self.path.parent.is_dir() else logging.INFO
                log.log(level, "cannot persist first-seen times path=%s error=%s", self.path, exc)
                self._warned = True


def updates_body(updates: list[Update], first_seen: dict[str, int]) -> dict[str, Any]:
    """The package part of the patches body (counts, lists, per-security-update detail)."""
    security = [u for u in updates if u.security_version is not None]
    return {
        "upgradable": sum(u.upgradable for u in updates),
        "upgrade_installs": sum(u.in_upgrade for u in updates),
        "dist_upgrade_installs": sum(u.in_dist_upgrade for u in updates),
        "security_pending": len(security),
        "security_hidden": sum(u.hidden_security for u in security),
        "held": sorted(u.package for u in updates if u.held),
        "pinned": sorted(u.package for u in updates if u.pinned),
        "phased": sorted(u.package for u in updates if u.phased),
        "kept_back": sorted(u.package for u in updates if u.upgradable and not u.in_dist_upgrade),
        "security_updates": [
            {
                "package": u.package,
                "installed": u.installed,
                "fixed": u.security_version,
                "candidate": u.candidate,
                "hidden": u.hidden_security,
                "installable": u.in_dist_upgrade
                and u.candidate is not None
                and debversion.compare(u.candidate, u.security_version) >= 0,
                "severity": u.severity,
                "advisories": list(u.advisories),
                "first_seen_ms": first_seen[u.package],
            }
            for u in security
        ],
    }
