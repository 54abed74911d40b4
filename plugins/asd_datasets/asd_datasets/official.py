"""Reading submissions in the official DCASE file formats, joined with the official ground truth.

Ground truth comes from the evaluators' folders (``ground_truth_data/``, ``ground_truth_domain/``,
2023+ ``ground_truth_attributes/``; 2020: the organisers' ``eval_data_list.csv``). Dev-set files
carry their labels in their names and need no ground truth. Rows are joined by file name: missing,
extra or duplicate names are errors naming the file.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asdcore import DECISIONS, SCORES, FeatureSet, Submission, read_table
from asdcore.errors import ArtifactError, DatasetError

from .layout import DOMAINS, LABELS, parse_name
from .years import YearSpec

_KEY = r"(?P<machine>.+?)_section_(?P<section>\d\d)(?:_(?P<domain>source|target))?_test"
_SECTION = re.compile(rf"^anomaly_score_{_KEY}\.csv$")
_TRUTH = re.compile(rf"^ground_truth_{_KEY}\.csv$")
_EVAL_2020 = re.compile(r"^id_(?P<id>\d\d)_")
_ID = re.compile(r"^anomaly_score_(?P<machine>.+?)_id_(?P<section>\d\d)\.csv$")
_DEV_2020 = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<id>\d\d)_\d+\.wav$")


@dataclass
class _Group:
    machine: str
    section: int
    domain: int | None
    key: str


def read_submission(spec: YearSpec, scores_dir: Path, ground_truth_dir: Path | None) -> list[Submission]:
    """Every machine type with score files in ``scores_dir``, as :class:`Submission` objects."""
    scores_dir = Path(scores_dir)
    if not scores_dir.is_dir():
        raise ArtifactError(f"scores folder {str(scores_dir)!r} does not exist")
    groups = _groups(spec, scores_dir)
    if not groups:
        pattern = "anomaly_score_<machine>_id_<NN>.csv" if spec.id_names else "anomaly_score_<machine>_section_<NN>_test.csv"
        raise ArtifactError(f"{scores_dir}: no score files named {pattern}")
    truth = _GroundTruth(spec, Path(ground_truth_dir) if ground_truth_dir else None)
    out = []
    for machine in sorted({g.machine for g in groups}, key=str.lower):
        subsets = spec.subsets(machine)
        if not subsets:
            raise ArtifactError(f"{scores_dir}: {machine!r} is not a machine type of DCASE {spec.year}; "
                                f"known: {', '.join(spec.machines())}")
        names, sections, domains, labels, scores, decisions = [], [], [], [], [], []
        has_decisions = True
        for group in (g for g in groups if g.machine == machine):
            path = scores_dir / f"{SCORES}_{group.key}.csv"
            rename = truth.renames(group)
            table = read_table(path, SCORES, rename)
            expected = truth.labels(group, path, list(table))
            _check_names(path, set(table), set(expected))
            decision_path = scores_dir / f"{DECISIONS}_{group.key}.csv"
            decision_table = read_table(decision_path, DECISIONS, rename) if decision_path.exists() else None
            if decision_table is not None:
                _check_names(decision_path, set(decision_table), set(expected))
            has_decisions &= decision_table is not None
            for name in sorted(expected):
                domain, label = expected[name]
                names.append(name)
                sections.append(group.section)
                domains.append(domain)
                labels.append(label)
                scores.append(table[name])
                decisions.append(decision_table[name] if decision_table is not None else 0)
        test = FeatureSet(embedding=np.zeros((len(names), 0)), path=names, section=sections, domain=domains,
                          is_anomaly=labels, attribute=[""] * len(names))
        out.append(Submission(machine, test, np.asarray(scores), np.asarray(decisions) if has_decisions else None,
                              {s: subsets[s] for s in set(sections) if s in subsets}))
    return out


def missing_groups(spec: YearSpec, scores_dir: Path, ground_truth_dir: Path | None) -> list[str]:
    """The groups the ground truth has that have no score file, e.g. 'fan section 00' ('fan ID 01'
    in 2020, 'fan section 00 source' in 2021). With ``ground_truth_dir`` the ground truth has the
    groups it lists; without, every group of the year's spec in the subsets the submission touches."""
    submitted = {(g.machine, g.section, g.domain) for g in _groups(spec, Path(scores_dir))}
    if ground_truth_dir is not None:
        expected = _GroundTruth(spec, Path(ground_truth_dir)).groups()
    else:
        expected = _spec_groups(spec, {spec.subsets(m).get(s) for m, s, _ in submitted} - {None})
    word = "ID" if spec.id_names else "section"
    names = {domain: f" {name}" for name, domain in DOMAINS.items()} | {None: ""}
    return [f"{machine} {word} {section:02d}{names[domain]}"
            for machine, section, domain in sorted(expected - submitted, key=lambda g: (g[0].lower(), *g[1:]))]


def _spec_groups(spec: YearSpec, subsets: set[str]) -> set[tuple[str, int, int | None]]:
    domains = tuple(DOMAINS.values()) if spec.per_domain_files else (None,)
    return {(machine, section, domain) for subset in subsets for machine, sections in spec.sections[subset].items()
            for section in sections for domain in domains}


def _groups(spec: YearSpec, scores_dir: Path) -> list[_Group]:
    groups = []
    for path in sorted(scores_dir.glob(f"{SCORES}_*.csv")):
        match = (_ID if spec.id_names else _SECTION).match(path.name)
        if match is None or (spec.per_domain_files != bool(match.groupdict().get("domain"))):
            continue
        groups.append(_Group(match["machine"], int(match["section"]), _domain(match), path.name[len(SCORES) + 1 : -4]))
    return groups


def _domain(match: re.Match) -> int | None:
    return DOMAINS[match["domain"]] if match.groupdict().get("domain") else None


def _check_names(path: Path, got: set[str], expected: set[str]) -> None:
    missing, extra = sorted(expected - got), sorted(got - expected)
    if missing or extra:
        raise ArtifactError(
            f"{path}: file names do not match the ground truth"
            + (f"; missing: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}" if missing else "")
            + (f"; unexpected: {', '.join(extra[:5])}{' …' if len(extra) > 5 else ''}" if extra else "")
        )


class _GroundTruth:
    """Labels (and domains) of the test files of each submission group."""

    def __init__(self, spec: YearSpec, root: Path | None):
        self.spec = spec
        self.root = root
        if root is not None and not root.is_dir():
            raise DatasetError(f"ground-truth folder {str(root)!r} does not exist")
        self._list_2020 = self._read_list_2020() if spec.id_names and root is not None else {}

    def groups(self) -> set[tuple[str, int, int | None]]:
        """(machine, section, domain) of every group this ground truth lists."""
        if self.spec.id_names:
            return {(machine, int(match["id"]), None) for machine, table in self._list_2020.items()
                    for match in map(_EVAL_2020.match, table) if match}
        matches = (_TRUTH.match(path.name) for path in (self.root / "ground_truth_data").glob("ground_truth_*.csv"))
        return {(m["machine"], int(m["section"]), _domain(m)) for m in matches
                if m and self.spec.per_domain_files == bool(m["domain"])}

    def _file(self, folder: str, group: _Group) -> Path | None:
        if self.root is None:
            return None
        path = self.root / folder / f"ground_truth_{group.key}.csv"
        return path if path.exists() else None

    def renames(self, group: _Group) -> dict[str, str]:
        """Full (renamed) file names -> concealed names, from ground_truth_attributes (2023+)."""
        path = self._file("ground_truth_attributes", group) if self.spec.year >= 2023 else None
        return {f"{full}.wav": concealed for concealed, full in _pairs(path).items()} if path else {}

    def labels(self, group: _Group, scores_path: Path, submitted: list[str]) -> dict[str, tuple[int, int]]:
        """File name -> (domain, is_anomaly) for every file the group must contain."""
        if self.spec.id_names:
            dev = {n: _DEV_2020.match(n) for n in submitted}
            if dev and all(dev.values()):
                for name, match in dev.items():
                    if match["id"] != f"{group.section:02d}":
                        raise ArtifactError(f"{scores_path}: {name!r} belongs to ID {match['id']}, not {group.section:02d}")
                return {n: (0, LABELS[m["label"]]) for n, m in dev.items()}
            table = self._list_2020.get(group.machine, {})
            rows = {n: (0, label) for n, label in table.items() if n.startswith(f"id_{group.section:02d}_")}
            if not rows:
                raise ArtifactError(f"{scores_path}: no ground truth for {group.machine} ID {group.section:02d} "
                                    f"(dev names carry labels; eval needs --ground-truth with eval_data_list.csv)")
            return rows
        data = self._file("ground_truth_data", group)
        if data is None:
            return self._from_names(group, scores_path, submitted)
        labels = _binary(data)
        if group.domain is not None:
            return {name: (group.domain, label) for name, label in labels.items()}
        domain_file = self._file("ground_truth_domain", group)
        if domain_file is None:
            raise DatasetError(f"{data}: ground_truth_domain/{data.name} is missing")
        domains = _binary(domain_file)
        if set(domains) != set(labels):
            raise DatasetError(f"{domain_file}: its file names differ from {data}")
        return {name: (domains[name], labels[name]) for name in labels}

    def _from_names(self, group: _Group, scores_path: Path, submitted: list[str]) -> dict[str, tuple[int, int]]:
        out = {}
        for name in submitted:
            try:
                parsed = parse_name(Path(name))
            except DatasetError:
                raise ArtifactError(
                    f"{scores_path}: {name!r} carries no label and no ground truth was found for it "
                    f"(give --ground-truth DIR with ground_truth_data/ground_truth_{group.key}.csv)"
                ) from None
            if parsed.section != group.section or group.domain not in (None, parsed.domain):
                raise ArtifactError(f"{scores_path}: {name!r} does not belong to {group.key}")
            out[name] = (parsed.domain, parsed.is_anomaly)
        return out

    def _read_list_2020(self) -> dict[str, dict[str, int]]:
        path = next((p for p in (self.root / "eval_data_list.csv", self.root / "eval_data_list_2020.csv") if p.exists()),
                    None)
        if path is None:
            return {}
        table: dict[str, dict[str, int]] = {}
        machine = None
        for number, row in enumerate(_rows(path), start=1):
            if len(row) == 1 or (len(row) > 1 and not any(row[1:])):
                machine = row[0]
                table.setdefault(machine, {})
            elif machine is None or len(row) < 2:
                raise DatasetError(f"{path}:{number}: expected a machine type line or 'file,labeled name,label'")
            else:
                raw = row[2] if len(row) > 2 and row[2] != "" else {"normal": "0", "anomaly": "1"}.get(row[1].split("_")[0])
                if raw not in ("0", "1"):
                    raise DatasetError(f"{path}:{number}: no 0/1 label for {row[0]!r}")
                table[machine][row[0]] = int(raw)
        return table


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [row for row in csv.reader(f) if row]


def _pairs(path: Path) -> dict[str, str]:
    """Rows ``a,b`` of a ground-truth file; anything else is a DatasetError naming the file and line."""
    out: dict[str, str] = {}
    for number, row in enumerate(_rows(path), start=1):
        if len(row) != 2:
            raise DatasetError(f"{path}:{number}: expected 2 columns, got {','.join(row)!r}")
        if row[0] in out:
            raise DatasetError(f"{path}:{number}: duplicate file name {row[0]!r}")
        out[row[0]] = row[1]
    return out


def _binary(path: Path) -> dict[str, int]:
    """Rows ``file,0|1`` of a ground-truth file (labels, or domains 0 source / 1 target)."""
    out = {}
    for number, (name, raw) in enumerate(_pairs(path).items(), start=1):
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value not in (0.0, 1.0):
            raise DatasetError(f"{path}: {name!r} has {raw!r}, expected 0 or 1"
                               + (" (ground-truth files have no header row)" if number == 1 else ""))
        out[name] = int(value)
    return out
