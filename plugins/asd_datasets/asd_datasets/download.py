"""Download the official DCASE Task 2 archives and eval ground truth: resumable, verified, safely extracted.

Layout under ``<root>/original/dcase<year>/``: ``archives/`` (the archives, ``.part`` files while
transferring, ``.done`` markers once extracted), ``{dev_data,eval_data}/raw/<machine>/<subdir>/`` and
``ground_truth/`` (the organisers' eval list, where there is one, and the official evaluator's files).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from time import sleep
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import click
from tqdm import tqdm

from asdcore import write_text
from asdcore.errors import DatasetError

from .years import DEV, EVAL, Archive, YearSpec, get_year

SUBSETS = {DEV: (DEV,), EVAL: (EVAL,), "all": (DEV, EVAL)}
CHUNK = 1 << 20


@dataclass
class DownloadReport:
    """What one run did: archive names downloaded, skipped (already extracted) and extracted, and the
    ground-truth files fetched (paths relative to ``ground_truth/``; files already present are not fetched)."""

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)
    ground_truth: list[str] = field(default_factory=list)


class _Retry(Exception):
    """A failed attempt worth repeating; ``discard`` drops the partial file instead of resuming it."""

    def __init__(self, reason: str, discard: bool = False):
        super().__init__(reason)
        self.discard = discard


def download(year: int, root: Path, subset: str = "all", machines: list[str] | None = None,
             mirror: str | None = None, retries: int = 4, progress: bool = True, *,
             backoff: float = 2.0, timeout: float = 60.0) -> DownloadReport:
    """Fetch and extract the year's archives of ``subset`` (``dev``, ``eval`` or ``all``), and the eval
    ground truth when eval is requested. ``mirror`` replaces each file's base address; ``retries`` extra
    attempts per file wait ``backoff * 2**k`` seconds; a rerun skips archives already extracted."""
    spec = get_year(year)
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    subsets = SUBSETS[subset]
    archives = select_archives(spec, subsets, machines)
    base = Path(root) / "original" / f"dcase{year}"
    options = dict(retries=retries, backoff=backoff, timeout=timeout, progress=progress)
    report = DownloadReport()
    for archive in archives:
        _install(archive, base, mirror, report, options)
    eval_machines = sorted({a.machine for a in archives if a.subset == EVAL}, key=str.lower)
    for relative, url in ground_truth_sources(spec, eval_machines, mirror):
        dest = base / "ground_truth" / relative
        if not dest.exists():
            fetch(url, dest, check_zip=False, **options)
            report.ground_truth.append(relative)
    return report


def select_archives(spec: YearSpec, subsets: tuple[str, ...], machines: list[str] | None) -> list[Archive]:
    """The archives of ``subsets`` for ``machines`` (all when None); unknown machine types are a ValueError."""
    known = spec.machines()
    unknown = [m for m in machines or () if m not in known]
    if unknown:
        raise ValueError(f"unknown machine type(s) {', '.join(unknown)} for DCASE {spec.year}; "
                         f"machine types: {', '.join(known)}")
    selected = [a for a in spec.archives if a.subset in subsets and (machines is None or a.machine in machines)]
    if not selected:
        raise ValueError(f"DCASE {spec.year} has no {'/'.join(subsets)} archives of {', '.join(machines or ())}")
    return selected


def ground_truth_sources(spec: YearSpec, machines: list[str], mirror: str | None) -> list[tuple[str, str]]:
    """(path relative to ``ground_truth/``, URL) of the eval list (if any) and the evaluator files of ``machines``."""
    if not machines:
        return []
    sources = []
    if spec.eval_list_url:
        sources.append((f"eval_data_list_{spec.year}.csv", source_url(spec.eval_list_url, mirror)))
    if spec.evaluator_url:
        base = (mirror or spec.evaluator_url).rstrip("/")
        sources += [(relative, f"{base}/{relative}") for relative in _evaluator_files(spec, machines)]
    return sources


def _evaluator_files(spec: YearSpec, machines: list[str]) -> list[str]:
    if spec.per_domain_files:
        return [f"ground_truth_data/ground_truth_{m}_section_{s:02d}_{domain}_test.csv"
                for m in machines for s in spec.sections[EVAL][m] for domain in ("source", "target")]
    folders = ["ground_truth_data", "ground_truth_domain"] + (["ground_truth_attributes"] if spec.year >= 2023 else [])
    return [f"{folder}/ground_truth_{m}_section_{s:02d}_test.csv"
            for folder in folders for m in machines for s in spec.sections[EVAL][m]]


def source_url(url: str, mirror: str | None) -> str:
    """``url``, or the same file name under ``mirror``."""
    return f"{mirror.rstrip('/')}/{url.rsplit('/', 1)[-1]}" if mirror else url


def _install(archive: Archive, base: Path, mirror: str | None, report: DownloadReport, options: dict) -> None:
    path = base / "archives" / archive.name
    marker = path.with_name(path.name + ".done")
    target = base / f"{archive.subset}_data" / "raw"
    if _extracted(marker, target):
        report.skipped.append(archive.name)
        return
    if not path.exists():
        fetch(source_url(archive.url, mirror), path, check_zip=True, **options)
        report.downloaded.append(archive.name)
    moved = extract(path, target)
    write_text(marker, "".join(f"{entry}\n" for entry in moved))
    report.extracted.append(archive.name)


def _extracted(marker: Path, target: Path) -> bool:
    """True when the marker exists and everything it lists is still in place."""
    try:
        entries = marker.read_text().splitlines()
    except OSError:
        return False
    return all((target / entry).exists() for entry in entries)


def fetch(url: str, dest: Path, *, check_zip: bool, retries: int = 4, backoff: float = 2.0,
          timeout: float = 60.0, progress: bool = True) -> None:
    """Download ``url`` to ``dest`` through ``<dest>.part``, resuming and retrying; rename only when verified."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    reason = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            _transfer(url, part, timeout, progress)
            if check_zip:
                _check_zip(part)
        except _Retry as exc:
            reason = str(exc)
            if exc.discard:
                part.unlink(missing_ok=True)
            continue
        os.replace(part, dest)
        return
    raise DatasetError(f"cannot download {url}: {reason} (gave up after {retries + 1} attempts)")


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One attempt: continue ``part`` with a Range request, or start over when the server ignores it."""
    offset = part.stat().st_size if part.exists() else 0
    request = Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urlopen(request, timeout=timeout) as response:
            total = _stream(response, part, offset, progress)
    except HTTPError as exc:
        if exc.code == 416:
            raise _Retry("the server refused to resume the partial file", discard=True) from None
        if exc.code >= 500:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise DatasetError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, HTTPException) as exc:  # connection errors, timeouts, dropped transfers
        raise _Retry(f"{type(exc).__name__}: {exc}") from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retry(f"incomplete transfer ({size} of {total} bytes)", discard=size > total)


def _stream(response, part: Path, offset: int, progress: bool) -> int | None:
    """Write the body to ``part``; return the expected full size when the server states it."""
    resumed = offset > 0 and response.status == 206
    if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
        raise _Retry(f"unexpected Content-Range {response.headers.get('Content-Range')!r}", discard=True)
    start = offset if resumed else 0
    length = response.headers.get("Content-Length")
    total = start + int(length) if length else None
    with part.open("ab" if resumed else "wb") as out, \
            tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=part.stem, disable=not progress,
                 leave=False) as bar:
        while chunk := response.read(CHUNK):
            out.write(chunk)
            bar.update(len(chunk))
    return total


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _Retry(f"corrupt archive ({exc})", discard=True) from None
    if bad is not None:
        raise _Retry(f"corrupt archive (bad CRC in {bad})", discard=True)


def extract(path: Path, target: Path) -> list[str]:
    """Unpack ``path`` into ``target`` through a temporary folder beside it; return the entries put in place
    (``<machine>/<subdir>``). Members with absolute paths or ``..`` are refused before anything is written."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        unsafe = [n for n in names if _unsafe(n)]
        if unsafe:
            raise DatasetError(f"refusing to extract {path}: unsafe member path {unsafe[0]!r}; delete the archive")
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-extract-", dir=target))
        try:
            archive.extractall(staging)
            return _move_into(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _unsafe(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts


def _move_into(staging: Path, target: Path) -> list[str]:
    """Move each ``<machine>/<entry>`` (or a top-level file) into ``target``, replacing an older copy, so
    that archives sharing a machine folder (train and test) merge and a re-extraction overwrites."""
    moved = []
    for top in sorted(staging.iterdir()):
        entries = sorted(top.iterdir()) if top.is_dir() else [top]
        for entry in entries:
            relative = entry.relative_to(staging)
            dest = target / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.replace(entry, dest)
            moved.append(relative.as_posix())
    return moved


@click.command("download")
@click.option("--year", required=True, type=int, help="DCASE year, e.g. 2025.")
@click.option("--subset", type=click.Choice(list(SUBSETS)), default="all", show_default=True)
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data root; files go to <root>/original/dcase<year>/.")
@click.option("--machines", default=None, help="Comma-separated machine types (default: all of the year).")
@click.option("--mirror", default=None, help="Base URL serving the same file names as the official addresses.")
@click.option("--retries", default=4, show_default=True, type=click.IntRange(min=0), help="Extra attempts per file.")
def download_command(year: int, subset: str, root: Path, machines: str | None, mirror: str | None,
                     retries: int) -> None:
    """Download and extract the official DCASE Task 2 archives and the eval ground truth."""
    selected = [m.strip() for m in machines.split(",") if m.strip()] if machines else None
    try:
        report = download(year, root, subset, selected, mirror=mirror, retries=retries)
    except (ValueError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"downloaded {len(report.downloaded)}, extracted {len(report.extracted)}, "
               f"skipped {len(report.skipped)} archives; {len(report.ground_truth)} ground-truth files "
               f"in {Path(root) / 'original' / f'dcase{year}'}")
