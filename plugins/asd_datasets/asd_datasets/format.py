"""Formatting DCASE Task 2 data: the organisers' original trees -> the unified layout.

Reads ``<root>/original/dcase<Y>/{dev_data,eval_data}/raw/<machine>/<subdir>/*.wav`` and fills
``<root>/formatted/dcase<Y>/raw/<machine>/{train,test[,supplemental]}/<unified name>.wav`` with
symbolic links (default) or by moving the originals. Eval test files get their full names from the
ground truth: the organisers' list (else, as in 2026, the evaluator's attribute files), where the
evaluator's label and domain files win.
"""
from __future__ import annotations

import csv
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import click
from tqdm import tqdm

from asdcore.errors import DatasetError, suggest

from .layout import DOMAINS, LABELS, parse_name
from .years import DEV, EVAL, YearSpec, get_year

MODES = ("symlink", "move")
SUBSETS = {"dev_data": DEV, "eval_data": EVAL}
SUPPLEMENTAL = "supplemental"
JOURNAL = "format_journal.json"
DOMAIN_TOKENS = ("source", "target")  # evaluator value 0 / 1
LABEL_TOKENS = ("normal", "anomaly")
_ID_NAME = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<id>\d+)_(?P<index>\d+)\.wav$")
_EVALUATOR = re.compile(r"^ground_truth_(?P<machine>.+?)_section_\d+(?:_(?P<domain>source|target))?_test\.csv$")
_SHOWN = 5


class Renamed(NamedTuple):
    """An eval test file renamed through the ground truth."""

    machine: str
    original: str
    unified: str


class Correction(NamedTuple):
    """A ground-truth name that was changed: the listed name, the name used, and why."""

    machine: str
    file: str
    listed: str
    corrected: str
    reasons: tuple[str, ...]


class _Step(NamedTuple):
    src: Path
    dst: Path


@dataclass
class FormatReport:
    """What one run did: files per machine and split, renamed eval files and corrections."""

    year: int
    mode: str
    destination: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    renamed: list[Renamed] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    created: int = 0  # links made or files moved by this run's plan
    skipped: int = 0  # already in place
    resumed: int = 0  # moves of an interrupted earlier run completed first

    @property
    def total(self) -> int:
        return sum(n for splits in self.counts.values() for n in splits.values())

    def summary(self) -> str:
        lines = [f"dcase{self.year} ({self.mode}) -> {self.destination}: {self.total} files, {self.created} new, "
                 f"{self.skipped} already in place" + (f", {self.resumed} resumed" if self.resumed else "")]
        lines += [f"  {machine}: " + ", ".join(f"{split} {n}" for split, n in sorted(splits.items()))
                  for machine, splits in sorted(self.counts.items())]
        lines.append(f"{len(self.renamed)} eval test files renamed, {len(self.corrections)} ground-truth corrections")
        lines += [f"  {c.machine}/{c.file}: {c.listed} -> {c.corrected} ({', '.join(c.reasons)})"
                  for c in self.corrections]
        return "\n".join(lines)


def format_year(year: int, root: Path | str, mode: str = "symlink", ground_truth: Path | None = None,
                progress: bool = True) -> FormatReport:
    """Format the original DCASE ``year`` data under ``root`` into ``root/formatted/dcase<year>/raw``.

    Everything is planned and checked before the first file is touched; ``move`` writes the plan to
    a journal first and completes an interrupted earlier run. Problems are DatasetErrors naming the path.
    """
    spec = get_year(year)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    root = Path(root).absolute()
    source, target = root / "original" / f"dcase{year}", root / "formatted" / f"dcase{year}"
    truth_dir = Path(ground_truth).absolute() if ground_truth else source / "ground_truth"
    if ground_truth and not truth_dir.is_dir():
        raise DatasetError(f"ground-truth folder {str(truth_dir)!r} does not exist")
    journal = target / JOURNAL
    report = FormatReport(year, mode, target / "raw")
    earlier: list[_Step] = []
    if mode == "move":
        earlier = _read_journal(journal, root)
        report.resumed = _execute(earlier, _move, progress, "resume")
    elif journal.exists():
        raise DatasetError(f"dcase{year} was formatted by moving the originals ({journal}); rerun with mode 'move'")
    moved = _by_folder(step.src for step in earlier)
    steps = _plan(spec, _machine_folders(spec, source), target / "raw", truth_dir, moved, report)
    if mode == "move":
        _check_sources(steps)
        _write_journal(journal, steps, root)
    report.created = _execute(steps, _move if mode == "move" else _link, progress, f"format dcase{year}")
    report.skipped = len(steps) - report.created
    return report


# ----------------------------------------------------------------------------------------------------------------------
# Original tree


def _subdirs(spec: YearSpec) -> tuple[str, ...]:
    return ("train", *spec.test_dirs) + ((SUPPLEMENTAL,) if spec.supplemental else ())


def _split_of(subdir: str) -> str:
    return subdir if subdir in ("train", SUPPLEMENTAL) else "test"


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _machine_folders(spec: YearSpec, source: Path) -> list[tuple[str, Path]]:
    """(subset, machine folder) of every machine type present; incomplete or unexpected ones are refused."""
    found = []
    for name, subset in SUBSETS.items():
        if not (source / name).is_dir():
            continue
        raw = source / name / "raw"
        if not raw.is_dir():
            raise DatasetError(f"missing folder {raw}")
        for folder in _visible_dirs(raw):
            _check_machine_folder(spec, subset, folder)
            found.append((subset, folder))
    if not found:
        raise DatasetError(f"nothing to format: no machine folders in {source}/{{dev_data,eval_data}}/raw")
    return found


def _check_machine_folder(spec: YearSpec, subset: str, folder: Path) -> None:
    machines = spec.sections[subset]
    if folder.name not in machines:
        raise DatasetError(f"{folder}: unexpected machine type {folder.name!r} in DCASE {spec.year} {subset}; "
                           f"expected some of {', '.join(spec.machines(subset))}.{suggest(folder.name, machines)}")
    expected = _subdirs(spec)
    present = {p.name for p in _visible_dirs(folder)}
    missing = [s for s in expected if s not in present]
    unknown = sorted(present - set(expected))
    if missing:
        raise DatasetError(f"{folder}: incomplete machine folder, missing {', '.join(missing)}")
    if unknown:
        raise DatasetError(f"{folder}: unknown subfolder(s) {', '.join(unknown)} (expected {', '.join(expected)})")


def _wavs(folder: Path, moved: dict[Path, set[str]]) -> list[str]:
    """The .wav names in ``folder``, with those an earlier move took away."""
    return sorted({p.name for p in folder.glob("*.wav")} | moved.get(folder, set()))


def _by_folder(paths) -> dict[Path, set[str]]:
    out: dict[Path, set[str]] = defaultdict(set)
    for path in paths:
        out[path.parent].add(path.name)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Plan


def _plan(spec: YearSpec, folders: list[tuple[str, Path]], dest: Path, truth_dir: Path,
          moved: dict[Path, set[str]], report: FormatReport) -> list[_Step]:
    """Every link or move, checked in full before anything is touched."""
    steps, eval_tests = [], defaultdict(dict)
    for subset, folder in folders:
        for subdir in _subdirs(spec):
            split = _split_of(subdir)
            for name in _wavs(folder / subdir, moved):
                src = folder / subdir / name
                if subset == EVAL and split == "test":
                    eval_tests[folder.name][name] = src
                    continue
                if split != SUPPLEMENTAL:  # supplemental names are kept as they are
                    name = _checked(_labelled_name(spec, name, split, src), split, src)
                steps.append(_Step(src, dest / folder.name / split / name))
    if eval_tests:
        steps += _eval_steps(spec, _GroundTruth(truth_dir, spec), eval_tests, dest, report)
    _check_unique(steps)
    report.counts = _counts(steps)
    return steps


def _counts(steps: list[_Step]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for step in steps:
        counts[step.dst.parent.parent.name][step.dst.parent.name] += 1
    return {machine: dict(splits) for machine, splits in counts.items()}


def _labelled_name(spec: YearSpec, name: str, split: str, src: Path) -> str:
    """A name carrying its label in the unified scheme (2020: ``<label>_id_<II>_<idx>`` converted)."""
    if not spec.id_names:
        return name
    match = _ID_NAME.match(name)
    if match is None:
        raise DatasetError(f"{src}: {name!r} is not a DCASE 2020 name <normal|anomaly>_id_<II>_<index>.wav")
    return f"section_{match['id']}_source_{split}_{match['label']}_{match['index']}.wav"


def _checked(name: str, split: str, src: Path) -> str:
    try:
        parsed = parse_name(Path(name))
    except DatasetError:
        raise DatasetError(f"{src}: {name!r} does not follow section_<SS>_<source|target>_<train|test>_"
                           "<normal|anomaly>_<index>[_<attributes>].wav") from None
    if parsed.split != split:
        raise DatasetError(f"{src}: {name!r} is a {parsed.split} name in a {split} folder")
    return name


def _eval_steps(spec: YearSpec, truth: _GroundTruth, tests: dict[str, dict[str, Path]], dest: Path,
                report: FormatReport) -> list[_Step]:
    """Eval test files renamed anonymised -> full name, with the evaluator's corrections."""
    _check_coverage(truth, tests)
    steps = []
    for machine, files in sorted(tests.items()):
        for name, src in sorted(files.items()):
            listed = truth.names[machine][name]
            unified, reasons = truth.correct(machine, name, _labelled_name(spec, listed, "test", src))
            if reasons:
                report.corrections.append(Correction(machine, name, listed, unified, reasons))
            report.renamed.append(Renamed(machine, name, _checked(unified, "test", src)))
            steps.append(_Step(src, dest / machine / "test" / unified))
    return steps


def _check_coverage(truth: _GroundTruth, tests: dict[str, dict[str, Path]]) -> None:
    """Every eval test file has a ground-truth name, and every ground-truth entry a file."""
    problems = []
    for machine, files in sorted(tests.items()):
        unknown = [str(files[n]) for n in sorted(set(files) - set(truth.names[machine]))]
        orphans = sorted(truth.known(machine) - set(files))
        if unknown:
            problems.append(f"{len(unknown)} {machine} eval test file(s) without ground truth: {_few(unknown)}")
        if orphans:
            problems.append(f"{len(orphans)} {machine} ground-truth entries without a file: {_few(orphans)}")
    if problems:
        hint = "" if truth.found else f" (expected {truth.expected} there)"
        raise DatasetError(f"eval ground truth in {truth.folder}{hint} does not match the eval test files: "
                           + "; ".join(problems))


def _few(names: list[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (" …" if len(names) > _SHOWN else "")


def _check_unique(steps: list[_Step]) -> None:
    seen: dict[Path, Path] = {}
    for src, dst in steps:
        if dst in seen:
            raise DatasetError(f"{seen[dst]} and {src} would both become {dst}")
        seen[dst] = src


# ----------------------------------------------------------------------------------------------------------------------
# Ground truth


class _GroundTruth:
    """Full names, labels and domains of the eval test files, per machine type and anonymised name.

    Names come from ``eval_data_list_<year>.csv`` (else ``ground_truth_attributes/``); labels and domains
    from the evaluator's ``ground_truth_data/`` (2021: per-domain files) and ``ground_truth_domain/``.
    """

    def __init__(self, folder: Path, spec: YearSpec):
        self.folder = folder
        self.expected = (f"eval_data_list_{spec.year}.csv and/or " if spec.eval_list_url else "") + "evaluator folders"
        self.names: dict[str, dict[str, str]] = defaultdict(dict)
        self.labels: dict[str, dict[str, int]] = defaultdict(dict)
        self.domains: dict[str, dict[str, int]] = defaultdict(dict)
        lists = [p for p in (folder / f"eval_data_list_{spec.year}.csv", folder / "eval_data_list.csv") if p.is_file()]
        if lists:
            self._read_list(lists[0])
        self._read_evaluator()
        self.found = any(self.names.values())

    def known(self, machine: str) -> set[str]:
        return set(self.names[machine]) | set(self.labels[machine]) | set(self.domains[machine])

    def _read_list(self, path: Path) -> None:
        machine = None
        for number, row in _rows(path):
            if len(row) == 1 or not any(row[1:]):
                machine = row[0]
            elif machine is None:
                raise DatasetError(f"{path}:{number}: a file row before the first machine-type line")
            elif row[0] in self.names[machine]:
                raise DatasetError(f"{path}:{number}: duplicate file name {row[0]!r}")
            else:
                self.names[machine][row[0]] = row[1]

    def _read_evaluator(self) -> None:
        for folder, table in (("ground_truth_data", self.labels), ("ground_truth_domain", self.domains)):
            for path, match in _evaluator_files(self.folder / folder):
                values = _binary(path)
                table[match["machine"]].update(values)
                if match["domain"]:
                    self.domains[match["machine"]].update(dict.fromkeys(values, DOMAIN_TOKENS.index(match["domain"])))
        for path, match in _evaluator_files(self.folder / "ground_truth_attributes"):
            names = self.names[match["machine"]]
            for number, row in _rows(path):
                if len(row) < 2:
                    raise DatasetError(f"{path}:{number}: expected 'file,full name', got {row[0]!r}")
                names.setdefault(row[0], f"{row[1]}.wav")

    def correct(self, machine: str, file: str, name: str) -> tuple[str, tuple[str, ...]]:
        """``name`` with a missing split token inserted and the evaluator's domain and label; the reasons."""
        parts, reasons = name.removesuffix(".wav").split("_"), []
        if len(parts) > 4 and parts[2] in DOMAINS and parts[3] in LABELS:
            parts.insert(3, "test")
            reasons.append("split token")
        if len(parts) < 6 or parts[2] not in DOMAINS or parts[4] not in LABELS:
            return name, ()
        for position, value, tokens, reason in ((2, self.domains[machine].get(file), DOMAIN_TOKENS, "domain"),
                                                (4, self.labels[machine].get(file), LABEL_TOKENS, "label")):
            if value is not None and parts[position] != tokens[value]:
                parts[position] = tokens[value]
                reasons.append(reason)
        return "_".join(parts) + ".wav", tuple(reasons)


def _evaluator_files(folder: Path):
    if folder.is_dir():
        for path in sorted(folder.glob("ground_truth_*.csv")):
            match = _EVALUATOR.match(path.name)
            if match:
                yield path, match


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty rows with their line numbers, fields stripped."""
    with open(path, newline="") as f:
        return [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(f), start=1) if any(row)]


def _binary(path: Path) -> dict[str, int]:
    """Rows ``file,0|1`` of an evaluator file (labels: 1 anomaly; domains: 1 target)."""
    out = {}
    for number, row in _rows(path):
        try:
            value = float(row[1]) if len(row) > 1 else -1.0
        except ValueError:
            value = -1.0
        if value not in (0.0, 1.0):
            raise DatasetError(f"{path}:{number}: expected 'file,0|1', got {','.join(row)!r}")
        out[row[0]] = int(value)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Execution


def _execute(steps: list[_Step], action, progress: bool, desc: str) -> int:
    """Apply ``action`` to every step; the number of steps it changed."""
    return sum(action(step) for step in tqdm(steps, desc=desc, unit="file", disable=not progress or not steps))


def _links_to(link: Path, src: Path) -> bool:
    return link.is_symlink() and link.exists() and os.path.samefile(link, src)


def _link(step: _Step) -> bool:
    """Link ``dst`` to ``src`` (relative between their real folders); False when the link is already there."""
    if _links_to(step.dst, step.src):
        return False
    if os.path.lexists(step.dst):
        raise DatasetError(f"{step.dst} exists and is not a link to {step.src}")
    step.dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(os.path.realpath(step.src), os.path.realpath(step.dst.parent)), step.dst)
    return True


def _move(step: _Step) -> bool:
    """Rename ``src`` to ``dst`` (replacing a link to it); False when an earlier run moved it."""
    if not os.path.lexists(step.src):
        if os.path.exists(step.dst):
            return False
        raise DatasetError(f"{step.src} is missing and was not moved to {step.dst}")
    if os.path.lexists(step.dst) and not _links_to(step.dst, step.src):
        raise DatasetError(f"{step.dst} exists and is not a link to {step.src}")
    step.dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(step.src, step.dst)
    return True


def _check_sources(steps: list[_Step]) -> None:
    """Before the journal is rewritten: every file is at its source or already at its destination."""
    lost = [str(s.src) for s in steps if not os.path.lexists(s.src) and not os.path.exists(s.dst)]
    if lost:
        raise DatasetError(f"{len(lost)} file(s) are neither at their source nor at their destination: {_few(lost)}")


def _write_journal(path: Path, steps: list[_Step], root: Path) -> None:
    """The move plan, paths relative to ``root``, written atomically before any file moves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    moves = [[os.path.relpath(s.src, root), os.path.relpath(s.dst, root)] for s in steps]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"moves": moves}, indent=0))
    os.replace(temporary, path)


def _read_journal(path: Path, root: Path) -> list[_Step]:
    if not path.exists():
        return []
    try:
        return [_Step(root / src, root / dst) for src, dst in json.loads(path.read_text())["moves"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: unreadable move journal ({exc}); check the originals and remove it") from None


# ----------------------------------------------------------------------------------------------------------------------
# Command


@click.command("format")
@click.option("--year", required=True, type=int, help="DCASE year.")
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data folder holding original/dcase<year>/; formatted/dcase<year>/ is written next to it.")
@click.option("--mode", type=click.Choice(MODES), default="symlink", show_default=True,
              help="Link to the originals, or move (rename) them.")
@click.option("--ground-truth", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder with eval_data_list_<year>.csv (up to 2025) and evaluator folders "
                   "[default: ROOT/original/dcase<year>/ground_truth].")
def format_command(year: int, root: Path, mode: str, ground_truth: Path | None) -> None:
    """Format the original DCASE data into the unified layout (eval test files renamed via the ground truth)."""
    try:
        report = format_year(year, root, mode, ground_truth, progress=True)
    except (DatasetError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
