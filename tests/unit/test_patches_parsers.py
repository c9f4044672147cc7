"""Pure parsers: apt-get simulation output, Release files, dpkg status, first-seen store."""

from __future__ import annotations

import json
from pathlib import Path

from agent.collectors.patches import apt, deb822
from agent.collectors.patches.common import FirstSeen

# captured on Ubuntu 24.04 (apt 2.7): phased updates get their own heading
UBUNTU_UPGRADE = """\
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following upgrades have been deferred due to phasing:
  snapd ubuntu-drivers-common
The following packages have been kept back:
  linux-generic
The following packages will be upgraded:
  curl libcurl4t64
2 upgraded, 0 newly installed, 0 to remove and 3 not upgraded.
Inst curl [8.5.0-2ubuntu10.1] (8.5.0-2ubuntu10.4 Ubuntu:24.04/noble-updates, Ubuntu:24.04/noble-security [amd64])
Inst libcurl4t64 [8.5.0-2ubuntu10.1] (8.5.0-2ubuntu10.4 Ubuntu:24.04/noble-updates [amd64]) []
Inst linux-image-6.8.0-50-generic (6.8.0-50.51 Ubuntu:24.04/noble-updates [amd64])
Conf curl (8.5.0-2ubuntu10.4 Ubuntu:24.04/noble-updates, Ubuntu:24.04/noble-security [amd64])
"""


def test_simulation_plan() -> None:
    plan = apt.parse_simulation(UBUNTU_UPGRADE)
    assert plan.upgrades == {
        "curl": ("8.5.0-2ubuntu10.1", "8.5.0-2ubuntu10.4", True),
        "libcurl4t64": ("8.5.0-2ubuntu10.1", "8.5.0-2ubuntu10.4", False),
    }
    assert plan.new_installs == ("linux-image-6.8.0-50-generic",)
    assert plan.phased == ("snapd", "ubuntu-drivers-common")
    assert plan.kept_back == ("linux-generic",)


def test_security_by_origin_never_by_host() -> None:
    assert deb822.is_security_origin("Debian", "Debian-Security", "stable-security", "bookworm-security")
    assert deb822.is_security_origin("UbuntuESMApps", "UbuntuESMApps", "noble-apps-security", "noble")
    assert deb822.is_security_origin("UbuntuESM", "UbuntuESM", "noble-infra-updates", "noble")
    # a mirror called security.example.com serving -updates is not security
    assert not deb822.is_security_origin("Debian", "Debian", "stable-updates", "bookworm-updates")


def test_clearsigned_release_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "deb.debian.org_debian-security_dists_bookworm-security_InRelease").write_text(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        "Origin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\nCodename: bookworm-security\n"
        "Date: Wed, 25 Nov 2026 17:13:12 UTC\nValid-Until: Wed, 02 Dec 2026 17:13:12 UTC\n"
        "-----BEGIN PGP SIGNATURE-----\nxyz\n-----END PGP SIGNATURE-----\n"
    )
    [release] = deb822.read_releases(tmp_path)
    assert release.is_security and release.codename == "bookworm-security"
    assert release.valid_until_ms - release.date_ms == 7 * 86400 * 1000
    assert release.prefix == "deb.debian.org_debian-security_dists_bookworm-security_"


def test_dpkg_status_holds_and_removed_packages() -> None:
    status = (
        "Package: a\nStatus: hold ok installed\nArchitecture: all\nVersion: 1\n\n"
        "Package: b\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 2\n\n"
        "Package: c\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3\n\n"
        "Package: c\nStatus: install ok installed\nArchitecture: i386\nVersion: 3\n"
    )
    installed = deb822.read_dpkg_status(status)
    assert set(installed) == {"a", "c", "c:i386"} and installed["a"].held


def test_first_seen_keeps_earliest_and_forgets_fixed(tmp_path: Path) -> None:
    path = tmp_path / "first-seen.json"
    store = FirstSeen(path)
    assert store.update(["a", "b"], 1000) == {"a": 1000, "b": 1000}
    assert FirstSeen(path).update(["a"], 5000) == {"a": 1000}  # reloaded; b was fixed
    assert json.loads(path.read_text()) == {"a": 1000}
    path.write_text("not json")
    assert FirstSeen(path).update(["a"], 9000) == {"a": 9000}  # corrupt file: start afresh
