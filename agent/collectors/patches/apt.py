"""Pending apt updates from the package manager's cached state, two ways.

`scan_python_apt` uses Debian's python3-apt (the resolver itself: exact candidates, pins,
phasing). `scan_apt_get` is the fallback when it is not importable: it parses
`apt-get -s dist-upgrade` / `apt-get -s upgrade` (simulation: no root, no lock) and reads
the security indexes directly to find security fixes hidden behind a newer candidate.
Both return the same `Update` records.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from agent.collectors.patches import deb822, debversion
from agent.collectors.patches.common import Update

log = logging.getLogger(__name__)

PYTHON_APT_PATH = "/usr/lib/python3/dist-packages"  # Debian's python3-apt, for the system's Python version


def _apt_pkg_spec() -> importlib.machinery.ModuleSpec | None:
    """Where apt_pkg is: on this Python's path, else in Debian's python3-apt when it was built
    for this Python version (an extension's file name carries its ABI tag, so python3-apt
    built for another version is not found)."""
    return importlib.util.find_spec("apt_pkg") or importlib.machinery.PathFinder.find_spec("apt_pkg", [PYTHON_APT_PATH])


def python_apt_available() -> bool:
    """Found, not loaded: the daemon decides on the backend without mapping libapt-pkg (about
    4 MiB RSS); only the scan child loads it."""
    return "apt_pkg" in sys.modules or _apt_pkg_spec() is not None


def import_apt_pkg() -> ModuleType | None:
    if "apt_pkg" in sys.modules:
        return sys.modules["apt_pkg"]
    spec = _apt_pkg_spec()
    if spec is None or spec.loader is None:
        return None
    try:
        module = importlib.util.module_from_spec(spec)  # an extension module is loaded here
        spec.loader.exec_module(module)
    except ImportError:
        return None
    sys.modules["apt_pkg"] = module
    return module


def apt_options(root: Path) -> list[str]:
    """`-o` options that keep a simulation read-only and point apt at another system root."""
    read_only = ["-o", "Dir::Log::Planner=/dev/null"]  # apt-get -s would otherwise write eipp.log.xz
    if root == Path("/"):
        return read_only
    return [
        *read_only,
        "-o", f"Dir={root}",
        "-o", f"Dir::State::status={root}/var/lib/dpkg/status",
        "-o", "Dir::Cache::pkgcache=",
        "-o", "Dir::Cache::srcpkgcache=",
        "-o", "Debug::NoLocking=1",
    ]


# ---------------------------------------------------------------- apt-get -s parsing (pure)

_INST = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) (.*?) \[[^\]]+\]\)")


@dataclass(frozen=True)
class Plan:
    """What one `apt-get -s` run would do."""

    upgrades: dict[str, tuple[str, str, bool]]  # name -> (installed, candidate, candidate from security)
    new_installs: tuple[str, ...]
    kept_back: tuple[str, ...]
    phased: tuple[str, ...]


def _origins_are_security(origins: str) -> bool:
    # "Debian:12.15/oldstable, Debian-Security:12/oldstable-security" (Label:Version/Archive)
    for origin in origins.split(", "):
        label, _, rest = origin.partition(":")
        archive = rest.rsplit("/", 1)[-1]
        if deb822.is_security_origin(label, label, archive, ""):
            return True
    return False


def _section(lines: list[str], heading: str) -> tuple[str, ...]:
    names: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith(heading):
            for cont in lines[i + 1 :]:
                if not cont.startswith("  "):
                    break
                names.extend(cont.split())
    return tuple(names)


def parse_simulation(text: str) -> Plan:
    """Parse `LC_ALL=C apt-get -s {upgrade,dist-upgrade}` output."""
    lines = text.splitlines()
    upgrades: dict[str, tuple[str, str, bool]] = {}
    new: list[str] = []
    for line in lines:
        if match := _INST.match(line):
            name, old, candidate, origins = match.groups()
            if old is None:
                new.append(name)
            else:
                upgrades[name] = (old, candidate, _origins_are_security(origins))
    return Plan(
        upgrades,
        tuple(new),
        _section(lines, "The following packages have been kept back"),
        _section(lines, "The following upgrades have been deferred due to phasing"),
    )


def security_versions(indexes: list[str], installed: dict[str, deb822.Installed]) -> dict[str, str]:
    """Newest version per installed package in the given security index texts, if newer."""
    found: dict[str, str] = {}
    for text in indexes:
        for stanza in deb822.paragraphs(text):
            name, version = stanza.get("Package", ""), stanza.get("Version", "")
            have = installed.get(name) or installed.get(f"{name}:{stanza.get('Architecture', '')}")
            if have is None or debversion.compare(version, have.version) <= 0:
                continue
            if name not in found or debversion.compare(version, found[name]) > 0:
                found[name] = version
    return found


def merge(
    installed: dict[str, deb822.Installed], dist: Plan, plain: Plan, security: dict[str, str]
) -> list[Update]:
    """Combine the two simulated plans and the security-index view into Update records."""
    names = set(dist.upgrades) | set(dist.kept_back) | set(plain.phased) | set(security)
    updates = []
    for name in sorted(names):
        have = installed.get(name)
        if have is None:
            continue
        planned = dist.upgrades.get(name)
        candidate = planned[1] if planned else None
        held = have.held
        phased = name in plain.phased or name in dist.phased
        kept = name in dist.kept_back or name in plain.kept_back
        updates.append(
            Update(
                package=name,
                installed=have.version,
                candidate=candidate,
                security_version=security.get(name) or (candidate if planned and planned[2] else None),
                upgradable=planned is not None or kept or phased,
                in_upgrade=name in plain.upgrades,
                in_dist_upgrade=planned is not None,
                held=held,
                phased=phased,
                # a newer security version nothing explains (hold, phasing, kept back) is pinned away
                pinned=name in security and planned is None and not (held or phased or kept),
            )
        )
    return updates


# ---------------------------------------------------------------- shells

Run = Callable[[list[str]], str]


def run_command(argv: list[str]) -> str:
    env = dict(os.environ, LC_ALL="C", LANG="C")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed rc={done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


def scan_apt_get(root: Path, run: Run = run_command) -> list[Update]:
    with (root / "var/lib/dpkg/status").open(errors="replace") as status:
        installed = deb822.read_dpkg_status(status)
    opts = apt_options(root)
    dist = parse_simulation(run(["apt-get", "-s", "-q", *opts, "dist-upgrade"]))
    plain = parse_simulation(run(["apt-get", "-s", "-q", *opts, "upgrade"]))
    lists = root / "var/lib/apt/lists"
    texts = []
    for release in deb822.read_releases(lists):
        if release.is_security:
            for index in deb822.package_indexes(lists, release):
                try:
                    texts.append(deb822.read_index(index))
                except (OSError, subprocess.SubprocessError) as exc:
                    log.warning("security index unreadable path=%s error=%s", index, exc)
    return merge(installed, dist, plain, security_versions(texts, installed))


def scan_python_apt(apt_pkg: ModuleType, root: Path) -> list[Update]:
    apt_pkg.init_config()
    # apt_pkg's config is process-global: set every key each time so no earlier root lingers
    live = root == Path("/")
    apt_pkg.config.set("Dir", str(root))
    apt_pkg.config.set("Dir::State::status", str(root / "var/lib/dpkg/status"))
    apt_pkg.config.set("Dir::Cache::pkgcache", "pkgcache.bin" if live else "")
    apt_pkg.config.set("Dir::Cache::srcpkgcache", "srcpkgcache.bin" if live else "")
    apt_pkg.init_system()
    cache = apt_pkg.Cache(None)
    # DepCaches over one Cache share their marks: take the plain plan, reset, then dist-upgrade
    dist = apt_pkg.DepCache(cache)
    dist.upgrade(False)
    in_upgrade = {pkg.id for pkg in cache.packages if pkg.current_ver is not None and dist.marked_upgrade(pkg)}
    dist.init()
    dist.upgrade(True)
    records = apt_pkg.PackageRecords(cache)

    def is_security(version: object) -> bool:
        return any(
            deb822.is_security_origin(f.origin, f.label, f.archive, f.codename)
            for f, _ in version.file_list  # type: ignore[attr-defined]
        )

    def phased(version: object) -> bool:
        for pkg_file, index in version.file_list:  # type: ignore[attr-defined]
            if records.lookup((pkg_file, index)):
                match = re.search(r"^Phased-Update-Percentage:\s*(\d+)", records.record, re.M)
                return bool(match) and int(match.group(1)) < 100
        return False

    policy = dist.policy

    def pinned_version(version: object) -> bool:
        # a version-specific pin gives the version a priority none of its indexes has
        priority = policy.get_priority(version)
        return all(priority != policy.get_priority(f) for f, _ in version.file_list)  # type: ignore[attr-defined]

    updates = []
    for pkg in cache.packages:
        current = pkg.current_ver
        if current is None:
            continue
        newer = [v for v in pkg.version_list if debversion.compare(v.ver_str, current.ver_str) > 0]
        if not newer:
            continue
        candidate = dist.get_candidate_ver(pkg)
        cand_str = candidate.ver_str if candidate and candidate.ver_str != current.ver_str else None
        secure = debversion.newest([v.ver_str for v in newer if is_security(v)])
        newest = debversion.newest([v.ver_str for v in newer])
        held = pkg.selected_state == apt_pkg.SELSTATE_HOLD
        updates.append(
            Update(
                package=pkg.get_fullname(True),
                installed=current.ver_str,
                candidate=cand_str,
                security_version=secure,
                upgradable=cand_str is not None,
                in_upgrade=pkg.id in in_upgrade,
                in_dist_upgrade=dist.marked_upgrade(pkg),
                held=held,
                # a record lookup costs milliseconds: only where a plain upgrade leaves the package out
                phased=pkg.id not in in_upgrade and bool(candidate and cand_str and phased(candidate)),
                pinned=not held
                and newest != cand_str
                and any(pinned_version(v) for v in [*newer, *([candidate] if candidate else [])]),
            )
        )
    return sorted(updates, key=lambda u: u.package)
