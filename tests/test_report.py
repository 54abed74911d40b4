import base64
import os
import re
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from matplotlib.image import imread
from threadpoolctl import threadpool_limits

import toy_plugin
from asdcore.cli import cli
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.overview import collect, overview
from asdcore.registry import Registry, use_registry
from asdcore.report import write_report

SECTIONS = ("Overview", "Metrics per machine type and section", "ROC curves, score histograms and embedding maps",
            "Training loss")
WIDTH, HEIGHT = 1280, 2000


@pytest.fixture(autouse=True)
def one_thread():
    """t-SNE of a few clips: on a small, busy machine its threads only contend."""
    with threadpool_limits(1):
        yield


@pytest.fixture
def no_matplotlib(monkeypatch):
    """As without the ``plots`` extra: only plots the run drew itself can be shown (and drawing costs no time)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.fixture(scope="module")
def output(tmp_path_factory, toy_root):
    """Two seeds of a trained toy frontend (3 epochs) scored by two backends, without plots of its own."""
    registry = Registry(entry_points=False)
    registry.add_plugin(toy_plugin, name="toy_plugin", distribution="toy-dist", version="9.9")
    root = tmp_path_factory.mktemp("report") / "out"
    config = toy_plugin.pipeline(
        toy_root, root, frontend={"name": "centred", "params": {"noise": 0.3}, "training": {"epochs": 3}},
        backends=[{"name": "distance"}, {"id": "far", "name": "distance", "params": {"scale": 2}}],
        evaluation={"plots": False})
    with use_registry(registry), threadpool_limits(1):
        Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()
    return root


@pytest.fixture(scope="module")
def report(output):
    path = output.parent / "report.html"
    with threadpool_limits(1):
        result = CliRunner().invoke(cli, ["report", str(output), "-o", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output == f"report: {path}\n"
    return path


def chromium(*args, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
    command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
               "--enable-logging=stderr", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


def test_sections_tables_and_nothing_fetched(report, output):
    html = report.read_text()
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in html
    assert not re.search(r"https?://", html) and "<link" not in html
    assert re.findall(r'src="([^"]{0,22})', html) == ["data:image/png;base64,"] * 10  # 2 machines x (t-SNE + 2 x 2)
    distance = overview(collect([output])).cells["toyrun", "distance"]["toy", "dev"]
    assert distance.n == 2 and distance.std > 0
    assert f'{100 * distance.mean:.2f}<span class="std"> ± {100 * distance.std:.2f}</span>' in html
    for metric in ("s_auc", "s_pauc", "t_auc", "t_pauc", "smix_auc", "tmix_auc", "mix_auc", "mix_pauc", "f1_target"):
        assert f"<th>{metric}</th>" in html
    assert html.count("<polyline") == 2 and "seed1 (3 epochs" in html  # one loss curve per seed
    assert "asdcore[plots]" not in html


def test_rendered_by_chromium(report, tmp_path):
    dom = chromium("--dump-dom", report.as_uri(), tmp_path=tmp_path)
    assert "Uncaught" not in dom.stderr, dom.stderr
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    for section in SECTIONS:
        assert section in text
    assert re.search(r"toyrun\s+distance\s+\d+\.\d\d\s+± \d+\.\d\d", text)
    assert re.search(r"toyrun\s+far\s+\d+\.\d\d\s+± \d+\.\d\d", text)

    screenshot = tmp_path / "report.png"
    chromium(f"--screenshot={screenshot}", f"--window-size={WIDTH},{HEIGHT}", report.as_uri(), tmp_path=tmp_path)
    image = imread(screenshot)
    assert image.shape[:2] == (HEIGHT, WIDTH)
    assert image[..., :3].std() > 0.05 and len({tuple(p) for p in image[::7, ::7, :3].reshape(-1, 3)}) > 50


def test_headers_sort_rows_in_chromium(report, tmp_path):
    clicks = ('<script>document.querySelectorAll("#overview th")[1].click();'
              'document.querySelectorAll("#overview th")[1].click();'
              'document.querySelectorAll("#metrics th")[3].click();</script></body>')
    page = tmp_path / "clicked.html"
    page.write_text(report.read_text().replace("</body>", clicks))
    dom = chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path).stdout
    overview_rows = re.findall(r'<td class="text">toyrun</td><td class="text">(\w+)</td>', dom)
    assert overview_rows[:2] == ["far", "distance"] and 'aria-sort="descending"' in dom
    metrics = dom[dom.index('id="metrics"'):dom.index('id="plots"')]
    machines = re.findall(r'<tr[^>]*><td class="text">\w+</td><td class="text">(\w+)', metrics)
    # s_auc ascending: alpha's are lower than beta's; machine "all" has none, so it goes last
    assert machines[:8] == ["alpha"] * 4 + ["beta"] * 4 and machines[8:10] == ["all", "all"]


def test_without_matplotlib_the_rest_is_rendered(output, tmp_path, no_matplotlib):
    html = write_report([output], tmp_path / "report.html").read_text()
    assert "pip install &#x27;asdcore[plots]&#x27;" in html and "data:image/png" not in html
    assert "<th>s_auc</th>" in html and html.count("<polyline") == 2


def test_plots_of_the_run_are_reused_while_up_to_date(output, tmp_path, no_matplotlib):
    root = tmp_path / "out"
    shutil.copytree(output, root)
    seed = root / "toyrun" / "toy" / "seed0"
    png = seed / "plots" / "roc_alpha_distance.png"
    png.parent.mkdir()
    png.write_bytes(b"\x89PNG made by the plots unit")
    encoded = base64.b64encode(png.read_bytes()).decode()
    html = write_report([root], tmp_path / "a.html").read_text()
    assert encoded in html and html.count("data:image/png") == 1
    score_file = seed / "alpha" / "distance" / "anomaly_score_alpha_section_00_test.csv"
    os.utime(score_file, (png.stat().st_mtime + 10,) * 2)  # rescored after the plot
    assert encoded not in write_report([root], tmp_path / "b.html").read_text()


def test_draw_false_shows_only_the_runs_own_plots(output, tmp_path):
    html = write_report([output], tmp_path / "report.html", draw=False).read_text()
    assert "data:image/png" not in html and "asdcore[plots]" not in html
    assert "<th>s_auc</th>" in html and html.count("<polyline") == 2


def test_grid_folder_and_damaged_files(output, tmp_path, no_matplotlib):
    root = tmp_path / "out"
    shutil.copytree(output, root)
    grid = root / "grids" / "g"
    grid.mkdir(parents=True)
    (grid / "grid.yaml").write_text("grid: {name: g, seed_ensemble: null}\npipelines:\n  - {name: toyrun}\n")
    (root / "toyrun" / "toy" / "seed1" / "frontend" / "shared" / "train_log.csv").write_text("epoch,lr\n1,0.1\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["report", str(grid), "-o", str(tmp_path / "grid.html")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "grid.html").read_text()
    assert "toyrun / toy" in html and html.count("<polyline") == 1
    assert "seed1/frontend/shared/train_log.csv: not a training log with columns epoch and loss" in html

    (grid / "grid.yaml").write_text("pipelines: 3\n")
    result = runner.invoke(cli, ["report", str(grid), "-o", str(tmp_path / "bad.html")])
    assert result.exit_code == 5 and f"{grid / 'grid.yaml'}: not the grid record" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(cli, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 5 and "empty: no summary.csv" in result.output
