"""Synthetic DCASE Task 2 data in each year's original layout and naming, as the official archives unpack.

Files go to ``<root>/original/dcase<year>/{dev_data,eval_data}/raw/<machine>/<folder>/`` where the
folders are ``train`` and ``test`` (2021: ``source_test`` and ``target_test``; 2025 adds
``supplemental``). Names follow the year:

* 2020 (machine IDs as sections, source domain only): ``normal_id_01_00000000.wav`` (train),
  ``anomaly_id_01_00000000.wav`` (dev test), ``id_01_00000000.wav`` (eval test).
* 2021: ``section_03_target_train_normal_0000_Spd1000Mic1.wav`` (train: one attribute token),
  ``section_00_source_test_anomaly_0000.wav`` (dev test), ``section_03_source_test_0000.wav`` (eval test).
* 2022-2026: ``section_00_source_test_normal_0000_spd_1000_mic_1.wav`` (train, dev test; 2024-2026
  types without attribute information say ``noAttribute``), ``section_00_0000.wav`` (eval test);
  2025's ``supplemental/section_00_machine_0000_.wav``.

The eval test labels are hidden as in the real data and written to ``ground_truth/``: the organisers'
``eval_data_list_<year>.csv`` (up to 2025) and, from 2021, the official evaluators' ``ground_truth_data/``,
``ground_truth_domain/`` (2022+) and ``ground_truth_attributes/`` (2023+) files; 2026's list the
files from the second to the last, then the first, as the real ones do.

2026 clips have two channels, the near and the far microphone (:func:`asd_datasets.synth.render_two_mics`),
and lengths per machine type: ``clip_seconds`` is the length of a type whose real clips last 10 s,
the others are scaled by their real length (ToyCar and ToyCarEmu: 12 s, so 1.2 times). The real
lengths of the eval types (6, 10 or 16 s) are not published per type; ``SYNTHETIC_SECONDS`` assigns
them one each, a synthetic choice, so readers of a tree must take lengths from the files.

Sounds come from :mod:`asd_datasets.synth`: each DCASE machine type plays one of its four sound
models, with the model's conditions as attributes. Every clip's random stream depends only on
(seed, year, machine type, section) and its place in that section, so any subset of machine types
and subsets reproduces the full tree's files.

As in :mod:`asd_datasets.synth`, the tree's parameters (year, subsets, n_train, n_test,
clip_seconds, seed, the machine types so far; 2026 also channels and the clip length of each
machine type, ``machine_seconds``) are recorded in ``<tree>/synth.json``: a request
with other parameters, or a tree with clips but no record, is a :class:`DatasetError` unless
``force``, which deletes the generated clips and ground truth first; more machine types are added.
Writing holds ``<tree>/.synth.lock``.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import os
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from asdcore.errors import DatasetError

from . import synth
from .years import DEV, EVAL, YEARS, YearSpec, get_year

SUBSETS = (DEV, EVAL)
SUBSET_FOLDERS = {DEV: "dev_data", EVAL: "eval_data"}
N_SUPPLEMENTAL = 2  # clips per machine type and subset in 2025's supplemental/ folder
REFERENCE_SECONDS = 10.0  # clip_seconds is the length of a type whose real clips last this long
SYNTHETIC_SECONDS = {  # year -> real lengths assumed for types whose length is unknown (a synthetic choice)
    2026: {"BlowerDustCollector": 10.0, "Sander": 6.0, "SewingMachine": 16.0, "ToothBrush": 6.0, "ToyDrone": 16.0},
}
_MAX_INDEX = 10_000  # indices have four digits


@dataclass(frozen=True)
class OriginalClip:
    """One planned clip: where it lies, what it is called, what it hides, and how it sounds."""

    machine: str
    subset: str  # dev or eval
    folder: str  # train, test, source_test, target_test or supplemental
    name: str  # as distributed
    labelled: str  # the name with its label: ``name``, or for eval test clips the organisers' full name
    unified: str  # the name in the unified (formatted) layout
    section: int
    domain: str
    label: str
    attributes: dict[str, str]
    stream: tuple[int, int, int]  # (seed key, synth group code, number): the clip's random stream

    @property
    def concealed(self) -> bool:
        """True for eval test clips, whose names hide label (and, from 2022, domain)."""
        return self.name != self.labelled

    @property
    def formatted_split(self) -> str:
        return self.folder.rsplit("_", 1)[-1]


def sound_model(machine: str) -> str:
    """The synth sound model (fan, pump, gearbox, valve) a DCASE machine type plays."""
    if machine in synth.MACHINE_TYPES:
        return machine
    return synth.MACHINE_TYPES[zlib.crc32(machine.encode()) % len(synth.MACHINE_TYPES)]


def plan(year: int, machines: list[str] | None = None, subsets=SUBSETS, n_train: int = 20, n_test: int = 8,
         seed: int = 0) -> list[OriginalClip]:
    """Every clip ``write_original`` writes with these options, in a fixed order."""
    spec = get_year(year)
    subsets = _check_subsets(subsets)
    machines = _check_machines(spec, machines, subsets)
    if not 1 <= n_train <= _MAX_INDEX:
        raise ValueError(f"n_train must be in [1, {_MAX_INDEX}], got {n_train}")
    if not 2 <= n_test <= _MAX_INDEX // 2:
        raise ValueError(f"n_test must be in [2, {_MAX_INDEX // 2}], got {n_test}")
    clips = []
    for machine, subset in itertools.product(machines, subsets):
        for section in spec.sections[subset].get(machine, ()):
            clips += _section(spec, machine, subset, section, n_train, n_test, seed)
        if spec.supplemental and machine in spec.sections[subset]:
            clips += _supplemental(spec, machine, subset, seed)
    return clips


def write_original(year: int, root: Path, machines: list[str] | None = None, subsets=SUBSETS, n_train: int = 20,
                   n_test: int = 8, clip_seconds: float = 1.0, seed: int = 0, progress: bool = False,
                   force: bool = False) -> Path:
    """Write the missing clips of a synthetic DCASE ``year`` tree and its eval ground truth; return
    ``<root>/original/dcase<year>``.

    Per section: ``n_train`` source train clips, ``max(1, n_train // 10)`` target train clips and
    ``n_test`` test clips per domain, half of them anomalous (2020: source domain only). ``force``
    deletes the clips and ground truth of the recorded machine types first.
    """
    clips = plan(year, machines, subsets, n_train, n_test, seed)
    subsets = [s for s in SUBSETS if s in _check_subsets(subsets)]
    spec = get_year(year)
    _check_lengths(spec, clip_seconds)
    params = {"format": synth.RECORD_FORMAT, "year": year, "subsets": subsets, "n_train": n_train,
              "n_test": n_test, "clip_seconds": float(clip_seconds), "seed": seed, **_facts(spec, clip_seconds)}
    out = Path(root) / "original" / f"dcase{year}"
    out.mkdir(parents=True, exist_ok=True)
    with synth.locked(out / synth.LOCK):
        recorded = synth.reconcile_record(
            out / synth.RECORD, params, {clip.machine for clip in clips}, _check_machines(spec, None, SUBSETS),
            lambda types: _generated_files(out, types), f"the synthetic DCASE {year} tree {out}",
            f"Use another root, or regenerate with `asdcore data synth --year {year} --force`, which deletes "
            "its clips and ground truth.", force,
        )
        _write_clips(out, spec, [clip for clip in clips if not path_of(out, clip).exists()], clip_seconds, progress)
        # the ground truth covers every recorded machine type, not only this call's
        hidden = [clip for clip in plan(year, recorded, subsets, n_train, n_test, seed) if clip.concealed]
        if hidden:
            _write_ground_truth(spec, out / "ground_truth", hidden)
    return out


def machine_seconds(spec: YearSpec, machine: str, clip_seconds: float) -> float:
    """The length of ``machine``'s synthetic clips when ``clip_seconds`` is that of a 10-s type."""
    if spec.clip_seconds is not None:
        return float(clip_seconds)
    real = spec.machine_seconds.get(machine) or SYNTHETIC_SECONDS[spec.year][machine]
    return round(clip_seconds * real / REFERENCE_SECONDS, 6)  # rounded for a readable record


def path_of(tree: Path, clip: OriginalClip) -> Path:
    """Where ``clip`` lies under ``<root>/original/dcase<year>``."""
    return tree / SUBSET_FOLDERS[clip.subset] / "raw" / clip.machine / clip.folder / clip.name


def expected_formatted_names(year: int, **options) -> dict[str, set[str]]:
    """``<machine>/<train|test|supplemental>`` -> the unified names a correct formatter produces
    from the tree ``write_original(year, root, **options)`` writes (without ``clip_seconds``)."""
    names: dict[str, set[str]] = defaultdict(set)
    for clip in plan(year, **options):
        names[f"{clip.machine}/{clip.formatted_split}"].add(clip.unified)
    return dict(names)


# ---------------------------------------------------------------- planning

def _check_subsets(subsets) -> tuple[str, ...]:
    subsets = tuple(dict.fromkeys(subsets))
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown or not subsets:
        raise ValueError(f"unknown subset(s) {unknown}; allowed: {', '.join(SUBSETS)}")
    return subsets


def _check_machines(spec: YearSpec, machines: list[str] | None, subsets: tuple[str, ...]) -> list[str]:
    allowed = sorted({m for s in subsets for m in spec.sections[s]}, key=str.lower)
    if machines is None:
        return allowed
    machines = list(dict.fromkeys(machines))
    unknown = [m for m in machines if m not in allowed]
    if unknown or not machines:
        raise ValueError(f"unknown machine type(s) {unknown} for DCASE {spec.year} {'+'.join(subsets)}; "
                         f"allowed: {', '.join(allowed)}")
    return machines


def _check_lengths(spec: YearSpec, clip_seconds: float) -> None:
    shortest = min(machine_seconds(spec, m, clip_seconds) for m in spec.machines())
    if shortest < synth.MIN_CLIP_SECONDS:
        raise ValueError(f"clip_seconds {clip_seconds} makes the shortest DCASE {spec.year} clips {shortest:.3g} s; "
                         f"they need at least {synth.MIN_CLIP_SECONDS} s")


def _facts(spec: YearSpec, clip_seconds: float) -> dict:
    """What a year's tree differs in from a mono one of clip_seconds: channels and per-type lengths."""
    facts = {"channels": spec.channels} if spec.channels != 1 else {}
    if spec.clip_seconds is None:
        facts["machine_seconds"] = {m: machine_seconds(spec, m, clip_seconds) for m in spec.machines()}
    return facts


def _key(*parts) -> int:
    """A stable 64-bit seed from ``parts``."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def _section(spec: YearSpec, machine: str, subset: str, section: int, n_train: int, n_test: int,
             seed: int) -> list[OriginalClip]:
    key = _key(seed, spec.year, machine, section)
    domains = ("source", "target") if spec.domains else ("source",)
    n_target = max(1, n_train // 10)
    train = [(d, "train", "normal", i) for d in domains for i in range(n_train if d == "source" else n_target)]
    test = [(d, "test", label, i) for d in domains
            for label, count in (("normal", n_test - n_test // 2), ("anomaly", n_test // 2)) for i in range(count)]
    clips = [_labelled(spec, machine, subset, section, key, *group) for group in train]
    if subset == DEV and machine in spec.numbered_tests:
        # one index sequence over all test clips, laid out alike for every such type of the year
        layout = np.random.default_rng(_key(seed, spec.year, "test layout", section)).permutation(len(test))
        return clips + [_labelled(spec, machine, subset, section, key, *group, index=int(index))
                        for group, index in zip(test, layout)]
    if subset == DEV:
        return clips + [_labelled(spec, machine, subset, section, key, *group) for group in test]
    rng = np.random.default_rng(key)
    pools = [[g for g in test if g[0] == d] for d in domains] if spec.per_domain_files else [test]
    for pool in pools:
        for position, j in enumerate(rng.permutation(len(pool))):
            clips.append(_concealed(spec, machine, section, key, position, *pool[j]))
    return clips


def _sound(machine: str, key: int, domain: str, split: str, label: str, number: int):
    """(attributes, random stream) of a clip, from the sound model's conditions of ``domain``."""
    conditions = getattr(synth._MACHINES[sound_model(machine)], domain)
    combos = [dict(zip(conditions, values)) for values in itertools.product(*conditions.values())]
    return combos[number % len(combos)], (key, synth._GROUPS.index((domain, split, label)), number)


def _attribute_string(spec: YearSpec, machine: str, split: str, attributes: dict[str, str], full: bool = False) -> str:
    """Attribute tokens of a name; ``full``: in the organisers' full eval test name."""
    if spec.year == 2021:  # one token on train names, none on test names
        return "".join(k.capitalize() + v.replace(".", "") for k, v in attributes.items()) if split == "train" else ""
    if machine in spec.no_attribute and not (full and spec.year >= 2025):  # 2025's full names reveal them
        return "noAttribute"
    return "_".join(f"{k}_{v}" for k, v in attributes.items())


def _unified(section: int, domain: str, split: str, label: str, index: str, attributes: str) -> str:
    tokens = [f"section_{section:02d}", domain, split, label, index] + ([attributes] if attributes else [])
    return "_".join(tokens) + ".wav"


def _folder(spec: YearSpec, domain: str, split: str) -> str:
    return f"{domain}_test" if split == "test" and spec.per_domain_files else split


def _labelled(spec: YearSpec, machine: str, subset: str, section: int, key: int, domain: str, split: str,
              label: str, number: int, index: int | None = None) -> OriginalClip:
    """A train or dev test clip: its name carries its label, and its index (default: ``number``)."""
    attributes, stream = _sound(machine, key, domain, split, label, number)
    if spec.id_names:
        name = f"{label}_id_{section:02d}_{number:08d}.wav"
        unified = _unified(section, domain, split, label, f"{number:08d}", "")
    else:
        name = unified = _unified(section, domain, split, label, f"{number if index is None else index:04d}",
                                  _attribute_string(spec, machine, split, attributes))
    return OriginalClip(machine, subset, _folder(spec, domain, split), name, name, unified, section, domain, label,
                        attributes, stream)


def _concealed(spec: YearSpec, machine: str, section: int, key: int, position: int, domain: str, split: str,
               label: str, number: int) -> OriginalClip:
    """An eval test clip at ``position`` of the anonymised order."""
    attributes, stream = _sound(machine, key, domain, split, label, number)
    if spec.id_names:
        name = f"id_{section:02d}_{position:08d}.wav"
        labelled = f"{label}_id_{section:02d}_{number:08d}.wav"
        unified = _unified(section, domain, split, label, f"{number:08d}", "")
    else:
        name = (f"section_{section:02d}_{domain}_test_{position:04d}.wav" if spec.per_domain_files
                else f"section_{section:02d}_{position:04d}.wav")
        labelled = unified = _unified(section, domain, split, label, f"{position:04d}",
                                      _attribute_string(spec, machine, split, attributes, full=True))
    return OriginalClip(machine, EVAL, _folder(spec, domain, split), name, labelled, unified, section, domain, label,
                        attributes, stream)


def _supplemental(spec: YearSpec, machine: str, subset: str, seed: int) -> list[OriginalClip]:
    """2025's clean machine clips (source conditions), named like the organisers' placeholder."""
    key = _key(seed, spec.year, machine, "supplemental")
    clips = []
    for number in range(N_SUPPLEMENTAL):
        attributes, stream = _sound(machine, key, "source", "train", "normal", number)
        name = f"section_00_machine_{number:04d}_.wav"
        clips.append(OriginalClip(machine, subset, "supplemental", name, name, name, 0, "source", "normal",
                                  attributes, stream))
    return clips


# ---------------------------------------------------------------- writing

def _generated_files(tree: Path, machines) -> list[Path]:
    """The clips, ground truth and temporaries ``write_original`` writes for ``machines`` under ``tree``."""
    folders = [tree / folder / "raw" / machine / sub for folder in SUBSET_FOLDERS.values() for machine in machines
               for sub in ("train", "test", "source_test", "target_test", "supplemental")]
    truth = tree / "ground_truth"
    found = [p for folder in folders for pattern in ("*.wav", ".*.wav.*.part") for p in folder.glob(pattern)]
    found += [p for pattern in ("eval_data_list_*.csv", ".eval_data_list_*.part",
                                "ground_truth_*/ground_truth_*.csv", "ground_truth_*/.ground_truth_*.part")
              for p in truth.glob(pattern)]
    return sorted(p for p in found if p.is_file())


def _write_clips(tree: Path, spec: YearSpec, todo: list[OriginalClip], clip_seconds: float, progress: bool) -> None:
    """Write ``todo`` with threads, first deleting temporaries a killed run left; call only under the lock."""
    for folder in {path_of(tree, clip).parent for clip in todo}:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".*.part"):
            stale.unlink(missing_ok=True)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # numpy and scipy.fft release the GIL
        jobs = pool.map(lambda clip: _write_clip(tree, spec, clip, clip_seconds), todo)
        for _ in tqdm(jobs, total=len(todo), desc=tree.name, unit="clip", disable=not progress):
            pass


def _write_clip(tree: Path, spec: YearSpec, clip: OriginalClip, clip_seconds: float) -> None:
    """Render with synth's sound model (two microphones if the year has two channels) and write atomically."""
    key, code, number = clip.stream
    model = sound_model(clip.machine)
    seconds = machine_seconds(spec, clip.machine, clip_seconds)
    options = synth.SynthOptions(machines=(model,), clip_seconds=seconds, seed=key)
    render = synth.render_two_mics if spec.channels == 2 else synth.render
    synth.write_wav(path_of(tree, clip), render(model, code, number, clip.attributes, options), options.sample_rate)


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(tmp, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    os.replace(tmp, path)


def _write_ground_truth(spec: YearSpec, folder: Path, clips: list[OriginalClip]) -> None:
    """The organisers' eval list (where the year has one) and (2021+) the official evaluators' ground-truth folders."""
    if spec.eval_list_url:
        _write_eval_list(spec, folder, clips)
    if spec.id_names:
        return
    groups = defaultdict(list)
    for clip in sorted(clips, key=lambda c: c.name):
        domain = f"_{clip.domain}" if spec.per_domain_files else ""
        groups[f"ground_truth_{clip.machine}_section_{clip.section:02d}{domain}_test.csv"].append(clip)
    for file, group in groups.items():
        if spec.year == 2026:  # the real files list the second to the last file, then the first
            group = group[1:] + group[:1]
        _write_rows(folder / "ground_truth_data" / file, [[c.name, str(int(c.label == "anomaly"))] for c in group])
        if spec.year >= 2022:
            domains = [[c.name, str(int(c.domain == "target"))] for c in group]
            _write_rows(folder / "ground_truth_domain" / file, domains)
        if spec.year >= 2023:
            _write_rows(folder / "ground_truth_attributes" / file, [[c.name, c.labelled[:-4]] for c in group])


def _write_eval_list(spec: YearSpec, folder: Path, clips: list[OriginalClip]) -> None:
    by_machine = defaultdict(list)
    for clip in clips:
        by_machine[clip.machine].append(clip)
    rows = []
    for machine in spec.machines(EVAL):
        if machine in by_machine:
            rows.append([machine])
            for clip in sorted(by_machine[machine], key=lambda c: c.name):
                rows.append([clip.name, clip.labelled] + ([str(int(clip.label == "anomaly"))] if spec.id_names else []))
    _write_rows(folder / f"eval_data_list_{spec.year}.csv", rows)


# ---------------------------------------------------------------- command line

@click.command("synth")
@click.option("--year", required=True, type=int, help=f"DCASE year ({', '.join(map(str, YEARS))}).")
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path), help="Data folder.")
@click.option("--machines", default=None, help="Comma-separated machine types (default: all of the subsets).")
@click.option("--subset", default="all", show_default=True, type=click.Choice([DEV, EVAL, "all"]))
@click.option("--n-train", default=20, show_default=True, type=int, help="Source train clips per section.")
@click.option("--n-test", default=8, show_default=True, type=int, help="Test clips per section and domain.")
@click.option("--clip-seconds", default=1.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Clip length (2026: of the 10-s machine types; the others are scaled).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--force", is_flag=True, help="Delete the tree's generated clips and ground truth and write them anew.")
def synth_year_command(year: int, root: Path, machines: str | None, subset: str, n_train: int, n_test: int,
                       clip_seconds: float, seed: int, force: bool) -> None:
    """Write synthetic DCASE data in the year's original layout and naming, with eval ground truth."""
    selected = [m.strip() for m in machines.split(",") if m.strip()] if machines else None
    try:
        tree = write_original(year, root, selected, SUBSETS if subset == "all" else (subset,), n_train, n_test,
                              clip_seconds, seed, progress=True, force=force)
    except (ValueError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"synthetic DCASE {year} data in {tree}")
