"""Parsing of Debian control-style files (dpkg status, Release, Packages) and the list dir."""

from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

SECURITY_LABELS = {"debian-security", "ubuntuesm", "ubuntuesmapps"}


def paragraphs(text: str | Iterable[str]) -> Iterator[dict[str, str]]:
    """Each stanza of a deb822 text as {Field: value}; continuation lines are joined with \\n.
    Lines from an open file are read one at a time: the dpkg status file (hundreds of KB) is
    never held whole, split into lines, in the daemon's heap."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines() if isinstance(text, str) else text:
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
        elif line[0] in " \t":
            if last:
                fields[last] += "\n" + line.strip()
        elif ":" in line:
            last, _, value = line.partition(":")
            fields[last] = value.strip()
    if fields:
        yield fields


def strip_signature(text: str) -> str:
    """The signed body of a clearsigned InRelease (or the text itself if unsigned)."""
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return text
    body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    return body.split("-----BEGIN PGP SIGNATURE-----", 1)[0]


def is_security_origin(origin: str, label: str, archive: str, codename: str) -> bool:
    """Security by the archive's own metadata, never by mirror host name."""
    return (
        label.lower() in SECURITY_LABELS
        or archive.endswith("-security")
        or codename.endswith("-security")
        or origin.lower().startswith("ubuntuesm")
    )


def http_date_ms(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp() * 1000)
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Release:
    """One repository's Release/InRelease file in the list dir."""

    path: Path
    origin: str
    label: str
    suite: str
    codename: str
    date_ms: int | None
    valid_until_ms: int | None

    @property
    def is_security(self) -> bool:
        return is_security_origin(self.origin, self.label, self.suite, self.codename)

    @property
    def prefix(self) -> str:
        """File-name prefix shared with this release's Packages indexes."""
        return self.path.name.rsplit("_", 1)[0] + "_"


def read_releases(lists_dir: Path) -> list[Release]:
    releases = []
    for path in sorted(lists_dir.glob("*Release")):
        if path.name.endswith("_InRelease") or path.name.endswith("_Release"):
            if path.name.endswith("_Release") and (path.parent / (path.name[: -len("Release")] + "InRelease")).exists():
                continue
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            head = next(paragraphs(strip_signature(text)), {})
            releases.append(
                Release(
                    path=path,
                    origin=head.get("Origin", ""),
                    label=head.get("Label", ""),
                    suite=head.get("Suite", ""),
                    codename=head.get("Codename", ""),
                    date_ms=http_date_ms(head.get("Date", "")),
                    valid_until_ms=http_date_ms(head.get("Valid-Until", "")),
                )
            )
    return releases


_OPENERS = {".gz": gzip.decompress, ".xz": lzma.decompress, ".lzma": lzma.decompress, ".bz2": bz2.decompress}


def read_index(path: Path) -> str:
    """A Packages index as text, whatever apt compressed it with (lz4/zst via apt-helper)."""
    raw = path.read_bytes()
    if path.suffix in _OPENERS:
        return _OPENERS[path.suffix](raw).decode("utf-8", "replace")
    if path.suffix in (".lz4", ".zst"):
        out = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True, check=True, timeout=60
        )
        return out.stdout.decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def package_indexes(lists_dir: Path, release: Release) -> list[Path]:
    return sorted(p for p in lists_dir.glob(release.prefix + "*_Packages*") if not p.name.endswith(".diff_Index"))


@dataclass(frozen=True)
class Installed:
    name: str
    arch: str
    version: str
    held: bool


def read_dpkg_status(text: str | Iterable[str]) -> dict[str, Installed]:
    """Installed packages from /var/lib/dpkg/status, keyed by name (name:arch for foreign arches)."""
    installed: dict[str, Installed] = {}
    for stanza in paragraphs(text):
        want, _, state = (stanza.get("Status", "").split() + ["", "", ""])[:3]
        if state not in ("installed", "half-configured", "unpacked", "triggers-awaited", "triggers-pending"):
            continue
        name, arch = stanza.get("Package", ""), stanza.get("Architecture", "")
        key = name if name not in installed else f"{name}:{arch}"
        installed[key] = Installed(name, arch, stanza.get("Version", ""), want == "hold")
    return installed
