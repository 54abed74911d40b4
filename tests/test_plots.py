import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread
from threadpoolctl import threadpool_limits

import toy_plugin
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.errors import ArtifactError
from asdcore.features import load_features, save_features
from asdcore.plots import features_files, histogram_figure, plot_command, plot_run, read_backend_scores, read_threshold, roc_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def one_thread():
    """The toy maps are tiny: on a small, busy machine t-SNE's OpenMP threads only contend."""
    with threadpool_limits(1):
        yield


@pytest.fixture
def seed_dir(registry, toy_root, tmp_path):
    """A finished toy run of one seed (machine types alpha and beta, backend distance)."""
    config = toy_plugin.pipeline(toy_root, tmp_path / "runs", seeds=[0])
    return Pipeline.create(load_config(config, registry=registry), registry, progress=False).run() / "seed0"


def expected(directory, machines=("alpha", "beta"), backends=("distance",)):
    names = [f"embedding_{m}.png" for m in machines]
    names += [f"{kind}_{m}_{b}.png" for kind in ("roc", "hist") for m in machines for b in backends]
    return sorted(directory / n for n in names)


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, path
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 400 and image.shape[2] in (3, 4)


def labels(fig):
    return [line.get_label() for line in fig.axes[0].lines]


def test_plot_run_writes_one_png_per_machine_and_backend(seed_dir):
    (seed_dir / "alpha" / "distance" / "threshold.json").write_text(json.dumps({"threshold": 1.5, "gamma": [1, 2]}))
    paths = plot_run(seed_dir)
    assert paths == expected(seed_dir / "plots")
    for path in paths:
        assert_png(path)
    assert sorted(p.name for p in (seed_dir / "plots").iterdir()) == [p.name for p in paths]  # no temp files left


def test_curves_threshold_line_and_skipped_subsets(seed_dir):
    test = load_features(features_files(seed_dir)["alpha"], "test")
    scores = read_backend_scores(seed_dir / "alpha" / "distance", test)
    assert np.isfinite(scores).all()
    assert [label.split(":")[0] for label in labels(roc_figure(test, scores, "t")) if "AUC" in label] == \
        ["source", "target", "all"]
    assert any(label.startswith("threshold 1.5") for label in labels(histogram_figure(test, scores, 1.5, "t")))
    assert not any(label.startswith("threshold") for label in labels(histogram_figure(test, scores, None, "t")))

    test.is_anomaly = np.where(test.domain == 1, -1, test.is_anomaly)  # target clips unlabelled
    assert [label.split(":")[0] for label in labels(roc_figure(test, scores, "t")) if "AUC" in label] == \
        ["source", "all"]
    test.is_anomaly = np.where(test.is_anomaly == 1, -1, test.is_anomaly)  # no anomaly left
    assert not [label for label in labels(roc_figure(test, scores, "t")) if "AUC" in label]


def test_other_score_layouts_without_threshold_or_anomalies(seed_dir, tmp_path):
    shutil.rmtree(seed_dir / "beta")  # one machine type keeps this test fast
    alpha = seed_dir / "alpha"
    (alpha / "distance" / "threshold.json").unlink(missing_ok=True)
    # another backend whose scores are split by domain, as some DCASE years name the files
    rows = (alpha / "distance" / "anomaly_score_alpha_section_00_test.csv").read_text().splitlines()
    (alpha / "other").mkdir()
    for domain in ("source", "target"):
        lines = [r for r in rows if r.startswith(domain)]
        (alpha / "other" / f"anomaly_score_alpha_section_00_{domain}_test.csv").write_text("\n".join(lines) + "\n")
    features = features_files(seed_dir)["alpha"]
    train, test = (load_features(features, split) for split in ("train", "test"))
    test.is_anomaly = np.where(test.is_anomaly == 1, -1, test.is_anomaly)
    save_features(features, {"train": train, "test": test})

    paths = plot_run(seed_dir, tmp_path / "elsewhere")
    assert paths == expected(tmp_path / "elsewhere", ("alpha",), ("distance", "other"))
    for path in paths:
        assert_png(path)


def test_plot_command_on_seed_folder_and_parent(seed_dir, tmp_path):
    shutil.rmtree(seed_dir / "beta")
    runner = CliRunner()
    result = runner.invoke(plot_command, [str(seed_dir)])
    assert result.exit_code == 0, result.output
    assert result.output == f"3 plots in {seed_dir.resolve() / 'plots'}\n"
    result = runner.invoke(plot_command, [str(seed_dir.parent), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.output == f"3 plots in {tmp_path / 'out'}\n"
    assert sorted((tmp_path / "out").iterdir()) == expected(tmp_path / "out", ("alpha",))


def test_errors_name_the_path(seed_dir, tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(plot_command, [str(empty)])
    assert result.exit_code == 1 and f"{empty}: no features.h5" in result.output

    score_file = seed_dir / "alpha" / "distance" / "anomaly_score_alpha_section_00_test.csv"
    score_file.write_text("file name,score\n" + score_file.read_text())
    result = runner.invoke(plot_command, [str(seed_dir)])
    assert result.exit_code == 1 and f"{score_file.resolve()}:1: 'score' is not a number" in result.output

    score_file.write_text("stranger.wav,0.5\n")
    with pytest.raises(ArtifactError, match="not test clips .*stranger.wav"):
        plot_run(seed_dir)
    (seed_dir / "alpha" / "distance" / "threshold.json").write_text("{}")
    with pytest.raises(ArtifactError, match="threshold.json: expected"):
        read_threshold(seed_dir / "alpha" / "distance")


def test_import_is_light():
    code = "import sys, asdcore.plots; print(sorted(m for m in ('matplotlib', 'sklearn') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_plots_without_matplotlib_say_which_extra_to_install(monkeypatch):
    from asdcore.errors import AsdcoreError
    from asdcore.plots import _figure

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(AsdcoreError, match=r"plots need matplotlib: pip install 'asdcore\[plots\]'"):
        _figure((2, 2))
