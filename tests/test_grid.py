"""Grids: recipes × datasets × seeds as one plan; the overview table says exactly what the grid file says."""
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import toy_plugin
from asdcore.cli import cli
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.errors import ConfigError, UnitsFailedError
from asdcore.grid import load_grid
from asdcore.overview import collect, overview, write_overview


def recipe(folder: Path, name: str, **changes) -> str:
    config = toy_plugin.pipeline(Path("unused"), Path("unused"), name=name, **changes)
    del config["output"]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path.name


@pytest.fixture(scope="module")
def two_roots(tmp_path_factory) -> list[Path]:
    base = tmp_path_factory.mktemp("grid-data")
    return [toy_plugin.make_data(base / "a", seed=1), toy_plugin.make_data(base / "b", seed=2)]


def write_grid(folder: Path, roots, **changes) -> Path:
    grid = {
        "name": "g",
        "recipes": [recipe(folder, "plain"),
                    recipe(folder, "trained", frontend={"name": "centred", "params": {"noise": 0.4},
                                                        "training": {"epochs": 1}},
                           backends=[{"name": "distance"}, {"id": "far", "name": "distance",
                                                            "params": {"scale": 2.0}}])],
        "datasets": [{"name": "toy", "root": str(root), "tag": f"-{i}"} for i, root in enumerate(roots)],
        "seeds": [0, 1],
        "output": str(folder / "out"),
    }
    grid.update(changes)
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def test_a_grid_equals_its_pipelines_run_one_by_one(registry, two_roots, tmp_path):
    grid = load_grid(write_grid(tmp_path, two_roots), registry=registry, progress=False)
    assert [(p.resolved.config.name, p.dataset.id) for p in grid.pipelines] == [
        ("plain", "toy-0"), ("plain", "toy-1"), ("trained", "toy-0"), ("trained", "toy-1")]
    toy_plugin.PREPARED.clear()
    result = grid.run(progress=False)
    assert sorted(toy_plugin.PREPARED) == sorted(two_roots)  # each dataset made ready once for its two recipes
    assert result.failure is None and result.missing == []
    assert "| trained / far | " in result.markdown and "toy-1 dev" in result.markdown
    assert all(o.status == "done" for o in result.outcomes.values())
    assert "plain/toy-0/shared/extract/alpha" in result.outcomes and "trained/toy-1/seed1/train/shared" in result.outcomes

    separate = []
    for pipeline in grid.pipelines:
        config = dict(pipeline.context.config, output=str(tmp_path / "separate"))
        Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()
        separate += [tmp_path / "separate" / pipeline.resolved.config.name / pipeline.dataset.id / f"seed{s}"
                     for s in (0, 1)]
    write_overview(overview(collect(separate)), tmp_path / "separate")
    for name in ("overview.csv", "overview.md"):
        assert (result.folder / name).read_bytes() == (tmp_path / "separate" / name).read_bytes()
    described = yaml.safe_load((result.folder / "grid.yaml").read_text())
    assert described["grid"]["seeds"] == [0, 1] and len(described["pipelines"]) == 4

    again = load_grid(write_grid(tmp_path, two_roots), registry=registry, progress=False).run(progress=False)
    assert {o.status for o in again.outcomes.values()} == {"skipped"}
    same = load_grid(write_grid(tmp_path, two_roots), registry=registry, progress=False)
    for pipeline in same.pipelines:  # a pipeline run alone after the grid finds its units done
        assert {r for r in pipeline.plan().reasons().values()} == {None}


def test_the_table_holds_only_the_grids_seeds_and_up_to_date_runs(registry, two_roots, tmp_path):
    path = write_grid(tmp_path, two_roots[:1], recipes=[recipe(tmp_path, "plain")], seeds=[0, 1, 2])
    load_grid(path, registry=registry, progress=False).run(progress=False)
    fewer = load_grid(path, seeds="0,1", registry=registry, progress=False).run(progress=False)
    assert "over 2 seed(s)" in fewer.markdown  # seed2's folder is there but not in the grid
    changed = load_grid(path, ["backends.0.params.scale=3.0"], seeds="0,1", registry=registry, progress=False)
    plan, reasons = changed.plan()
    assert reasons["plain/toy-0/seed0/score/alpha/distance"] == "changed: backend"
    assert "plain/toy-0/seed0/summary" in [u.id for u in plan] and reasons["plain/toy-0/shared/extract/alpha"] is None


def test_a_failing_unit_leaves_an_incomplete_table_that_says_so(registry, two_roots, tmp_path):
    path = write_grid(tmp_path, two_roots, recipes=[recipe(tmp_path, "plain"),
                                                    recipe(tmp_path, "flaky", backends=[{"name": "distance",
                                                           "params": {"fail_on": "beta"}}])], seeds=[0])
    result = load_grid(path, registry=registry, progress=False).run(progress=False)
    assert isinstance(result.failure, UnitsFailedError)
    assert "flaky/toy-0/seed0/score/beta/distance: RuntimeError: backend failure on beta" in str(result.failure)
    assert result.missing == ["flaky/toy-0/seed0", "flaky/toy-1/seed0"]
    assert result.markdown.startswith("INCOMPLETE: without flaky/toy-0/seed0, flaky/toy-1/seed0")
    assert "| plain / distance |" in result.markdown and "flaky" not in result.markdown.split("\n", 2)[2]
    assert (result.folder / "overview.md").read_text() == result.markdown

    out = CliRunner().invoke(cli, ["grid", str(path), "--no-progress"])
    assert out.exit_code == 1 and "INCOMPLETE: without flaky/toy-0/seed0" in out.output
    assert "Error: 2 of" in out.output and "Traceback" not in out.output


def test_dry_run_lists_every_unit_and_says_which_data_are_missing(registry, two_roots, tmp_path):
    path = write_grid(tmp_path, [two_roots[0], tmp_path / "nowhere"], recipes=[recipe(tmp_path, "plain")])
    out = CliRunner().invoke(cli, ["grid", str(path), "--dry-run"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    missing = next(line for line in lines if line.startswith("run   plain/toy-1/seed1/evaluate/<machine>/distance"))
    assert missing.endswith(f"data missing: {tmp_path / 'nowhere'}: No such file or directory")
    assert any(line.startswith("run   plain/toy-0/shared/extract/alpha") and "not done yet" in line for line in lines)
    assert lines[-2] == f"{len(lines) - 2} units: {len(lines) - 2} to run, 0 up to date"
    assert lines[-1] == f"data missing: {tmp_path / 'nowhere'}: No such file or directory"
    assert not (tmp_path / "out").exists()


def test_grid_files_are_validated_with_their_names(registry, two_roots, tmp_path):
    with pytest.raises(ConfigError, match=r"grid.yaml: recipes: unknown key|grid.yaml:.*unknown key 'recipe'"):
        load_grid(write_grid(tmp_path, two_roots, recipe=["x.yaml"]), registry=registry)
    twice = write_grid(tmp_path, two_roots, recipes=[recipe(tmp_path, "plain"), "plain.yaml"])
    with pytest.raises(ConfigError, match="recipe plain.yaml × datasets.0: writes to plain/toy-0/ as "):
        load_grid(twice, registry=registry)
    bad_set = write_grid(tmp_path, two_roots, recipes=[recipe(tmp_path, "plain")], set={"frontend.params.binz": 3})
    with pytest.raises(ConfigError, match=r"grid.yaml: recipe plain.yaml × datasets.0: frontend.params.binz: unknown"):
        load_grid(bad_set, registry=registry)
    missing = write_grid(tmp_path, two_roots, recipes=["absent.yaml"])
    with pytest.raises(ConfigError, match="cannot read pipeline file .*absent.yaml"):
        load_grid(missing, registry=registry)


def test_set_and_command_line_overrides_reach_every_pipeline(registry, two_roots, tmp_path):
    path = write_grid(tmp_path, two_roots, set={"frontend.params.bins": 8, "evaluation.decision_percentile": 80})
    grid = load_grid(path, ["frontend.params.bins=4"], "3", registry=registry)
    for pipeline in grid.pipelines:
        assert pipeline.resolved.frontend_params["bins"] == 4 and pipeline.resolved.config.seeds == [3]
        assert pipeline.resolved.config.evaluation.decision_percentile == 80
        assert pipeline.resolved.config.output == str(tmp_path / "out")


def test_a_recipes_own_set_applies_to_it_alone_after_the_grids(registry, two_roots, tmp_path):
    path = write_grid(tmp_path, two_roots[:1], set={"backends": [{"id": "near", "name": "distance"}]},
                      recipes=[recipe(tmp_path, "plain"), {"file": recipe(tmp_path, "own"),
                                                           "set": {"backends.0.params": {"scale": 5.0}}}])
    plain, own = load_grid(path, registry=registry).pipelines
    assert plain.resolved.backend_params == {"near": ("distance", {"scale": 1.0, "fail_on": "", "nan": False,
                                                                   "delay": 0.0})}
    assert own.resolved.backend_params["near"][1]["scale"] == 5.0


def test_a_single_pipelines_dry_run_lists_its_units_before_its_data_exist(registry, tmp_path):
    config = toy_plugin.pipeline(tmp_path / "nowhere", tmp_path / "out", seeds=[0],
                                 dataset={"name": "toy", "root": str(tmp_path / "nowhere"), "machines": ["alpha"]})
    lines = Pipeline.create(load_config(config, registry=registry), registry, progress=False).explain()
    assert [line.split()[1] for line in lines] == ["shared/extract/alpha", "seed0/score/alpha/distance",
                                                   "seed0/evaluate/alpha/distance", "seed0/summary", "table"]
    assert all(line.endswith(f"data missing: {tmp_path / 'nowhere'}: No such file or directory") for line in lines)


def test_a_grids_seed_ensembles_join_its_table(registry, two_roots, tmp_path):
    path = write_grid(tmp_path, two_roots[:1], seed_ensemble="mean_z")
    result = load_grid(path, registry=registry, progress=False).run(progress=False)
    assert result.failure is None
    for recipe_name, backends in (("plain", ["distance"]), ("trained", ["distance", "far"])):
        folder = tmp_path / "out" / f"{recipe_name}_seeds" / "toy-0" / "seed0+1"
        assert (folder / "summary.csv").is_file()
        for backend in backends:
            assert f"| {recipe_name}_seeds / {backend} | " in result.markdown
            assert (folder / "alpha" / backend / "anomaly_score_alpha_section_00_test.csv").is_file()
    table = overview(collect([result.folder.parent.parent / "trained_seeds"]))
    assert table.cells[("trained_seeds", "far")][("toy-0", "dev")].n == 1
