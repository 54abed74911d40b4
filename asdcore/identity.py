"""Identities of a unit's inputs: digests of clip listings, metadata files and artifacts, and why a unit reruns.

A unit's inputs are a mapping ``name -> value`` (config values, upstream keys, data digests, versions);
its key is the fingerprint of that mapping. Records keep the mapping, so a changed key can be explained
by the names whose values differ.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import AudioError, DatasetError
from .interfaces import Clip
from .store import fingerprint, write_json

CHUNK = 1 << 20


def key_of(inputs: Mapping[str, Any]) -> str:
    """The key of a unit: the fingerprint of its named inputs."""
    return fingerprint(dict(inputs))


def listing_digest(clips: Sequence[Clip], root: Path, verify_content: bool = False) -> str:
    """Digest of a clip listing: every clip's path (relative to ``root``), size and modification time
    (with ``verify_content``: size and content hash instead of the time) and its metadata."""
    prefix = os.fspath(root).rstrip(os.sep) + os.sep
    lines = []
    for clip in clips:
        path = os.fspath(clip.path)
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise AudioError(f"{path}: cannot read audio ({exc.strerror})") from None
        stamp = file_hash(path) if verify_content else stat.st_mtime_ns
        name = path[len(prefix):] if path.startswith(prefix) else path
        lines.append(f"{name}\0{stat.st_size}\0{stamp}\0{clip.section}\0{clip.domain}\0{clip.is_anomaly}\0"
                     f"{clip.attribute}\0{clip.subset}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


def files_digest(paths: Iterable[Path], root: Path) -> str:
    """Digest of the content of metadata files (label CSVs, ground truth, generation records)."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        try:
            h.update(f"{relative(path, root)}\0{file_hash(path)}\n".encode())
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None
    return h.hexdigest()[:16]


def file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def artifact_stamps(base: Path, artifacts: Iterable[str]) -> dict[str, list[int]] | None:
    """``relative file -> [size, mtime_ns]`` of every file of the artifacts (folders recursively);
    None when one is missing."""
    stamps: dict[str, list[int]] = {}
    for artifact in artifacts:
        path = base / artifact
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files = [path]
        else:
            return None
        for file in files:
            stat = file.stat()
            stamps[file.relative_to(base).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return stamps


def changed_inputs(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Names of the inputs that differ between a record and now (added and removed ones included)."""
    names = list(dict.fromkeys([*current, *recorded]))
    return [n for n in names if fingerprint(recorded.get(n)) != fingerprint(current.get(n))]


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX form), or whole when it lies elsewhere."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


class Record:
    """The record of one finished unit: its key, named inputs, and the size and time of its artifacts."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def run_id(self) -> str | None:
        """The id of the execution that wrote this record (None without a record)."""
        data = self.read()
        return data.get("run") if data else None

    def stale_reason(self, key: str, inputs: Mapping[str, Any], upstream: Mapping[str, str | None]) -> str | None:
        """None when the unit finished with this key, after the executions of its upstream units that
        are on record now (``upstream``: unit id -> run id), and its artifacts are as it left them; else why not."""
        data = self.read()
        if data is None:
            return "not done yet"
        if data.get("key") != key:
            changed = changed_inputs(data.get("inputs", {}), inputs)
            return "changed: " + (", ".join(changed) if changed else "inputs")
        redone = [uid for uid, run in upstream.items() if run is None or data.get("upstream", {}).get(uid) != run]
        if redone:
            return f"upstream {redone[0]} was redone since"
        stamps = artifact_stamps(self.path.parent, data.get("artifacts", []))
        if stamps is None:
            return "outputs missing"
        recorded = data.get("stamps", {})
        if stamps != recorded:
            changed = sorted(n for n in {*stamps, *recorded} if stamps.get(n) != recorded.get(n))
            return "outputs changed since its record: " + ", ".join(changed[:3]) + (" …" if len(changed) > 3 else "")
        return None

    def write(self, key: str, inputs: Mapping[str, Any], artifacts: list[str], upstream: Mapping[str, str | None]) -> None:
        """Record a finished execution (``upstream``: the run ids of the upstream records it used)."""
        stamps = artifact_stamps(self.path.parent, artifacts)
        if stamps is None:
            raise FileNotFoundError(f"{self.path.parent}: an artifact of {artifacts} was not written")
        write_json(self.path, {"key": key, "run": uuid.uuid4().hex, "inputs": dict(inputs), "artifacts": artifacts,
                               "stamps": stamps, "upstream": dict(upstream)})
