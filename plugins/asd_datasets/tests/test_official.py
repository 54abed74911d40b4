"""Evaluating submissions in the official DCASE Task 2 file formats, 2020–2026, against an
independent computation of what the official evaluators report."""
import json
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from asd_datasets.original_synth import plan, write_original
from asd_datasets.years import YEARS
from asdcore.errors import ArtifactError, DatasetError
from asdcore.testing import run_cli

EPS = np.finfo(np.float64).eps
DOMAIN_NAMES = ("source", "target")
LABEL_NAMES = ("normal", "anomaly")
SECTION_TOL, OFFICIAL_TOL = 1e-15, 1e-12


@dataclass(frozen=True)
class Clip:
    machine: str
    section: int
    subset: str
    domain: int
    label: int
    index: int
    score: float
    decision: int
    attribute: str = "spd_1"

    @property
    def concealed(self) -> bool:
        return self.subset == "eval"


def make_clips(seed, machine, section, subset, counts=(8, 4, 5, 3)):
    """Clips of one section; ``counts`` = source normals, source anomalies[, target normals, target anomalies].
    Scores on a 0.1 grid, so that normals and anomalies tie."""
    rng = np.random.default_rng(seed)
    groups = [(domain, label, n) for (domain, label), n in zip([(0, 0), (0, 1), (1, 0), (1, 1)], counts)]
    total = sum(counts)
    index = iter(rng.permutation(total).tolist())
    clips = []
    for domain, label, n in groups:
        low, high = (2, 12) if label else (0, 9)
        for _ in range(n):
            clips.append(Clip(machine, section, subset, domain, label, next(index),
                              float(rng.integers(low, high)) / 10, int(rng.integers(0, 2)),
                              f"spd_{int(rng.integers(1, 4))}"))
    return clips


def full_name(c: Clip) -> str:
    return (f"section_{c.section:02d}_{DOMAIN_NAMES[c.domain]}_test_{LABEL_NAMES[c.label]}_{c.index:04d}"
            f"_{c.attribute}")


def submitted_name(year: int, c: Clip, full: bool = False) -> str:
    if year == 2020:
        return (f"id_{c.section:02d}_{c.index:08d}.wav" if c.concealed
                else f"{LABEL_NAMES[c.label]}_id_{c.section:02d}_{c.index:08d}.wav")
    if c.concealed and not full:
        if year == 2021:
            return f"section_{c.section:02d}_{DOMAIN_NAMES[c.domain]}_test_{c.index:04d}.wav"
        return f"section_{c.section:02d}_{c.index:04d}.wav"
    return full_name(c) + ".wav"


def file_key(year: int, c: Clip) -> str:
    if year == 2020:
        return f"{c.machine}_id_{c.section:02d}"
    if year == 2021:
        return f"{c.machine}_section_{c.section:02d}_{DOMAIN_NAMES[c.domain]}_test"
    return f"{c.machine}_section_{c.section:02d}_test"


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in rows))


def write_tree(year, clips, root, full=False, decisions=None):
    """The submission (scores/) and the organisers' ground truth (gt/) in the official layout of ``year``;
    ground truth only for concealed (eval) clips."""
    scores, gt = root / "scores", root / "gt"
    scores.mkdir(parents=True)
    gt.mkdir()
    decisions = year >= 2021 if decisions is None else decisions
    files: dict[str, list[Clip]] = {}
    for c in clips:
        files.setdefault(file_key(year, c), []).append(c)
    for key, group in files.items():
        group = group[::-1]
        names = [submitted_name(year, c, full) for c in group]
        write_csv(scores / f"anomaly_score_{key}.csv", [(n, repr(c.score)) for n, c in zip(names, group)])
        if decisions:
            write_csv(scores / f"decision_result_{key}.csv", [(n, c.decision) for n, c in zip(names, group)])
        hidden = [c for c in group if c.concealed]
        if not hidden or year == 2020:
            continue
        write_csv(gt / "ground_truth_data" / f"ground_truth_{key}.csv",
                  [(submitted_name(year, c), c.label) for c in hidden])
        if year >= 2022:
            write_csv(gt / "ground_truth_domain" / f"ground_truth_{key}.csv",
                      [(submitted_name(year, c), c.domain) for c in hidden])
        if year >= 2023:
            write_csv(gt / "ground_truth_attributes" / f"ground_truth_{key}.csv",
                      [(submitted_name(year, c), full_name(c)) for c in hidden])
    if year == 2020:
        rows = []
        for machine in dict.fromkeys(c.machine for c in clips if c.concealed):
            rows.append((machine,))
            rows += [(submitted_name(year, c), f"{LABEL_NAMES[c.label]}_{submitted_name(year, c)}", c.label)
                     for c in clips if c.machine == machine and c.concealed]
        write_csv(gt / "eval_data_list.csv", rows)
    return scores, gt


ERRORS = {error.exit_code: error for error in (ArtifactError, DatasetError)}


def evaluate(year, scores, gt, allow_partial=False):
    """What ``asdcore evaluate`` writes with --json, NaN for its nulls (metrics undefined for clips of one
    class); a failure is raised as the error of its exit code, with the printed message."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "evaluation.json"
        result = run_cli("evaluate", "--year", year, "--scores", scores, "--json", out,
                         *(["--ground-truth", gt] if gt else []), *(["--allow-partial"] if allow_partial else []))
        if result.exit_code != 0:
            raise ERRORS.get(result.exit_code, AssertionError)(result.output)
        return nan_for_none(json.loads(out.read_text()))


def nan_for_none(value):
    if isinstance(value, dict):
        return {key: nan_for_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [nan_for_none(item) for item in value]
    return float("nan") if value is None else value


# ---------------------------------------------------------------- independent computation


def arrays(clips):
    return tuple(np.array([getattr(c, f) for c in clips]) for f in ("domain", "label", "score", "decision"))


def auc(y, s):
    return roc_auc_score(y, s)


def pauc(y, s):
    return roc_auc_score(y, s, max_fpr=0.1)


def expected_section(clips, decisions):
    d, y, s, dec = arrays(clips)
    out = {}
    for domain, p in ((0, "s"), (1, "t")):
        m = d == domain
        if m.any():
            out[f"{p}_auc"], out[f"{p}_pauc"] = auc(y[m], s[m]), pauc(y[m], s[m])
    if {0, 1} <= set(d.tolist()):
        for domain, p in ((0, "smix"), (1, "tmix")):
            m = (d == domain) | (y == 1)
            out[f"{p}_auc"] = auc(y[m], s[m])
        out["mix_auc"], out["mix_pauc"] = auc(y, s), pauc(y, s)
    if decisions:
        for domain, name in enumerate(DOMAIN_NAMES):
            m = d == domain
            if not m.any():
                continue
            tp = np.sum((y[m] == 1) & (dec[m] == 1))
            fp = np.sum((y[m] == 0) & (dec[m] == 1))
            fn = np.sum((y[m] == 1) & (dec[m] == 0))
            precision, recall = tp / max(tp + fp, EPS), tp / max(tp + fn, EPS)
            out.update({f"precision_{name}": precision, f"recall_{name}": recall,
                        f"f1_{name}": 2 * precision * recall / max(precision + recall, EPS)})
    return out


def official_values(year, m):
    if year == 2020:
        return [m["s_auc"], m["s_pauc"]]
    if year == 2021:
        return [m[k] for k in ("s_auc", "s_pauc", "t_auc", "t_pauc") if k in m]  # a file may hold one domain
    return [m["smix_auc"], m["tmix_auc"], m["mix_pauc"]]


def harmonic(values):
    values = np.maximum(np.asarray(values, dtype=np.float64), EPS)
    return len(values) / np.sum(1 / values)


def jackknife(y, s, metric):
    n = len(y)
    theta = np.array([metric(np.delete(y, i), np.delete(s, i)) for i in range(n)])
    sigma = np.sqrt(np.sum((theta - theta.mean()) ** 2) / (n * (n - 1)))
    return abs(stats.t.ppf(0.025, n - 1)) * sigma


def expected_result(year, clips, decisions):
    machines = sorted({c.machine for c in clips})
    sections = {m: {} for m in machines}
    for c in clips:
        sections[c.machine].setdefault((c.section, c.subset), []).append(c)
    per_section = {m: {key: expected_section(cs, decisions) for key, cs in sections[m].items()} for m in machines}

    def values(machine, subset=None):
        return [v for (_, sub), m in per_section[machine].items() if subset in (None, sub)
                for v in official_values(year, m)]

    subsets = sorted({c.subset for c in clips})
    by_machine = {
        m: {"official": None, "subsets": {}, "sections": {f"{sec:02d}": v for (sec, _), v in per_section[m].items()}}
        for m in machines
    }
    if year == 2020:
        for m in machines:
            by_machine[m]["official"] = float(np.mean(values(m)))
            by_machine[m]["subsets"] = {sub: float(np.mean(values(m, sub))) for sub in subsets if values(m, sub)}
        subset_scores = {sub: float(np.mean([by_machine[m]["subsets"][sub] for m in machines
                                             if sub in by_machine[m]["subsets"]])) for sub in subsets}
        official = float(np.mean([by_machine[m]["official"] for m in machines]))
    else:
        for m in machines:
            by_machine[m]["official"] = harmonic(values(m))
            by_machine[m]["subsets"] = {sub: harmonic(values(m, sub)) for sub in subsets if values(m, sub)}
        subset_scores = {sub: harmonic([v for m in machines for v in values(m, sub)]) for sub in subsets}
        official = harmonic([v for m in machines for v in values(m)])
    result = {"year": year, "official_score": official, "machines": by_machine, "subsets": subset_scores}
    if year >= 2022:
        _, y, s, _ = arrays(clips)
        result["ci95"] = (jackknife(y, s, auc) + jackknife(y, s, pauc)) / 2
    return result


def assert_matches(got, expected):
    assert got["year"] == expected["year"]
    assert set(got["machines"]) == set(expected["machines"])
    for machine, exp in expected["machines"].items():
        mine = got["machines"][machine]
        assert set(mine["sections"]) == set(exp["sections"]), machine
        for section, metrics in exp["sections"].items():
            values = mine["sections"][section]
            assert set(values) == set(metrics), (machine, section)
            for name, value in metrics.items():
                assert abs(values[name] - value) <= SECTION_TOL, (machine, section, name, values[name], value)
        assert abs(mine["official"] - exp["official"]) <= OFFICIAL_TOL, machine
        assert mine["subsets"].keys() == exp["subsets"].keys(), machine
        for subset, value in exp["subsets"].items():
            assert abs(mine["subsets"][subset] - value) <= OFFICIAL_TOL, (machine, subset)
    assert got["subsets"].keys() == expected["subsets"].keys()
    for subset, value in expected["subsets"].items():
        assert abs(got["subsets"][subset] - value) <= OFFICIAL_TOL, subset
    assert abs(got["official_score"] - expected["official_score"]) <= OFFICIAL_TOL
    if "ci95" in expected:
        assert abs(got["ci95"] - expected["ci95"]) <= OFFICIAL_TOL


# ---------------------------------------------------------------- the trees of each year

BOTH = (8, 4, 5, 3)
SOURCE_ONLY = (8, 4)
PLANS = {
    2020: [("fan", 0, "dev"), ("fan", 2, "dev"), ("fan", 1, "eval"), ("ToyCar", 1, "dev"), ("ToyCar", 5, "eval")],
    2021: [("fan", 0, "dev"), ("fan", 3, "eval"), ("ToyTrain", 4, "eval")],
    2022: [("bearing", 1, "dev"), ("bearing", 3, "eval"), ("valve", 5, "eval")],
    2023: [("fan", 0, "dev"), ("bandsaw", 0, "eval"), ("ToyTank", 0, "eval")],
    2024: [("3DPrinter", 0, "eval"), ("ToyCircuit", 0, "eval")],
    2025: [("AutoTrash", 0, "eval"), ("ToyPet", 0, "eval")],
    2026: [("ToyCarEmu", 0, "dev"), ("ToyDrone", 0, "eval"), ("Sander", 0, "eval")],
}


def spec_clips(year, subset):
    """Clips of every machine type and section (2020: ID) of ``year``'s ``subset``: a complete submission."""
    counts = SOURCE_ONLY if year == 2020 else BOTH
    groups = [(m, s) for m, sections in sorted(YEARS[year].sections[subset].items()) for s in sections]
    return [c for i, (machine, section) in enumerate(groups)
            for c in make_clips(year * 100 + i, machine, section, subset, counts)]


def year_clips(year):
    counts = SOURCE_ONLY if year == 2020 else BOTH
    return [c for i, (machine, section, subset) in enumerate(PLANS[year])
            for c in make_clips(year * 10 + i, machine, section, subset, counts)]


@pytest.fixture
def registry(registry):
    assert registry.get("scorers", "dcase2023").distribution == "asd-datasets"
    return registry


def test_trees_have_ties_and_both_subsets():
    clips = year_clips(2023)
    assert {c.subset for c in clips} == {"dev", "eval"}
    section = [c for c in clips if c.machine == "bandsaw"]
    normal = {c.score for c in section if not c.label}
    assert normal & {c.score for c in section if c.label}
    assert len({submitted_name(2023, c) for c in section}) == len(section)


@pytest.mark.parametrize("year", sorted(PLANS))
def test_official_round_trip(registry, tmp_path, year):
    clips = year_clips(year)
    scores, gt = write_tree(year, clips, tmp_path)
    got = evaluate(year, scores, gt)
    expected = expected_result(year, clips, decisions=year >= 2021)
    assert_matches(got, expected)
    assert set(got) == {"year", "official_score", "machines", "subsets", "complete", "missing"} | (
        {"ci95"} if year >= 2022 else set())
    assert got["complete"] is True and got["missing"] == []
    for data in got["machines"].values():
        assert {"official", "sections"} <= set(data)
        assert all(re.fullmatch(r"\d\d", key) for key in data["sections"])


@pytest.mark.parametrize("year", [2020, 2021, 2023])
def test_dev_files_need_no_ground_truth(registry, tmp_path, year):
    clips = spec_clips(year, "dev")
    scores, _ = write_tree(year, clips, tmp_path)
    got = evaluate(year, scores, None)
    assert_matches(got, expected_result(year, clips, decisions=year >= 2021))
    assert set(got["subsets"]) == {"dev"} and got["complete"] is True and got["missing"] == []


@pytest.mark.parametrize("year", [2020, 2023])
def test_dev_names_must_belong_to_their_file(registry, tmp_path, year):
    clips = [c for c in year_clips(year) if c.subset == "dev"]
    scores, _ = write_tree(year, clips, tmp_path)
    path = sorted(scores.glob("anomaly_score_*.csv"))[0]
    lines = path.read_text().splitlines()
    lines[0] = re.sub(r"(id|section)_\d\d_", r"\1_09_", lines[0], count=1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ArtifactError, match=re.escape(str(path)) + ".*(does not belong|belongs to ID 09)"):
        evaluate(year, scores, None)


def test_2020_machine_official_is_the_mean_of_its_ids_auc_and_pauc(registry, tmp_path):
    clips = [c for c in year_clips(2020) if c.machine == "fan"]
    scores, gt = write_tree(2020, clips, tmp_path)
    got = evaluate(2020, scores, gt)["machines"]["fan"]
    dev = [got["sections"][s] for s in ("00", "02")]
    assert got["subsets"]["dev"] == pytest.approx(
        (np.mean([m["s_auc"] for m in dev]) + np.mean([m["s_pauc"] for m in dev])) / 2, abs=OFFICIAL_TOL)
    eval_id = got["sections"]["01"]
    assert got["subsets"]["eval"] == pytest.approx((eval_id["s_auc"] + eval_id["s_pauc"]) / 2, abs=OFFICIAL_TOL)


def test_2020_eval_list_with_label_taken_from_the_labelled_name(registry, tmp_path):
    clips = [c for c in year_clips(2020) if c.subset == "eval"]
    scores, gt = write_tree(2020, clips, tmp_path)
    rows = [line.split(",") for line in (gt / "eval_data_list.csv").read_text().splitlines()]
    write_csv(gt / "eval_data_list.csv", [(row[0], row[1] if len(row) > 1 else "", "") for row in rows])
    assert_matches(evaluate(2020, scores, gt), expected_result(2020, clips, decisions=False))


@pytest.mark.parametrize("year", [2023, 2024, 2025, 2026])
def test_full_names_are_mapped_to_concealed_names(registry, tmp_path, year):
    clips = year_clips(year)
    concealed = evaluate(year, *write_tree(year, clips, tmp_path / "concealed"))
    full_scores, full_gt = write_tree(year, clips, tmp_path / "full", full=True)
    assert any("_test_anomaly_" in line for line in
               (full_scores / f"anomaly_score_{file_key(year, clips[-1])}.csv").read_text().splitlines())
    assert evaluate(year, full_scores, full_gt) == concealed


def test_zero_auc_is_clamped_to_machine_epsilon(registry, tmp_path):
    clips = [Clip("fan", 0, "dev", d, y, i, float(s), 0) for i, (d, y, s) in enumerate(
        [(0, 0, 0.1), (0, 0, 0.2), (0, 1, 0.15), (1, 0, 0.8), (1, 0, 0.7), (1, 1, 0.3), (1, 1, 0.4)])]
    scores, _ = write_tree(2023, clips, tmp_path)
    got = evaluate(2023, scores, None, allow_partial=True)
    section = got["machines"]["fan"]["sections"]["00"]
    assert (section["tmix_auc"], section["smix_auc"]) == (0.0, pytest.approx(5 / 6, abs=SECTION_TOL))
    expected = 3 / (1 / section["smix_auc"] + 1 / EPS + 1 / section["mix_pauc"])
    assert got["official_score"] == pytest.approx(expected, rel=1e-12)
    assert got["official_score"] > 0


# ---------------------------------------------------------------- hand-computed ties


def test_ties_count_half_in_every_auc_type(registry, tmp_path):
    rows = [(0, 0, 0.1), (0, 0, 0.2), (0, 0, 0.5), (0, 0, 0.5), (0, 1, 0.5), (0, 1, 0.9),
            (1, 0, 0.3), (1, 0, 0.5), (1, 1, 0.2), (1, 1, 0.5)]
    clips = [Clip("fan", 0, "dev", d, y, i, s, 0) for i, (d, y, s) in enumerate(rows)]
    scores, _ = write_tree(2023, clips, tmp_path, decisions=False)
    got = evaluate(2023, scores, None, allow_partial=True)["machines"]["fan"]
    section = got["sections"]["00"]
    # s: 0.5 beats 0.1, 0.2 and ties two 0.5 -> 3; 0.9 beats all 4
    # t: 0.2 beats none; 0.5 beats 0.3, ties 0.5 -> 1.5
    # smix/tmix/mix: source, target, all normals against all four anomalies 0.5, 0.9, 0.2, 0.5
    # mix pAUC: ROC (0, 1/4) -> (1/2, 3/4) through the 3 normals tied with 2 anomalies at 0.5,
    #   TPR(0.1) = 0.35, area 0.1 * (0.25 + 0.35) / 2 = 0.03, McClish 0.5 * (1 + 0.025 / 0.095) = 12/19
    hand = {"s_auc": Fraction(7, 8), "t_auc": Fraction(3, 8), "smix_auc": Fraction(23, 32),
            "tmix_auc": Fraction(5, 8), "mix_auc": Fraction(11, 16), "mix_pauc": Fraction(12, 19)}
    for name, value in hand.items():
        assert section[name] == pytest.approx(float(value), abs=SECTION_TOL), name
    assert got["official"] == pytest.approx(3 / float(Fraction(32, 23) + Fraction(8, 5) + Fraction(19, 12)),
                                            abs=OFFICIAL_TOL)


def test_pauc_with_ties_across_the_fpr_boundary(registry, tmp_path):
    normal = [0.95, 0.7, 0.7] + [k / 100 for k in range(17)]
    anomaly = [0.99, 0.7, 0.6, 0.2]
    clips = [Clip("ToyCar", 1, "dev", 0, y, i, s, 0)
             for i, (y, s) in enumerate([(0, s) for s in normal] + [(1, s) for s in anomaly])]
    scores, _ = write_tree(2020, clips, tmp_path)
    section = evaluate(2020, scores, None, allow_partial=True)["machines"]["ToyCar"]["sections"]["01"]
    # AUC: 20 + (17 + 2 * 0.5) + 17 + 17 wins of 80 pairs
    assert section["s_auc"] == pytest.approx(72 / 80, abs=SECTION_TOL)
    # ROC (0, 1/4) -> (1/20, 1/4) -> (3/20, 1/2): the tie at 0.7 spans FPR 0.05..0.15, TPR(0.1) = 3/8,
    # area 0.05 * 1/4 + 0.05 * (1/4 + 3/8) / 2 = 0.028125, McClish 0.5 * (1 + 0.023125 / 0.095) = 189/304
    assert section["s_pauc"] == pytest.approx(189 / 304, abs=SECTION_TOL)


# ---------------------------------------------------------------- errors


def only_eval_2023(tmp_path):
    clips = [c for c in year_clips(2023) if c.machine == "bandsaw"]
    scores, gt = write_tree(2023, clips, tmp_path)
    return scores, gt, scores / "anomaly_score_bandsaw_section_00_test.csv", \
        scores / "decision_result_bandsaw_section_00_test.csv"


def edit(path, change):
    path.write_text("".join(line + "\n" for line in change(path.read_text().splitlines())))


def first_name(lines):
    return lines[0].split(",")[0]


EDITS = {
    "missing": ("scores", lambda lines: lines[1:], None, "missing: "),
    "extra": ("scores", lambda lines: lines + ["section_00_9999.wav,0.5"], None, "unexpected: section_00_9999.wav"),
    "duplicate": ("scores", lambda lines: lines + lines[:1], 21, "duplicate file name"),
    "header": ("scores", lambda lines: ["file_name,anomaly_score"] + lines, 1, "no header row"),
    "non-numeric": ("scores", lambda lines: [first_name(lines) + ",high"] + lines[1:], 1, "'high' is not a number"),
    "nan": ("scores", lambda lines: [first_name(lines) + ",nan"] + lines[1:], 1, "not finite"),
    "decision 2": ("decisions", lambda lines: [first_name(lines) + ",2"] + lines[1:], 1, "must be 0 or 1"),
    "decision missing": ("decisions", lambda lines: lines[:-1], None, "missing: "),
    "three columns": ("scores", lambda lines: [lines[0] + ",1"] + lines[1:], 1, "expected 'file name,value'"),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_malformed_submission_names_the_file(registry, tmp_path, case):
    scores, gt, score_file, decision_file = only_eval_2023(tmp_path)
    which, change, line, message = EDITS[case]
    path = score_file if which == "scores" else decision_file
    edit(path, change)
    where = f"{path}:{line}" if line else f"{path}:"
    with pytest.raises(ArtifactError, match=re.escape(where) + ".*" + re.escape(message)):
        evaluate(2023, scores, gt)


@pytest.mark.parametrize("machine", ["drill", "3DPrinter"])
def test_unknown_machine_type_for_the_year(registry, tmp_path, machine):
    scores, gt, score_file, _ = only_eval_2023(tmp_path)
    score_file.rename(scores / f"anomaly_score_{machine}_section_00_test.csv")
    message = re.escape(str(scores)) + f".*'{machine}' is not a machine type of DCASE 2023"
    with pytest.raises(ArtifactError, match=message):
        evaluate(2023, scores, gt)


@pytest.mark.parametrize("year", sorted(PLANS))
def test_empty_scores_folder(registry, tmp_path, year):
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "notes.txt").write_text("nothing\n")
    with pytest.raises(ArtifactError, match=re.escape(str(tmp_path / "scores")) + ": no score files"):
        evaluate(year, tmp_path / "scores", None)


@pytest.mark.parametrize("year", sorted(PLANS))
def test_concealed_names_without_ground_truth(registry, tmp_path, year):
    clips = [c for c in year_clips(year) if c.subset == "eval"]
    scores, _ = write_tree(year, clips, tmp_path)
    first = scores / f"anomaly_score_{file_key(year, min(clips, key=lambda c: (c.machine.lower(), c.section)))}.csv"
    with pytest.raises((ArtifactError, DatasetError), match=re.escape(str(first))):
        evaluate(year, scores, None)


def test_2022_missing_domain_ground_truth_names_the_file(registry, tmp_path):
    clips = [c for c in year_clips(2022) if c.machine == "valve"]
    scores, gt = write_tree(2022, clips, tmp_path)
    (gt / "ground_truth_domain" / "ground_truth_valve_section_05_test.csv").unlink()
    data = gt / "ground_truth_data" / "ground_truth_valve_section_05_test.csv"
    with pytest.raises(DatasetError, match=re.escape(str(data)) + ".*ground_truth_domain"):
        evaluate(2022, scores, gt)


GROUND_TRUTH_EDITS = {
    "data header": ("ground_truth_data", lambda lines: ["file_name,label"] + lines),
    "domain not a number": ("ground_truth_domain", lambda lines: [first_name(lines) + ",source"] + lines[1:]),
    "attributes three columns": ("ground_truth_attributes", lambda lines: [lines[0] + ",x"] + lines[1:]),
    "domain value 2": ("ground_truth_domain", lambda lines: [first_name(lines) + ",2"] + lines[1:]),
}


@pytest.mark.parametrize("case", sorted(GROUND_TRUTH_EDITS))
def test_malformed_ground_truth_names_the_file(registry, tmp_path, case):
    scores, gt, _, _ = only_eval_2023(tmp_path)
    folder, change = GROUND_TRUTH_EDITS[case]
    path = gt / folder / "ground_truth_bandsaw_section_00_test.csv"
    edit(path, change)
    with pytest.raises((ArtifactError, DatasetError), match=re.escape(str(path))):
        evaluate(2023, scores, gt)


def test_missing_ground_truth_folder(registry, tmp_path):
    scores, _ = write_tree(2023, year_clips(2023), tmp_path)
    scorer = registry.create("scorers", "dcase2023")
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "nowhere"))):
        scorer.read_submission(scores, tmp_path / "nowhere")


# ---------------------------------------------------------------- the command line


def test_cli_writes_the_evaluation_as_json(registry, tmp_path):
    scores, gt = write_tree(2023, year_clips(2023), tmp_path)
    out = tmp_path / "out.json"
    result = run_cli("evaluate", "--year", "2023", "--scores", str(scores),
                     "--ground-truth", str(gt), "--json", str(out))
    assert result.exit_code == 0, result.output
    expected = evaluate(2023, scores, gt)
    assert json.loads(out.read_text()) == expected
    assert f"official score: {100 * expected['official_score']:.2f}%" in result.output
    assert f"bandsaw: {100 * expected['machines']['bandsaw']['official']:.2f}%" in result.output


def test_cli_2026_on_the_ground_truth_of_a_synthetic_tree(registry, tmp_path):
    tree = write_original(2026, tmp_path, subsets=("eval",), n_train=1, n_test=6, clip_seconds=0.2)
    hidden = [c for c in plan(2026, subsets=("eval",), n_train=1, n_test=6) if c.concealed]
    rng = np.random.default_rng(26)
    scores = tmp_path / "scores"
    values, all_values = {}, []
    for machine in YEARS[2026].machines("eval"):
        clips = [c for c in hidden if c.machine == machine]
        s = rng.permutation(len(clips)) / len(clips)
        write_csv(scores / f"anomaly_score_{machine}_section_00_test.csv", [(c.name, v) for c, v in zip(clips, s)])
        y = np.array([c.label == "anomaly" for c in clips], dtype=int)
        d = np.array([c.domain == "target" for c in clips])
        values[machine] = [roc_auc_score(y[(d == domain) | (y == 1)], s[(d == domain) | (y == 1)])
                           for domain in (False, True)] + [roc_auc_score(y, s, max_fpr=0.1)]
        all_values += values[machine]
    out = tmp_path / "out.json"
    result = run_cli("evaluate", "--year", "2026", "--scores", str(scores),
                     "--ground-truth", str(tree / "ground_truth"), "--json", str(out))
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert got["complete"] is True and set(got["machines"]) == set(values)
    for machine, expected in values.items():
        assert got["machines"][machine]["official"] == pytest.approx(stats.hmean(expected), abs=OFFICIAL_TOL)
    assert got["official_score"] == pytest.approx(stats.hmean(all_values), abs=OFFICIAL_TOL)


def test_cli_bad_submission_is_a_clean_error(registry, tmp_path):
    scores, gt, score_file, _ = only_eval_2023(tmp_path)
    edit(score_file, lambda lines: lines + lines[:1])
    result = run_cli("evaluate", "--year", "2023", "--scores", str(scores), "--ground-truth", str(gt))
    assert result.exit_code == 5  # a score file that cannot be read
    assert "Error:" in result.output and str(score_file) in result.output
    assert "Traceback" not in result.output


def test_cli_scores_without_year_is_a_usage_error(registry, tmp_path):
    scores, _ = write_tree(2023, year_clips(2023), tmp_path)
    result = run_cli("evaluate", "--scores", str(scores))
    assert result.exit_code == 2
    assert "--year" in result.output and "Usage:" in result.output


def test_cli_unknown_year_is_a_clean_error(registry, tmp_path):
    scores, _ = write_tree(2023, year_clips(2023), tmp_path)
    result = run_cli("evaluate", "--year", "2019", "--scores", str(scores))
    assert result.exit_code == 2  # an unknown scorer
    assert "Error:" in result.output and "dcase2019" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- partial submissions


def without(scores, *keys):
    """Delete the score and decision files of ``keys`` (file keys) from a submission."""
    for key in keys:
        for prefix in ("anomaly_score", "decision_result"):
            (scores / f"{prefix}_{key}.csv").unlink(missing_ok=True)


# year, subset, with ground truth, file keys removed, what the error and ``missing`` name
PARTIAL = {
    "2023 dev": (2023, "dev", False, ["valve_section_00_test", "gearbox_section_00_test"],
                 ["gearbox section 00", "valve section 00"]),
    "2021 dev per domain": (2021, "dev", False, ["fan_section_01_target_test", "pump_section_02_source_test"],
                            ["fan section 01 target", "pump section 02 source"]),
    "2020 dev IDs": (2020, "dev", False, ["pump_id_04", "ToyConveyor_id_01", "ToyConveyor_id_02", "ToyConveyor_id_03"],
                     ["pump ID 04", "ToyConveyor ID 01", "ToyConveyor ID 02", "ToyConveyor ID 03"]),
    "2021 eval with ground truth": (2021, "eval", True, ["ToyTrain_section_04_source_test"],
                                    ["ToyTrain section 04 source"]),
    "2023 eval with ground truth": (2023, "eval", True, ["ToyTank_section_00_test"], ["ToyTank section 00"]),
    "2020 eval with ground truth": (2020, "eval", True, ["fan_id_05"], ["fan ID 05"]),
}


def partial_tree(tmp_path, case):
    year, subset, with_gt, removed, _ = PARTIAL[case]
    clips = spec_clips(year, subset)
    scores, gt = write_tree(year, clips, tmp_path)
    without(scores, *removed)
    kept = [c for c in clips if file_key(year, c) not in removed]
    return year, scores, gt if with_gt else None, kept


@pytest.mark.parametrize("case", sorted(PARTIAL))
def test_missing_groups_are_an_error_naming_them(registry, tmp_path, case):
    year, scores, gt, _ = partial_tree(tmp_path, case)
    names = PARTIAL[case][4]
    message = re.escape(f"{scores}: no score files for {', '.join(names)}; --allow-partial scores the rest")
    with pytest.raises(ArtifactError, match=message):
        evaluate(year, scores, gt)


@pytest.mark.parametrize("case", sorted(PARTIAL))
def test_allow_partial_scores_the_rest(registry, tmp_path, case):
    year, scores, gt, kept = partial_tree(tmp_path, case)
    got = evaluate(year, scores, gt, allow_partial=True)
    assert got["complete"] is False and got["missing"] == PARTIAL[case][4]
    assert_matches(got, expected_result(year, kept, decisions=year >= 2021))


def test_only_the_subsets_the_submission_touches_are_expected(registry, tmp_path):
    clips = spec_clips(2023, "dev")
    scores, _ = write_tree(2023, clips, tmp_path)
    assert evaluate(2023, scores, None)["complete"] is True  # no eval machine type is asked for
    without(scores, *[f"{m}_section_00_test" for m in YEARS[2023].machines("dev") if m != "fan"])
    with pytest.raises(ArtifactError, match=r"no score files for bearing section 00, gearbox section 00, slider"):
        evaluate(2023, scores, None)


def test_partial_official_score_is_the_mean_over_the_machines_present(registry, tmp_path):
    year, scores, gt, kept = partial_tree(tmp_path, "2023 dev")
    official = evaluate(year, scores, gt, allow_partial=True)["official_score"]
    values = []
    for machine in sorted({c.machine for c in kept}):
        _, y, s, _ = arrays([c for c in kept if c.machine == machine])
        d = np.array([c.domain for c in kept if c.machine == machine])
        values += [roc_auc_score(y[(d == 0) | (y == 1)], s[(d == 0) | (y == 1)]),
                   roc_auc_score(y[(d == 1) | (y == 1)], s[(d == 1) | (y == 1)]), roc_auc_score(y, s, max_fpr=0.1)]
    assert len(values) == 3 * 5
    assert official == pytest.approx(stats.hmean(values), abs=OFFICIAL_TOL)


def test_cli_missing_groups_without_allow_partial(registry, tmp_path):
    _, scores, _, _ = partial_tree(tmp_path, "2023 dev")
    result = run_cli("evaluate", "--year", "2023", "--scores", str(scores))
    assert result.exit_code == 5 and "Traceback" not in result.output
    assert "Error:" in result.output and "gearbox section 00, valve section 00; --allow-partial" in result.output


def test_cli_allow_partial_reports_what_is_missing(registry, tmp_path):
    year, scores, gt, kept = partial_tree(tmp_path, "2023 dev")
    out = tmp_path / "out.json"
    result = run_cli("evaluate", "--year", "2023", "--scores", str(scores), "--allow-partial", "--json", str(out))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "INCOMPLETE, scored without: gearbox section 00; valve section 00"
    got = json.loads(out.read_text())
    assert got["complete"] is False and got["missing"] == ["gearbox section 00", "valve section 00"]
    assert set(got["machines"]) == {c.machine for c in kept}
    assert_matches(got, expected_result(year, kept, decisions=True))
    assert lines[1] == f"official score: {100 * got['official_score']:.2f}% (ci95 ± {100 * got['ci95']:.2f})"


def test_cli_complete_submission_says_so_in_json(registry, tmp_path):
    scores, _ = write_tree(2023, spec_clips(2023, "dev"), tmp_path)
    out = tmp_path / "out.json"
    result = run_cli("evaluate", "--year", "2023", "--scores", str(scores), "--json", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("official score: ")
    got = json.loads(out.read_text())
    assert got["complete"] is True and got["missing"] == []


# ---------------------------------------------------------------- machine types with clips of one class


def normal_only_tree(tmp_path, machine="bandsaw"):
    """2023 eval, every machine type with ground truth; ``machine``'s test clips are all normal."""
    clips = spec_clips(2023, "eval")
    clips = [c for c in clips if c.machine != machine] + make_clips(7, machine, 0, "eval", counts=(8, 0, 5, 0))
    return clips, *write_tree(2023, clips, tmp_path)


def test_machine_with_only_normal_clips(registry, tmp_path, caplog):
    clips, scores, gt = normal_only_tree(tmp_path)
    with caplog.at_level("WARNING", logger="asdcore"):
        got = evaluate(2023, scores, gt)
    assert [r.getMessage() for r in caplog.records] == [
        "bandsaw section 00: no anomalous clips, so s_auc, s_pauc, t_auc, t_pauc, smix_auc, tmix_auc, mix_auc, "
        "mix_pauc (which need both normal and anomalous clips) are NaN"]
    assert got["complete"] is False and got["missing"] == ["bandsaw section 00: no anomalous clips"]
    bandsaw = got["machines"].pop("bandsaw")
    assert np.isnan(bandsaw["official"]) and np.isnan(bandsaw["subsets"]["eval"])
    section = bandsaw["sections"]["00"]
    assert all(np.isnan(section[name]) for name in section if name.endswith("auc"))
    assert section["precision_source"] == 0.0 and section["recall_target"] == 0.0  # decisions as before
    others = [c for c in clips if c.machine != "bandsaw"]
    assert_matches(got, expected_result(2023, others, decisions=True))
    alone = evaluate(2023, *write_tree(2023, others, tmp_path / "alone"))
    assert got["machines"] == alone["machines"]
    assert (got["official_score"], got["ci95"], got["subsets"]) == (alone["official_score"], alone["ci95"],
                                                                    alone["subsets"])


def test_machine_with_one_class_in_one_subset_only(registry, tmp_path, caplog):
    clips = [c for c in year_clips(2022) if c.machine != "valve"]
    clips += make_clips(3, "valve", 0, "dev", counts=(0, 4, 0, 3)) + make_clips(4, "valve", 3, "eval")
    with caplog.at_level("WARNING", logger="asdcore"):
        got = evaluate(2022, *write_tree(2022, clips, tmp_path))
    [warning] = caplog.records  # once, though the overall score evaluates the section again
    assert warning.getMessage().startswith("valve section 00: no normal clips, so s_auc, s_pauc, t_auc")
    assert got["missing"] == ["valve section 00: no normal clips"]
    valve = got["machines"]["valve"]
    assert np.isnan(valve["subsets"]["dev"]) and np.isfinite(valve["subsets"]["eval"]) and np.isnan(valve["official"])
    expected = expected_result(2022, [c for c in clips if c.machine != "valve" or c.subset == "eval"], True)
    assert got["subsets"]["eval"] == pytest.approx(expected["subsets"]["eval"], abs=OFFICIAL_TOL)
    assert got["subsets"]["dev"] == pytest.approx(expected["subsets"]["dev"], abs=OFFICIAL_TOL)
    overall = expected_result(2022, [c for c in clips if c.machine != "valve"], True)
    assert got["official_score"] == pytest.approx(overall["official_score"], abs=OFFICIAL_TOL)


def test_cli_machine_with_only_normal_clips_writes_null(registry, tmp_path):
    _, scores, gt = normal_only_tree(tmp_path, machine="ToyTank")
    out = tmp_path / "out.json"
    result = run_cli("evaluate", "--year", "2023", "--scores", str(scores), "--ground-truth",
                     str(gt), "--json", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "INCOMPLETE, scored without: ToyTank section 00: no anomalous clips"
    assert "NaN" not in out.read_text()
    got = json.loads(out.read_text())
    assert got["machines"]["ToyTank"]["official"] is None
    assert got["machines"]["ToyTank"]["sections"]["00"]["smix_auc"] is None
    assert got["complete"] is False and got["missing"] == ["ToyTank section 00: no anomalous clips"]
