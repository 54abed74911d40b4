import collections
import csv
import json
import re

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from asd_datasets import original_synth as osyn
from asd_datasets import synth
from asdcore.errors import DatasetError
from asd_datasets.format import format_year
from asd_datasets.layout import parse_name
from asd_datasets.years import YEARS

ALL_YEARS = sorted(YEARS)
N_TRAIN, N_TEST, SECONDS = 3, 4, 0.1
SECONDS_2026 = 0.2  # its shortest types get 0.6 times this
SIZES = dict(n_train=N_TRAIN, n_test=N_TEST, clip_seconds=SECONDS)

# The real naming of each year (see the organisers' archives and eval lists).
_S = r"section_(?P<section>\d\d)_"
_D = r"(?P<domain>source|target)_"
_L = r"(?P<label>normal|anomaly)_"
_LABELLED_2022 = _S + _D + r"(?P<split>train|test)_" + _L + r"\d{4}_(?P<attr>[A-Za-z0-9.]+(?:_[A-Za-z0-9.]+)*)"
_PATTERNS = {
    2020: {"train": r"normal_id_(?P<section>\d\d)_\d{8}",
           "dev_test": _L + r"id_(?P<section>\d\d)_\d{8}",
           "eval_test": r"id_(?P<section>\d\d)_\d{8}",
           "full": _L + r"id_(?P<section>\d\d)_\d{8}"},
    2021: {"train": _S + _D + r"train_normal_\d{4}_[A-Za-z0-9]+",
           "dev_test": _S + _D + r"test_" + _L + r"\d{4}",
           "eval_test": _S + _D + r"test_\d{4}",
           "full": _S + _D + r"test_" + _L + r"\d{4}"},
}
for _year in (2022, 2023, 2024, 2025, 2026):
    _PATTERNS[_year] = {"train": _LABELLED_2022, "dev_test": _LABELLED_2022, "eval_test": _S + r"\d{4}",
                        "full": _LABELLED_2022}
PATTERNS = {y: {k: re.compile(f"^{p}\\.wav$") for k, p in table.items()} for y, table in _PATTERNS.items()}
SUPPLEMENTAL = re.compile(r"^section_00_machine_\d{4}_\.wav$")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("original")
    seconds = {year: SECONDS_2026 if year == 2026 else SECONDS for year in ALL_YEARS}
    return {year: osyn.write_original(year, root, n_train=N_TRAIN, n_test=N_TEST, clip_seconds=seconds[year])
            for year in ALL_YEARS}


def _files(tree):
    """(subset, machine, folder, name) of every WAV file."""
    subsets = {folder: subset for subset, folder in osyn.SUBSET_FOLDERS.items()}
    return sorted((subsets[p.parts[-5]], p.parts[-3], p.parts[-2], p.name) for p in tree.rglob("*.wav"))


def _eval_list(tree, year):
    """machine -> {anonymised name: row[1:]} from the organisers' list (2026: from the attribute files)."""
    if year == 2026:
        assert not list(tree.rglob("eval_data_list*"))
        folder = tree / "ground_truth" / "ground_truth_attributes"
        return {re.match(r"ground_truth_(.+)_section_00_test\.csv$", path.name)[1]:
                {name: [f"{full}.wav"] for name, full in _csv(path).items()} for path in sorted(folder.iterdir())}
    blocks, machine = {}, None
    with open(tree / "ground_truth" / f"eval_data_list_{year}.csv", newline="") as f:
        for row in csv.reader(f):
            if len(row) == 1:
                machine = row[0]
                blocks[machine] = {}
            else:
                assert row[0] not in blocks[machine]
                blocks[machine][row[0]] = row[1:]
    return blocks


def _csv(path):
    with open(path, newline="") as f:
        return dict(csv.reader(f))


def _truth(year, **options):
    """(machine, anonymised name) -> (domain, label, full name): the labels write_original hid."""
    return {(c.machine, c.name): (c.domain, c.label, c.labelled)
            for c in osyn.plan(year, n_train=N_TRAIN, n_test=N_TEST, **options) if c.concealed}


@pytest.mark.parametrize("year", ALL_YEARS)
def test_layout_names_and_counts(trees, year):
    spec, tree, patterns = YEARS[year], trees[year], PATTERNS[year]
    folders = {"train", *spec.test_dirs} | ({"supplemental"} if spec.supplemental else set())
    for subset, folder in osyn.SUBSET_FOLDERS.items():
        raw = tree / folder / "raw"
        assert sorted(p.name for p in raw.iterdir()) == sorted(spec.sections[subset])
        for machine in spec.sections[subset]:
            assert {p.name for p in (raw / machine).iterdir()} == folders

    hidden = {key: label for key, (_, label, _) in _truth(year).items()}
    counts = collections.Counter()
    for subset, machine, folder, name in _files(tree):
        if folder == "supplemental":
            assert SUPPLEMENTAL.match(name)
            counts[subset, machine, "supplemental"] += 1
            continue
        split = "train" if folder == "train" else "test"
        kind = split if split == "train" else f"{subset}_test"
        match = patterns[kind].match(name)
        assert match, (kind, name)
        fields = match.groupdict()
        domain = fields.get("domain") or ("target" if folder == "target_test" else "source")
        if folder.endswith("_test"):
            assert folder == f"{domain}_test"
        label = hidden.pop((machine, name)) if kind == "eval_test" else fields.get("label", "normal")
        if kind == "eval_test" and year >= 2022:
            domain = None  # hidden too; counted from the ground truth below
        counts[subset, machine, int(fields["section"]), domain, split, label] += 1
    assert not hidden

    domains = ("source", "target") if spec.domains else ("source",)
    for subset in osyn.SUBSETS:
        for machine, sections in spec.sections[subset].items():
            if spec.supplemental:
                assert counts.pop((subset, machine, "supplemental")) == osyn.N_SUPPLEMENTAL
            for section in sections:
                for domain in domains:
                    assert counts.pop((subset, machine, section, domain, "train", "normal")) == (
                        N_TRAIN if domain == "source" else 1)
                test_domains = [None] if subset == "eval" and year >= 2022 else domains
                for domain in test_domains:
                    per_label = N_TEST // 2 * (len(domains) if domain is None else 1)
                    for label in ("normal", "anomaly"):
                        assert counts.pop((subset, machine, section, domain, "test", label)) == per_label
    assert not counts


@pytest.mark.parametrize("year", ALL_YEARS)
def test_ground_truth_forms_agree(trees, year):
    spec, tree, patterns = YEARS[year], trees[year], PATTERNS[year]
    blocks = _eval_list(tree, year)
    assert sorted(blocks, key=str.lower) == spec.machines("eval")
    on_disk = collections.defaultdict(set)
    for subset, machine, folder, name in _files(tree):
        if subset == "eval" and folder not in ("train", "supplemental"):
            on_disk[machine].add(name)
    truth = _truth(year)
    expected_files = {}
    for machine, rows in blocks.items():
        assert set(rows) == on_disk[machine]
        for anonymised, row in rows.items():
            full = row[0]
            domain, label, hidden_full = truth[machine, anonymised]
            assert full == hidden_full
            match = patterns["full"].match(full)
            assert match and match["label"] == label, full
            assert match["section"] == patterns["eval_test"].match(anonymised)["section"]
            if year == 2020:
                assert row[1:] == [str(int(label == "anomaly"))]
                continue
            assert len(row) == 1 and match["domain"] == domain
            per_domain = f"_{domain}" if spec.per_domain_files else ""
            expected_files.setdefault(f"ground_truth_{machine}_section_{match['section']}{per_domain}_test.csv",
                                      {})[anonymised] = (domain, label, full)

    ground_truth = tree / "ground_truth"
    folders = {2020: set(), 2021: {"ground_truth_data"}, 2022: {"ground_truth_data", "ground_truth_domain"}}
    expected_folders = folders.get(year, {"ground_truth_data", "ground_truth_domain", "ground_truth_attributes"})
    assert {p.name for p in ground_truth.iterdir() if p.is_dir()} == expected_folders
    for folder in expected_folders:
        assert {p.name for p in (ground_truth / folder).iterdir()} == set(expected_files)
    for file, rows in expected_files.items():
        assert _csv(ground_truth / "ground_truth_data" / file) == {
            n: str(int(label == "anomaly")) for n, (_, label, _) in rows.items()}
        if year >= 2022:
            assert _csv(ground_truth / "ground_truth_domain" / file) == {
                n: str(int(domain == "target")) for n, (domain, _, _) in rows.items()}
        if year >= 2023:
            assert _csv(ground_truth / "ground_truth_attributes" / file) == {
                n: full[:-len(".wav")] for n, (_, _, full) in rows.items()}


@pytest.mark.parametrize("year", [year for year in ALL_YEARS if year != 2026])
def test_wav_format(trees, year):
    for path in sorted(trees[year].rglob("*.wav"))[::37]:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert info.frames == round(SECONDS * 16000)


@pytest.mark.parametrize("year", ALL_YEARS)
def test_formatted_names_parse_and_carry_the_hidden_labels(year):
    formatted = osyn.expected_formatted_names(year, n_train=N_TRAIN, n_test=N_TEST)
    hidden = {(machine, full) for (machine, _), (_, _, full) in _truth(year).items()}
    for key, names in formatted.items():
        machine, split = key.split("/")
        for name in names:
            if split == "supplemental":
                assert year == 2025 and SUPPLEMENTAL.match(name)
                continue
            assert parse_name(name).split == split
            if year == 2020:
                assert name.split("_")[2] == "source" and len(name[:-4].split("_")[5]) == 8
            hidden.discard((machine, name))
    if year > 2020:  # from 2021 the formatter renames eval test clips to the full names of the list
        assert not hidden


def test_no_attribute_types():
    for year in (2024, 2025, 2026):
        spec = YEARS[year]
        for clip in osyn.plan(year, n_train=N_TRAIN, n_test=N_TEST):
            if clip.folder == "supplemental":
                continue
            hidden_type = clip.machine in spec.no_attribute
            assert clip.name.endswith("_noAttribute.wav") == (hidden_type and not clip.concealed), clip.name
            if clip.concealed:  # 2024's full names keep noAttribute, 2025's and 2026's reveal the attributes
                assert clip.labelled.endswith("_noAttribute.wav") == (hidden_type and year == 2024)
    assert not any("noAttribute" in c.labelled for c in osyn.plan(2023, n_train=1, n_test=2))


def test_deterministic_reproducible_by_parts_and_resumable(trees, tmp_path):
    full = trees[2022]
    part = osyn.write_original(2022, tmp_path / "a", machines=["fan"], subsets=("eval",), **SIZES)
    again = osyn.write_original(2022, tmp_path / "b", machines=["fan"], subsets=("eval",), **SIZES)
    files = sorted(p.relative_to(part) for p in part.rglob("*.wav"))
    assert files and all(f.parts[:3] == ("eval_data", "raw", "fan") for f in files)
    assert all((part / f).read_bytes() == (again / f).read_bytes() == (full / f).read_bytes() for f in files)
    list_name = "ground_truth/eval_data_list_2022.csv"
    assert (part / list_name).read_text() == (again / list_name).read_text()
    assert _eval_list(part, 2022)["fan"] == _eval_list(full, 2022)["fan"]

    other = osyn.write_original(2022, tmp_path / "c", machines=["fan"], subsets=("eval",), seed=1, **SIZES)
    assert (other / files[0]).read_bytes() != (part / files[0]).read_bytes()

    kept, removed = part / files[0], part / files[1]
    kept.write_bytes(b"left alone")
    original = removed.read_bytes()
    removed.unlink()
    osyn.write_original(2022, tmp_path / "a", machines=["fan"], subsets=("eval",), **SIZES)
    assert kept.read_bytes() == b"left alone" and removed.read_bytes() == original


@pytest.mark.parametrize("kwargs, allowed", [
    (dict(year=1999), "2020"),
    (dict(year=2023, machines=["toaster"]), "bandsaw"),
    (dict(year=2023, machines=["bandsaw"], subsets=("dev",)), "ToyCar"),
    (dict(year=2021, subsets=("test",)), "dev, eval"),
])
def test_unknown_values_name_the_allowed_ones(tmp_path, kwargs, allowed):
    with pytest.raises(ValueError, match=allowed):
        osyn.write_original(root=tmp_path, **kwargs)


def test_command(tmp_path):
    runner = CliRunner()
    args = ["--root", str(tmp_path), "--machines", "fan", "--subset", "dev", "--n-train", "2", "--n-test", "2",
            "--clip-seconds", "0.1"]
    result = runner.invoke(osyn.synth_year_command, ["--year", "2021", *args])
    assert result.exit_code == 0, result.output
    tree = tmp_path / "original" / "dcase2021"
    assert len(list(tree.rglob("*.wav"))) == len(osyn.plan(2021, ["fan"], ("dev",), 2, 2))
    assert not (tree / "eval_data").exists() and not (tree / "ground_truth").exists()

    result = runner.invoke(osyn.synth_year_command, ["--year", "2019", *args])
    assert result.exit_code != 0 and "2020" in result.output


def _tree_files(tree):
    """Every clip and ground-truth file (not the record and lock) by relative path."""
    return {p.relative_to(tree): p.read_bytes() for p in sorted(tree.rglob("*"))
            if p.is_file() and p.parent != tree}


EVAL_2022 = dict(subsets=("eval",), **SIZES)


def test_the_record_holds_the_tree_parameters(tmp_path):
    tree = osyn.write_original(2022, tmp_path, machines=["valve", "fan"], seed=3, **EVAL_2022)
    assert json.loads((tree / "synth.json").read_text()) == {
        "format": 1, "year": 2022, "subsets": ["eval"], "n_train": N_TRAIN, "n_test": N_TEST,
        "clip_seconds": SECONDS, "seed": 3, "machines": ["fan", "valve"]}


def test_other_parameters_are_an_error_and_force_regenerates(tmp_path):
    tree = osyn.write_original(2022, tmp_path / "a", machines=["fan"], **EVAL_2022)
    before = _tree_files(tree)
    with pytest.raises(DatasetError) as info:
        osyn.write_original(2022, tmp_path / "a", machines=["fan"], seed=1, subsets=("dev", "eval"),
                            n_train=N_TRAIN, n_test=N_TEST, clip_seconds=SECONDS)
    message = str(info.value)
    assert "seed: recorded 0, requested 1" in message
    assert "subsets: recorded ['eval'], requested ['dev', 'eval']" in message
    assert str(tree / "synth.json") in message and "asdcore data synth --year 2022 --force" in message
    assert _tree_files(tree) == before

    (tree / "notes.txt").write_text("mine")
    osyn.write_original(2022, tmp_path / "a", machines=["valve"], seed=1, force=True, **EVAL_2022)
    fresh = osyn.write_original(2022, tmp_path / "b", machines=["valve"], seed=1, **EVAL_2022)
    assert _tree_files(tree) == _tree_files(fresh) and (tree / "notes.txt").read_text() == "mine"
    assert not (tree / "eval_data" / "raw" / "fan").exists()


def test_more_machine_types_extend_the_tree_and_its_ground_truth(tmp_path):
    tree = osyn.write_original(2022, tmp_path / "a", machines=["valve"], **EVAL_2022)
    osyn.write_original(2022, tmp_path / "a", machines=["fan"], **EVAL_2022)
    both = osyn.write_original(2022, tmp_path / "b", machines=["fan", "valve"], **EVAL_2022)
    assert _tree_files(tree) == _tree_files(both)
    assert set(_eval_list(tree, 2022)) == {"fan", "valve"}
    assert json.loads((tree / "synth.json").read_text())["machines"] == ["fan", "valve"]


def test_a_tree_without_record_needs_force(tmp_path):
    tree = osyn.write_original(2022, tmp_path / "a", machines=["fan"], **EVAL_2022)
    (tree / "synth.json").unlink()
    with pytest.raises(DatasetError, match="no record") as info:
        osyn.write_original(2022, tmp_path / "a", machines=["fan"], **EVAL_2022)
    assert "--force" in str(info.value)
    osyn.write_original(2022, tmp_path / "a", machines=["fan"], seed=2, force=True, **EVAL_2022)
    fresh = osyn.write_original(2022, tmp_path / "b", machines=["fan"], seed=2, **EVAL_2022)
    assert _tree_files(tree) == _tree_files(fresh)


# ---------------------------------------------------------------- 2026: two microphones, lengths per type

# Clip length relative to --clip-seconds: ToyCar and ToyCarEmu are 12-s types; the eval types' lengths are a
# synthetic choice among the real 6, 10 and 16 s.
FACTORS_2026 = {"ToyCar": 1.2, "ToyCarEmu": 1.2, "bearingEmu": 1.0, "fan": 1.0, "gearboxEmu": 1.0, "sliderEmu": 1.0,
                "valveEmu": 1.0, "BlowerDustCollector": 1.0, "Sander": 0.6, "SewingMachine": 1.6, "ToothBrush": 0.6,
                "ToyDrone": 1.6}


def test_2026_clips_have_two_channels_and_lengths_per_type(trees):
    assert set(FACTORS_2026) == set(YEARS[2026].machines())
    frames = collections.defaultdict(set)
    for path in trees[2026].rglob("*.wav"):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 2, "PCM_16", "WAV")
        frames[path.parts[-3]].add(info.frames)
    assert frames == {m: {round(SECONDS_2026 * factor * 16000)} for m, factor in FACTORS_2026.items()}
    record = json.loads((trees[2026] / "synth.json").read_text())
    assert record["channels"] == 2
    assert record["machine_seconds"] == {m: round(SECONDS_2026 * f, 6) for m, f in FACTORS_2026.items()}


def test_2026_ground_truth_lists_the_first_file_last(trees):
    ground_truth = trees[2026] / "ground_truth"
    for machine in YEARS[2026].machines("eval"):
        file = f"ground_truth_{machine}_section_00_test.csv"
        names = [f"section_00_{i:04d}.wav" for i in range(2 * N_TEST)]
        for folder in ("ground_truth_data", "ground_truth_domain", "ground_truth_attributes"):
            with open(ground_truth / folder / file, newline="") as f:
                rows = list(csv.reader(f))
            assert [row[0] for row in rows] == names[1:] + names[:1]
            assert all(len(row) == 2 for row in rows)
        assert not any(row[1].endswith(".wav") for row in rows)


def _sound(clip):
    """The arguments of the synth functions that render a 2026 clip."""
    key, code, number = clip.stream
    model = osyn.sound_model(clip.machine)
    seconds = round(SECONDS_2026 * FACTORS_2026[clip.machine], 6)
    return model, code, number, clip.attributes, synth.SynthOptions(machines=(model,), clip_seconds=seconds, seed=key)


def _db(x):
    return 10 * np.log10(np.mean(np.square(x)))


def test_2026_far_microphone_hears_the_shared_noise_more(trees):
    clips = osyn.plan(2026, ["fan", "ToyDrone"], n_train=N_TRAIN, n_test=N_TEST)[::3]
    delays, noise_levels = set(), set()
    for clip in clips:
        parts = synth.two_mics(*_sound(clip))
        written = sf.read(osyn.path_of(trees[2026], clip), dtype="int16")[0]
        np.testing.assert_array_equal(synth.render_two_mics(*_sound(clip)), written)
        near, far = (_db(parts.machine[:, c]) - _db(parts.noise[:, c]) for c in (0, 1))
        assert near > far + 6, clip.name
        assert 16 <= abs(parts.delay) <= 80  # 1-5 ms
        n = len(parts.noise)
        spectra = np.fft.rfft(parts.noise, 2 * n, axis=0)
        correlation = np.fft.irfft(np.conj(spectra[:, 0]) * spectra[:, 1], 2 * n)
        assert (int(np.argmax(correlation)) + n) % (2 * n) - n == parts.delay
        delays.add(parts.delay)
        noise_levels.add(round(_db(parts.noise[:, 0]), 1))
    assert len(delays) > 1 and len(noise_levels) == len(clips)


def test_2026_formats_to_the_expected_names(trees):
    root = trees[2026].parent.parent
    report = format_year(2026, root, progress=False)
    raw = root / "formatted" / "dcase2026" / "raw"
    formatted = collections.defaultdict(set)
    for path in raw.glob("*/*/*.wav"):
        formatted[f"{path.parts[-3]}/{path.parts[-2]}"].add(path.name)
    assert formatted == osyn.expected_formatted_names(2026, n_train=N_TRAIN, n_test=N_TEST)
    assert len(report.renamed) == 5 * 2 * N_TEST and report.corrections == []


def test_2026_clip_seconds_too_short_for_the_shortest_types(tmp_path):
    with pytest.raises(ValueError, match=r"shortest DCASE 2026 clips 0.06 s"):
        osyn.write_original(2026, tmp_path, **SIZES)
    assert not (tmp_path / "original").exists()


def test_2026_toycar_test_clips_are_numbered_across_classes(trees):
    layouts = {}
    for machine in ("ToyCar", "ToyCarEmu", "fan"):
        names = [p.name for p in (trees[2026] / "dev_data" / "raw" / machine / "test").glob("*.wav")]
        indices = {name.split("_")[5]: "_".join(name.split("_")[2:5]) for name in names}
        assert len(indices) == len(names) if machine != "fan" else len(indices) < len(names)
        layouts[machine] = indices
    assert set(layouts["ToyCar"]) == {f"{i:04d}" for i in range(4 * N_TEST // 2)}
    assert layouts["ToyCar"] == layouts["ToyCarEmu"]  # the same index falls in the same class
