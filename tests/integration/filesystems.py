"""Real, small file systems for storage-fault tests: a tmpfs to fill, an ext4 image that the kernel
remounts read-only on an error (as a failing eMMC does), and a filler file that takes the rest.
Mounting needs root: without it (or where the kernel refuses) the test skips with one line."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHUNK = 64 * 1024


def _mount(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("storage-fault tests mount file systems: run them as root")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a test file system here: {done.stderr.strip() or done.returncode}")


def _unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "4m") mounted at `where`."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))
    try:
        yield where
    finally:
        _unmount(where)


@contextmanager
def ext4(where: Path, image: Path, size_mib: int) -> Iterator[Path]:
    """An ext4 file system in `image`, loop-mounted at `where` with errors=remount-ro."""
    with image.open("wb") as handle:
        handle.truncate(size_mib * 1024 * 1024)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make an ext4 image here: {made.stderr.strip()}")
    where.mkdir(parents=True, exist_ok=True)
    _mount("-o", "loop,errors=remount-ro", str(image), str(where))
    try:
        yield where
    finally:
        _unmount(where)


def fail_ext4(where: Path) -> None:
    """Make the kernel hit an ext4 error on the file system at `where`: with errors=remount-ro it
    turns read-only at once, under every open file, as it does when the flash fails."""
    device = Path(subprocess.run(["findmnt", "-no", "SOURCE", str(where)], capture_output=True, text=True,
                                 check=True).stdout.strip()).name
    trigger = Path("/sys/fs/ext4") / device / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip(f"this kernel cannot trigger an ext4 error ({trigger} is missing)")
    trigger.write_text("test: simulated flash failure\n")


def is_read_only(where: Path) -> bool:
    """Whether creating a file fails with EROFS (ext4's emergency read-only mode does not show
    in the mount flags statvfs reports)."""
    try:
        (where / ".probe").touch()
    except OSError as exc:
        return exc.errno == errno.EROFS
    (where / ".probe").unlink()
    return False


def fill(path: Path) -> int:
    """Write `path` until the file system is full (like logs filling an eMMC); bytes written."""
    written = 0
    block = b"\x7f" * CHUNK
    with path.open("wb") as handle:
        while True:
            try:
                handle.write(block)
                handle.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
            written += CHUNK
    for size in (4096, 512, 1):  # the last scraps
        try:
            with path.open("ab") as handle:
                while True:
                    handle.write(b"\x7f" * size)
                    handle.flush()
        except OSError:
            pass
    return written


def free_bytes(where: Path) -> int:
    stat = os.statvfs(where)
    return stat.f_bavail * stat.f_frsize
