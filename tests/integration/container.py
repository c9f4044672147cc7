"""A real systemd in a container, for tests of the shipped unit and install script.

A minimal Debian root (debootstrap, cached under CACHE_DIR between runs, built atomically)
booted with systemd-nspawn: a throwaway overlay over the read-only cached root, the host's
network, extra folders bound read-only. There is no machinectl or system bus on the host, so
commands run in the container through `nsenter` into its systemd's namespaces.

`CannotBoot` says why this host cannot run such a container (the test skips on it); every
other error is a failure.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

CACHE_DIR = Path(os.environ.get("EDGE_AGENT_TEST_CACHE", "/var/cache/edge-agent-tests"))
SUITE = "bookworm"  # CPython 3.11, like the host venv the wheelhouse is built with
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "python3-apt")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT_S = 60.0
DEBOOTSTRAP_TIMEOUT_S = 480.0  # about 45 s from a nearby mirror


def tool(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


class CannotBoot(Exception):
    """This host cannot build or boot the container; the message says why, in one line."""


def missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "needs root to build and boot a container"
    for name, package in (("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap"),
                          ("nsenter", "util-linux")):
        if tool(name) is None:
            return f"{name} is not installed (apt-get install {package}; scripts/test.sh does it as root)"
    return None


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror the host's apt uses (deb822 or one-line sources), else deb.debian.org."""
    files = [*sorted(apt_dir.glob("sources.list.d/*.sources")), apt_dir / "sources.list",
             *sorted(apt_dir.glob("sources.list.d/*.list"))]
    for path in files:
        text = path.read_text(errors="replace") if path.is_file() else ""
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.MULTILINE)
        uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.MULTILINE)
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return DEFAULT_MIRROR


def debian_root() -> Path:
    """The cached minimal root, built first if missing. Concurrent runs wait for one build;
    an interrupted build leaves only a `.build-*` folder, removed by the next one."""
    digest = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]
    root = CACHE_DIR / f"{SUITE}-minbase-{digest}"
    if root.is_dir():
        return root
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotBoot(f"cannot create the container cache {CACHE_DIR}: {exc}") from exc
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if root.is_dir():  # another run built it while this one waited
            return root
        for stale in CACHE_DIR.glob(".build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        building = CACHE_DIR / f".build-{root.name}"
        log = CACHE_DIR / "debootstrap.log"
        command = [tool("debootstrap") or "debootstrap", "--variant=minbase",
                   f"--include={','.join(PACKAGES)}", SUITE, str(building), debian_mirror()]
        try:
            with open(log, "w") as out:
                returncode = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                            timeout=DEBOOTSTRAP_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            returncode = -1
        if returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise CannotBoot(f"debootstrap {SUITE} from {command[-1]} failed (exit {returncode}), see {log}")
        building.rename(root)
    return root


class Container:
    """systemd booted in `root` (kept clean by a volatile overlay); `binds` maps host folders
    to read-only paths inside. Use as a context manager: the exit powers it off."""

    def __init__(self, root: Path, binds: dict[Path, str], log: Path) -> None:
        self.root, self.binds, self.log_path = root, binds, log
        self.nspawn: subprocess.Popen | None = None
        self.pid = 0  # the container's systemd, as the host sees it

    def __enter__(self) -> "Container":
        # --keep-unit: there is no system bus to register a scope on; --read-only lets
        # concurrent runs share the cached root (the overlay is writable all the same).
        command = [tool("systemd-nspawn") or "systemd-nspawn", "-D", str(self.root), "-b",
                   "--register=no", "--keep-unit", "--console=passive", "--volatile=overlay", "--read-only",
                   *(f"--bind-ro={host}:{inside}" for host, inside in self.binds.items())]
        with open(self.log_path, "w") as log:
            self.nspawn = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.pid = self._wait_for_init()
            self._wait_until_booted()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        self.nspawn.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
        try:
            self.nspawn.wait(30)
        except subprocess.TimeoutExpired:
            self.nspawn.kill()
            self.nspawn.wait(10)

    def _wait_for_init(self) -> int:
        assert self.nspawn is not None
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise CannotBoot(f"systemd-nspawn exited ({self.nspawn.returncode}): {self.log_tail()}")
            pids = children.read_text().split() if children.exists() else []
            if pids:
                return int(pids[0])
            time.sleep(0.05)
        raise CannotBoot(f"systemd-nspawn started no init within {BOOT_TIMEOUT_S:.0f} s: {self.log_tail()}")

    def _wait_until_booted(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        state = ""
        while time.monotonic() < deadline:
            # Before systemd listens on its private socket, systemctl fails: retry.
            try:
                result = self.run("systemctl", "is-system-running", "--wait", check=False,
                                  timeout=max(deadline - time.monotonic(), 1.0))
            except subprocess.TimeoutExpired:
                break
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise CannotBoot(f"the container's systemd did not finish booting (state {state!r}): {self.log_tail()}")

    def log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])

    def run(self, *argv: str, input: str | None = None, env: dict[str, str] | None = None,
            check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """`argv` inside the container, as root, with a clean environment (none of the host's)."""
        nsenter = tool("nsenter") or "nsenter"
        result = subprocess.run([nsenter, "-t", str(self.pid), "-a", "--", *argv], input=input,
                                capture_output=True, text=True, timeout=timeout,
                                env={"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", **(env or {})})
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode} in the container:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def write(self, path: str, text: str) -> None:
        self.run("sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", path, input=text)

    def read(self, path: str) -> str:
        return self.run("cat", path).stdout

    def show(self, unit: str, properties: Sequence[str]) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, "-p", ",".join(properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
