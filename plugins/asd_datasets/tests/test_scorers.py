import numpy as np
import pytest

from asdcore import ANOMALY, NORMAL, SOURCE, TARGET, AsdcoreError, FeatureSet, hmean

EPS = np.finfo(np.float64).eps  # the official evaluators clamp every value to it before the harmonic mean
MAX_FPR = 0.1

SOURCE_NORMAL = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95]
SOURCE_ANOMALY = [0.35, 0.75, 0.85, 0.97, 0.99]
TARGET_NORMAL = [0.15, 0.25, 0.45, 0.55, 0.65, 0.72, 0.78, 0.88, 0.92, 0.98]
TARGET_ANOMALY = [0.05, 0.58, 0.82, 0.93, 0.96]


@pytest.fixture
def scorer(registry):
    assert registry.get("scorers", "dcase2023").distribution == "asd-datasets"
    return registry.create("scorers", "dcase2023")


def section(sn, sa, tn, ta, number=0):
    groups = [(sn, SOURCE, NORMAL), (sa, SOURCE, ANOMALY), (tn, TARGET, NORMAL), (ta, TARGET, ANOMALY)]
    rows = [(score, domain, label) for scores, domain, label in groups for score in scores]
    scores, domain, label = map(np.array, zip(*rows))
    n = len(rows)
    return FeatureSet(embedding=np.zeros((n, 1)), path=[f"c{number}_{i}.wav" for i in range(n)],
                      section=np.full(n, number), domain=domain, is_anomaly=label, attribute=[""] * n), scores


def concat(*parts):
    sets, scores = zip(*parts)
    fields = ("embedding", "path", "section", "domain", "is_anomaly", "attribute")
    return FeatureSet(**{f: np.concatenate([getattr(s, f) for s in sets]) for f in fields}), np.concatenate(scores)


def auc_by_pairs(normal, anomaly):
    wins = sum(1.0 if a > n else 0.5 if a == n else 0.0 for a in anomaly for n in normal)
    return wins / (len(normal) * len(anomaly))


def pauc_by_hand(normal, anomaly, max_fpr=0.1):
    """McClish-standardised partial AUC of a tie-free ROC staircase, integrated step by step."""
    area, fpr = 0.0, 0.0
    for threshold in sorted(normal, reverse=True):
        width = min(1 / len(normal), max_fpr - fpr)
        if width <= 0:
            break
        tpr = sum(a > threshold for a in anomaly) / len(anomaly)
        area, fpr = area + width * tpr, fpr + width
    return 0.5 * (1 + (area - 0.005) / (0.1 - 0.005))


def hmean_by_hand(values):
    return len(values) / sum(1 / v for v in values)


def expected_metrics(sn, sa, tn, ta):
    return {
        "s_auc": auc_by_pairs(sn, sa), "s_pauc": pauc_by_hand(sn, sa),
        "t_auc": auc_by_pairs(tn, ta), "t_pauc": pauc_by_hand(tn, ta),
        "smix_auc": auc_by_pairs(sn, sa + ta), "tmix_auc": auc_by_pairs(tn, sa + ta),
        "mix_auc": auc_by_pairs(sn + tn, sa + ta), "mix_pauc": pauc_by_hand(sn + tn, sa + ta),
    }


BASE = (SOURCE_NORMAL, SOURCE_ANOMALY, TARGET_NORMAL, TARGET_ANOMALY)


def test_hand_computations_are_what_we_think():
    assert auc_by_pairs(SOURCE_NORMAL, SOURCE_ANOMALY) == (3 + 7 + 8 + 10 + 10) / 50
    top_two_normals_area = (1 / 10 + 3 / 10) / 20
    assert pauc_by_hand(SOURCE_NORMAL + TARGET_NORMAL, SOURCE_ANOMALY + TARGET_ANOMALY) == pytest.approx(
        0.5 * (1 + (top_two_normals_area - 0.005) / 0.095))


def test_section_metrics_match_hand_computation(scorer):
    test, scores = section(*BASE)
    evaluation = scorer.evaluate("fan", test, scores, {0: "dev"})
    expected = expected_metrics(*BASE)
    got = {name: value for sec, name, value in evaluation.metrics if sec == "00"}
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    official = hmean_by_hand([expected["smix_auc"], expected["tmix_auc"], expected["mix_pauc"]])
    assert evaluation.official == {"dev": pytest.approx(official, abs=1e-12)}
    assert ("dev", "official", evaluation.official["dev"]) in evaluation.metrics
    assert evaluation.pooled["dev"] == pytest.approx([expected["smix_auc"], expected["tmix_auc"], expected["mix_pauc"]])


def test_pauc_interpolates_between_normals(scorer):
    sn, sa, tn, ta = SOURCE_NORMAL[:7], SOURCE_ANOMALY, TARGET_NORMAL[:8], TARGET_ANOMALY
    test, scores = section(sn, sa, tn, ta)
    got = {name: value for sec, name, value in scorer.evaluate("fan", test, scores, {0: "dev"}).metrics if sec == "00"}
    for name, value in expected_metrics(sn, sa, tn, ta).items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_only_the_subsets_sections_are_official(scorer):
    flipped = tuple([1 - s for s in group] for group in BASE)
    test, scores = concat(section(*BASE, number=0), section(*flipped, number=1))
    evaluation = scorer.evaluate("fan", test, scores, {0: "dev"})
    assert {sec for sec, _, _ in evaluation.metrics} == {"00", "01", "dev"}
    section1 = {name: value for sec, name, value in evaluation.metrics if sec == "01"}
    assert section1["s_auc"] == pytest.approx(1 - auc_by_pairs(SOURCE_NORMAL, SOURCE_ANOMALY))
    alone = scorer.evaluate("fan", *section(*BASE), {0: "dev"})
    assert evaluation.official == pytest.approx(alone.official)
    assert evaluation.pooled["dev"] == pytest.approx(alone.pooled["dev"])


def test_aggregate_is_the_pooled_harmonic_mean(scorer):
    other = ([0.1, 0.4, 0.6, 0.8, 0.9], [0.3, 0.7, 0.99], [], [])
    fan = scorer.evaluate("fan", *section(*BASE), {0: "dev"})
    valve = scorer.evaluate("valve", *section(*other), {0: "dev"})
    fan_metrics = expected_metrics(*BASE)
    values = [fan_metrics["smix_auc"], fan_metrics["tmix_auc"], fan_metrics["mix_pauc"],
              auc_by_pairs(*other[:2]), pauc_by_hand(*other[:2])]
    result = scorer.aggregate([fan, valve])
    assert set(result) == {"dev"} and set(result["dev"]) == {"official", "ci95", "complete"}
    assert result["dev"]["complete"] == 1.0
    assert result["dev"]["official"] == pytest.approx(hmean_by_hand(values), abs=1e-12)
    assert result["dev"]["official"] != pytest.approx(hmean_by_hand([fan.official["dev"], valve.official["dev"]]), abs=1e-4)


def test_subsets_are_aggregated_separately(scorer):
    fan = scorer.evaluate("fan", *section(*BASE), {0: "dev"})
    valve = scorer.evaluate("valve", *section(*BASE[::-1]), {0: "eval"})
    result = scorer.aggregate([fan, valve])
    assert result["dev"]["official"] == pytest.approx(fan.official["dev"])
    assert result["eval"]["official"] == pytest.approx(valve.official["eval"])


def test_single_domain_section_uses_its_auc_and_pauc(scorer):
    test, scores = section(SOURCE_NORMAL, SOURCE_ANOMALY, [], [])
    evaluation = scorer.evaluate("fan", test, scores, {0: "dev"})
    s_auc, s_pauc = auc_by_pairs(SOURCE_NORMAL, SOURCE_ANOMALY), pauc_by_hand(SOURCE_NORMAL, SOURCE_ANOMALY)
    assert [name for sec, name, _ in evaluation.metrics if sec == "00"] == ["s_auc", "s_pauc"]
    assert evaluation.official["dev"] == pytest.approx(hmean_by_hand([s_auc, s_pauc]), abs=1e-12)


@pytest.mark.parametrize(("groups", "metric"), [
    ((SOURCE_NORMAL, [], TARGET_NORMAL, TARGET_ANOMALY), "s_auc"),
    ((SOURCE_NORMAL, SOURCE_ANOMALY, TARGET_NORMAL, []), "t_auc"),
])
def test_domain_without_anomalies_is_nan_for_that_domain_only(scorer, caplog, groups, metric):
    with caplog.at_level("WARNING", logger="asdcore"):
        evaluation = scorer.evaluate("fan", *section(*groups), {0: "dev"})
    got = {name: value for sec, name, value in evaluation.metrics if sec == "00"}
    prefix = metric[0]
    assert [name for name, value in got.items() if np.isnan(value)] == [f"{prefix}_auc", f"{prefix}_pauc"]
    assert f"fan section 00: no anomalous {'source' if prefix == 's' else 'target'} clips" in caplog.text
    assert np.isfinite(evaluation.official["dev"])  # smix_auc, tmix_auc and mix_pauc are defined


def evaluations(scorer, **machines):
    return {name: scorer.evaluate(name, *section(*groups), {0: "dev"}) for name, groups in machines.items()}


@pytest.mark.parametrize("scorer_name", ["dcase2020", "dcase2021", "dcase2022", "dcase2023", "hmean"])
def test_machine_with_only_normal_clips_is_nan_and_left_out(registry, caplog, scorer_name):
    scorer = registry.create("scorers", scorer_name)
    normal_only = (SOURCE_NORMAL, [], TARGET_NORMAL, [])
    other = ([0.1, 0.4, 0.6, 0.8, 0.9], [0.3, 0.7, 0.99], [0.2, 0.5], [0.45, 0.8])
    if scorer_name == "dcase2020":  # no target domain in 2020
        normal_only, other = normal_only[:2] + ([], []), BASE[:2] + ([], [])
    alone = evaluations(scorer, fan=BASE, valve=other)
    with caplog.at_level("WARNING", logger="asdcore"):
        together = evaluations(scorer, fan=BASE, pump=normal_only, valve=other)
    assert "pump section 00: no anomalous clips, so s_auc, s_pauc" in caplog.text
    pump = together.pop("pump")
    assert all(np.isnan(value) for sec, name, value in pump.metrics if name.endswith("auc"))
    assert np.isnan(pump.official["dev"])
    for name, evaluation in together.items():
        assert evaluation.metrics == alone[name].metrics and evaluation.official == alone[name].official
    result = scorer.aggregate([together["fan"], pump, together["valve"]])
    expected = scorer.aggregate(list(alone.values()))
    assert result["dev"]["complete"] == 0.0 and expected["dev"]["complete"] == 1.0
    assert {k: v for k, v in result["dev"].items() if k != "complete"} == \
        {k: v for k, v in expected["dev"].items() if k != "complete"}
    assert np.isfinite(result["dev"]["official"])


def test_subset_without_any_scorable_machine_type(scorer):
    pump = scorer.evaluate("pump", *section(SOURCE_NORMAL, [], TARGET_NORMAL, []), {0: "eval"})
    fan = scorer.evaluate("fan", *section(*BASE), {0: "dev"})
    result = scorer.aggregate([fan, pump])
    assert result["dev"] == scorer.aggregate([fan])["dev"]
    assert np.isnan(result["eval"]["official"]) and np.isnan(result["eval"]["ci95"])
    assert result["eval"]["complete"] == 0.0


def test_unlabelled_clips_and_nan_scores_are_errors(scorer):
    test, scores = section(*BASE)
    with pytest.raises(AsdcoreError, match="NaN"):
        scorer.evaluate("fan", test, np.where(np.arange(len(scores)) == 3, np.nan, scores), {0: "dev"})
    test.is_anomaly[0] = -1
    with pytest.raises(AsdcoreError, match="no normal/anomaly label"):
        scorer.evaluate("fan", test, scores, {0: "dev"})


def test_hmean_clamps_to_machine_epsilon():
    assert hmean([0.5, 1.0]) == pytest.approx(2 / 3)
    assert hmean([0.0]) == EPS
    assert hmean([0.0, 1.0]) == pytest.approx(2 / (1 / EPS + 1), rel=1e-12)
    assert hmean([-0.3, 1.0]) == hmean([0.0, 1.0])


# The official DCASE 2026 baseline on the eval set, in %: (AUC source, AUC target, pAUC) per machine type,
# harmonic mean of the row, and the official score as the evaluator printed it.
BASELINE_2026 = {
    "MSE": ({"ToyDrone": (71.26, 46.80, 55.11, 56.02), "ToothBrush": (59.02, 64.34, 59.79, 60.96),
             "SewingMachine": (64.84, 61.42, 58.11, 61.33), "BlowerDustCollector": (69.48, 88.38, 61.79, 71.61),
             "Sander": (67.14, 44.02, 50.89, 52.39)}, 0.5980289616592438),
    "MAHALA": ({"ToyDrone": (72.76, 54.28, 59.26, 61.17), "ToothBrush": (43.98, 39.40, 52.79, 44.74),
                "SewingMachine": (60.34, 43.76, 50.58, 50.68), "BlowerDustCollector": (67.66, 87.20, 63.89, 71.60),
                "Sander": (69.80, 45.10, 49.47, 52.90)}, 0.5476277174340481),
}


def exact_pauc(percent):
    """The pAUC behind a value rounded to 0.01 %: with 100 normal and 100 anomalous clips, the area under the
    ROC up to FPR 0.1 is a multiple of 1/20000 (1/10000 without ties), and McClish maps it to the pAUC."""
    area = round(((2 * percent / 100 - 1) * (MAX_FPR - MAX_FPR**2 / 2) + MAX_FPR**2 / 2) * 20000) / 20000
    return 0.5 * (1 + (area - MAX_FPR**2 / 2) / (MAX_FPR - MAX_FPR**2 / 2))


@pytest.mark.parametrize("mode", sorted(BASELINE_2026))
def test_2026_official_baseline_scores(registry, mode):
    scorer = registry.create("scorers", "dcase2026")
    rows, official = BASELINE_2026[mode]
    values = []
    for s_auc, t_auc, pauc, row_hmean in rows.values():
        # 50 normals against 100 anomalies: the AUCs are exact with four decimals
        row = [s_auc / 100, t_auc / 100, exact_pauc(pauc)]
        assert scorer.machine_score(row) == pytest.approx(row_hmean / 100, abs=5e-5)
        values += row
    assert len(values) == 15
    assert scorer.mean(values) == pytest.approx(official, rel=1e-15, abs=0)
