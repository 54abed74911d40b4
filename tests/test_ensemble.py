"""Score ensembles: every rule against hand computation, identical members, runs on disk, the CLI and table."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import rankdata

import toy_plugin
from asdcore.cli import cli
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.combination import combine
from asdcore.ensemble import Member, run_ensemble, seed_members
from asdcore.errors import ArtifactError, ConfigError
from asdcore.overview import collect, overview
from asdcore.submission import SCORES, TRAIN_KEY, read_table

RNG = np.random.default_rng(0)
TEST = [RNG.gamma(2.0, 1.0, 12), RNG.normal(5.0, 2.0, 12), RNG.gamma(2.0, 1.0, 12)]
TRAIN = [RNG.gamma(2.0, 1.0, 20), RNG.normal(5.0, 2.0, 20), RNG.gamma(2.0, 1.0, 20)]
TEST[2][:4] = TEST[2][4]  # ties


def _z(s, t):
    return (s - t.mean()) / t.std()


def test_mean_and_mean_z_with_weights():
    test, train = combine("mean", TEST, TRAIN, [1, 2, 1])
    np.testing.assert_allclose(test, 0.25 * TEST[0] + 0.5 * TEST[1] + 0.25 * TEST[2])
    np.testing.assert_allclose(train, 0.25 * TRAIN[0] + 0.5 * TRAIN[1] + 0.25 * TRAIN[2])
    test, train = combine("mean_z", TEST, TRAIN)
    np.testing.assert_allclose(test, sum(_z(s, t) for s, t in zip(TEST, TRAIN)) / 3)
    np.testing.assert_allclose(train, sum(_z(t, t) for t in TRAIN) / 3)


def test_min_z():
    test, train = combine("min_z", TEST, TRAIN)
    np.testing.assert_allclose(test, np.min([_z(s, t) for s, t in zip(TEST, TRAIN)], axis=0))
    with pytest.raises(ConfigError, match="min_z rule takes no weights"):
        combine("min_z", TEST, TRAIN, [1, 1, 1])


def test_rank_mean_averages_ties_and_places_training_scores():
    test, train = combine("rank_mean", TEST, TRAIN, [3, 1, 0])
    expected = sum(w * (rankdata(s) - 1) / 11 for w, s in zip([0.75, 0.25, 0.0], TEST))
    np.testing.assert_allclose(test, expected)
    lone = combine("rank_mean", TEST[:1], TRAIN[:1])[1]
    ordered = np.sort(TEST[0])
    for value, rank in zip(TRAIN[0], lone):  # between the test scores it falls among, on the same scale
        assert (np.sum(ordered < value) - 1) / 11 <= rank <= np.sum(ordered <= value) / 11


@pytest.mark.parametrize("rule", ["mean", "mean_z", "min_z", "rank_mean"])
def test_identical_members_rank_like_the_member(rule):
    test, _ = combine(rule, [TEST[1]] * 3, [TRAIN[1]] * 3)
    np.testing.assert_array_equal(np.argsort(test), np.argsort(TEST[1]))
    if rule == "mean":
        np.testing.assert_allclose(test, TEST[1])


@pytest.mark.parametrize("rule, weights, message", [
    ("median", None, "unknown ensemble rule 'median'; rules: mean, mean_z, min_z, rank_mean"),
    ("mean", [1, -1, 1], r"ensemble weights \[1, -1, 1\]: need 3 non-negative numbers"),
    ("mean", [1, 1], "need 3"),
])
def test_bad_rules_and_weights(rule, weights, message):
    with pytest.raises(ConfigError, match=message):
        combine(rule, TEST, TRAIN, weights)


def test_member_syntax():
    assert Member.parse("out/p/d/seed1:knn=0.5") == Member(__import__("pathlib").Path("out/p/d/seed1"), "knn", 0.5)
    with pytest.raises(ConfigError, match="expected SEED_DIR:BACKEND"):
        Member.parse("out/p/d/seed1")
    with pytest.raises(ConfigError, match="weight 'x' is not a number"):
        Member.parse("out/p/d/seed1:knn=x")


@pytest.fixture
def runs(registry, toy_root, tmp_path):
    backends = [{"name": "distance"}, {"id": "scaled", "name": "distance", "params": {"scale": 2.0}}]
    roots = {}
    for name, frontend in (("spec", {"name": "spectrum"}), ("centred", {"name": "centred", "params": {"noise": 0.3}})):
        config = toy_plugin.pipeline(toy_root, tmp_path / "out", name=name, frontend=frontend, backends=backends)
        roots[name] = Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()
    return roots


def _test_scores(seed_dir, machine, backend):
    return read_table(seed_dir / machine / backend / f"{SCORES}_{machine}_section_00_test.csv")


def test_ensemble_of_two_runs_is_written_and_evaluated(registry, runs, tmp_path):
    members = [Member(runs["spec"] / "seed0", "distance"), Member(runs["centred"] / "seed0", "distance", 3.0)]
    folder = run_ensemble(members, "mean_z", tmp_path / "out", "both", registry=registry)
    assert folder == tmp_path / "out" / "both" / "toy" / "seed0"
    for machine in ("alpha", "beta"):
        result = folder / machine / "mean_z"
        fused = _test_scores(folder, machine, "mean_z")
        parts = []
        for member in members:
            train = np.array(list(read_table(member.directory(machine) / f"{SCORES}_{TRAIN_KEY}.csv").values()))
            test = _test_scores(member.seed_dir, machine, member.backend)
            parts.append({n: (v - train.mean()) / train.std() for n, v in test.items()})
        assert fused == pytest.approx({n: 0.25 * parts[0][n] + 0.75 * parts[1][n] for n in fused}, rel=1e-12)
        assert (result / f"decision_result_{machine}_section_00_test.csv").exists()
        assert (result / "evaluation.csv").exists() and (result / "threshold.json").exists()
    recorded = json.loads((folder / "ensembles.json").read_text())
    assert recorded["mean_z"]["members"][1] == {"seed_dir": str(runs["centred"] / "seed0"), "backend": "distance",
                                                "weight": 3.0}
    table = overview(collect([tmp_path / "out"]))
    assert ("both", "mean_z") in table.cells and ("spec", "distance") in table.cells


def test_an_ensemble_of_one_member_equals_the_member(registry, runs, tmp_path):
    member = Member(runs["spec"] / "seed1", "scaled")
    folder = run_ensemble([member], "mean", tmp_path / "e", registry=registry)
    assert folder.name == "seed1"
    for machine in ("alpha", "beta"):
        assert _test_scores(folder, machine, "mean") == _test_scores(member.seed_dir, machine, "scaled")
    summary = (folder / "summary.csv").read_text().replace("mean,", "scaled,")
    member_rows = [r for r in (member.seed_dir / "summary.csv").read_text().splitlines() if r.startswith("scaled,")]
    assert sorted(summary.splitlines()[1:]) == sorted(member_rows)


def test_seed_ensemble_is_one_flag(registry, runs, tmp_path):
    result = CliRunner().invoke(cli, ["-q", "ensemble", "--seeds", str(runs["centred"]), "--rule", "rank_mean"])
    assert result.exit_code == 0, result.output
    folder = runs["centred"].parent.parent / "centred_seeds" / "toy" / "seed0+1"
    assert f"results: {folder}" in result.output and "| distance |" in result.output and "| scaled |" in result.output
    assert set(json.loads((folder / "ensembles.json").read_text())) == {"distance", "scaled"}
    assert [m.seed for m in seed_members(runs["centred"], "distance")] == [0, 1]


def test_members_of_other_datasets_or_lacking_machines_are_errors(registry, runs, tmp_path):
    incomplete = runs["spec"] / "seed0" / "beta" / "distance" / f"{SCORES}_{TRAIN_KEY}.csv"
    incomplete.unlink()
    with pytest.raises(ArtifactError, match=r"beta/distance: no scores of beta, which other members have"):
        run_ensemble([Member(runs["spec"] / "seed0", "distance"), Member(runs["spec"] / "seed0", "scaled")], "mean",
                     tmp_path / "x", registry=registry)
    other = runs["centred"] / "config.yaml"
    other.write_text(other.read_text().replace("gain: 1.0", "gain: 2.0", 1))
    with pytest.raises(ArtifactError, match="its dataset differs"):
        run_ensemble([Member(runs["spec"] / "seed1", "distance"), Member(runs["centred"] / "seed1", "distance")],
                     "mean", tmp_path / "x", registry=registry)
