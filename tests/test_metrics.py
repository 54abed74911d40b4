import numpy as np
import pytest

from asdcore import metrics
from asdcore.errors import AsdcoreError


def test_auc_counts_ordered_pairs():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.3])
    # anomaly 0.8 beats all 3 normals, anomaly 0.3 beats 1 normal -> 4 of 6 pairs
    assert metrics.auc(y, s) == pytest.approx(4 / 6)


def test_pauc_is_mcclish_standardised():
    y = np.array([0] * 10 + [1] * 2)
    s = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.95, 0.9, 0.85])
    # FPR steps of 0.1: anomalies at 0.9 and 0.85 rank below one normal (0.95): ROC reaches TPR 0 at FPR 0.1
    # so the raw area on [0, 0.1] is 0 and the standardised value is 0.5 * (1 + (0 - 0.005) / 0.095)
    assert metrics.pauc(y, s) == pytest.approx(0.5 * (1 + (0 - 0.005) / 0.095))
    s_perfect = s.copy()
    s_perfect[10:] = [2.0, 3.0]
    assert metrics.pauc(y, s_perfect) == pytest.approx(1.0)


def test_hmean_clamps_to_epsilon():
    assert metrics.hmean([0.5, 1.0]) == pytest.approx(2 / 3)
    assert metrics.hmean([0.0, 1.0]) == pytest.approx(2 / (1 / np.finfo(float).eps + 1))


def test_section_metrics_selects_domains():
    domain = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    label = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    score = np.array([0.1, 0.2, 0.9, 0.3, 0.5, 0.6, 0.4, 0.95])
    values = metrics.section_metrics(domain, label, score)
    assert list(values) == list(metrics.METRICS)
    assert values["s_auc"] == pytest.approx(metrics.auc(label[:4], score[:4]))
    smix = (domain == 0) | (label == 1)
    assert values["smix_auc"] == pytest.approx(metrics.auc(label[smix], score[smix]))
    tmix = (domain == 1) | (label == 1)
    assert values["tmix_auc"] == pytest.approx(metrics.auc(label[tmix], score[tmix]))
    only_source = metrics.section_metrics(domain[:4], label[:4], score[:4])
    assert list(only_source) == ["s_auc", "s_pauc"]


@pytest.mark.parametrize(("keep", "undefined", "reason"), [
    (lambda domain, label: label == 0, list(metrics.METRICS), "no anomalous clips"),
    (lambda domain, label: label == 1, list(metrics.METRICS), "no normal clips"),
    (lambda domain, label: (domain == 1) | (label == 0), ["s_auc", "s_pauc"], "no anomalous source clips"),
    (lambda domain, label: (domain == 0) | (label == 1), ["t_auc", "t_pauc", "tmix_auc"], "no normal target clips"),
])
def test_single_class_metrics_are_nan_and_warned(caplog, keep, undefined, reason):
    domain = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    label = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    score = np.array([0.1, 0.2, 0.9, 0.3, 0.5, 0.6, 0.4, 0.95])
    mask = keep(domain, label)
    with caplog.at_level("WARNING", logger="asdcore"):
        values = metrics.section_metrics(domain[mask], label[mask], score[mask], where="fan section 00")
    assert [name for name, value in values.items() if np.isnan(value)] == undefined
    d, y, s = domain[mask], label[mask], score[mask]
    clips = {"s": d == 0, "t": d == 1, "smix": (d == 0) | (y == 1), "tmix": (d == 1) | (y == 1), "mix": d >= 0}
    for name in set(values) - set(undefined):
        roc = clips[name.rsplit("_", 1)[0]]
        assert values[name] == (metrics.pauc if name.endswith("pauc") else metrics.auc)(y[roc], s[roc]), name
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.name == "asdcore"
    assert record.getMessage() == f"fan section 00: {reason}, so {', '.join(undefined)} (which need both normal " \
                                  "and anomalous clips) are NaN"


def test_complete_sections_log_nothing(caplog):
    with caplog.at_level("WARNING", logger="asdcore"):
        metrics.section_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4]))
    assert caplog.records == []
    assert metrics.lacking(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])) == ""


def test_section_metrics_rejects_unusable_input():
    with pytest.raises(AsdcoreError, match="no normal/anomaly label"):
        metrics.section_metrics(np.array([0, 0]), np.array([0, -1]), np.array([0.1, 0.2]))
    with pytest.raises(AsdcoreError, match="NaN"):
        metrics.section_metrics(np.array([0, 0]), np.array([0, 1]), np.array([0.1, np.nan]))


def test_decision_metrics_match_counts():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    d = np.array([1, 0, 1, 1, 0, 0, 0])
    out = metrics.decision_metrics(y, d)
    assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 / 3)
    none = metrics.decision_metrics(y, np.zeros(7))
    assert none == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert all(type(v) is float for v in out.values())


def test_jackknife_ci95_formula():
    from scipy import stats

    rng = np.random.default_rng(0)
    y = np.array([0] * 12 + [1] * 8)
    s = rng.normal(size=20) + y
    thetas = np.array([metrics.auc(np.delete(y, i), np.delete(s, i)) for i in range(20)])
    sigma = np.sqrt(((thetas - thetas.mean()) ** 2).sum() / (20 * 19))
    assert metrics.jackknife_ci95(metrics.auc, y, s) == pytest.approx(abs(stats.t.ppf(0.025, 19)) * sigma, rel=1e-12)


@pytest.mark.parametrize("max_fpr", [None, 0.1, 0.05, 0.3])
def test_unchecked_roc_auc_is_bit_identical_to_scikit_learn(max_fpr):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    for trial in range(300):
        n = int(rng.integers(3, 250))
        y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
        s = rng.normal(size=n) + y * rng.uniform(0, 2)
        if trial % 3:
            s = np.round(s, trial % 3 - 1)  # ties, many of them
        assert metrics.roc_auc_unchecked(y, s, max_fpr) == float(roc_auc_score(y, s, max_fpr=max_fpr)), trial


def test_jackknife_with_the_unchecked_metric_equals_scikit_learn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 120)
    s = np.round(rng.normal(size=120) + y, 1)
    assert metrics.jackknife_ci95(metrics.roc_auc_unchecked, y, s) == metrics.jackknife_ci95(metrics.auc, y, s)
    fast = metrics.jackknife_ci95(lambda a, b: metrics.roc_auc_unchecked(a, b, 0.1), y, s)
    assert fast == metrics.jackknife_ci95(metrics.pauc, y, s)


def test_gamma_threshold_recovers_the_percentile():
    from scipy import stats

    scores = stats.gamma.rvs(3.0, loc=1.0, scale=0.5, size=4000, random_state=0)
    result = metrics.gamma_threshold(scores, 90)
    assert result["gamma_fit"] == 1
    assert result["threshold"] == pytest.approx(stats.gamma.ppf(0.9, 3.0, loc=1.0, scale=0.5), rel=0.03)
    tight = 0.03 + 0.004 * stats.gamma.rvs(50, size=990, random_state=1) / 50
    fitted = metrics.gamma_threshold(tight, 90)["threshold"]
    assert np.percentile(tight, 80) < fitted < np.percentile(tight, 97)
    constant = metrics.gamma_threshold(np.full(10, 0.5), 90)
    assert constant == {"threshold": 0.5, "percentile": 90, "gamma_fit": 0}
