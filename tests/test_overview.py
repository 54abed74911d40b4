import csv

import pytest
from click.testing import CliRunner

from asdcore.cli import cli
from asdcore.errors import ArtifactError, ConfigError
from asdcore.overview import collect, overview, write_overview

HEADER = "| pipeline / backend | dcase2020 dev | dcase2020 eval | dcase2023 dev | dcase2023 eval | hmean | amean |"
# (pipeline, dataset, seed) -> backend -> subset -> official score; pA/knn misses dcase2023 eval in seed 2.
OFFICIAL = {
    ("pA", "dcase2020", 0): {"knn": {"dev": 0.74, "eval": 0.60}, "maha": {"dev": 0.40, "eval": 0.30}},
    ("pA", "dcase2020", 1): {"knn": {"dev": 0.76, "eval": 0.62}, "maha": {"dev": 0.40, "eval": 0.30}},
    ("pA", "dcase2023", 0): {"knn": {"dev": 0.50, "eval": 0.70}},
    ("pA", "dcase2023", 1): {"knn": {"dev": 0.55, "eval": 0.80}},
    ("pA", "dcase2023", 2): {"knn": {"dev": 0.60}},
    ("pB", "dcase2020", 0): {"knn": {"dev": 0.90, "eval": 0.80}},
}
# pA/knn on dcase2020: (machine, subset, section, s_auc) per seed; dev means 0.7 and 0.8, eval 0.9 and 0.5.
S_AUC = {
    0: [("fan", "dev", "00", 0.8), ("fan", "dev", "01", 0.6), ("valve", "dev", "00", 0.7),
        ("gearbox", "eval", "00", 0.9)],
    1: [("fan", "dev", "00", 0.9), ("fan", "dev", "01", 0.7), ("valve", "dev", "00", 0.8),
        ("gearbox", "eval", "00", 0.5)],
}


def write_summary(directory, rows):
    directory.mkdir(parents=True)
    lines = ["backend,machine,section,metric,value", *(",".join(map(str, row)) for row in rows)]
    (directory / "summary.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def root(tmp_path):
    for (pipeline, dataset, seed), backends in OFFICIAL.items():
        rows = [(b, "all", subset, "official", v) for b, subsets in backends.items() for subset, v in subsets.items()]
        if (pipeline, dataset) == ("pA", "dcase2020"):
            rows += [("knn", m, section, "s_auc", v) for m, _, section, v in S_AUC[seed]]
            rows += [("knn", m, subset, "official", 0.5) for m, subset in {(m, s) for m, s, _, _ in S_AUC[seed]}]
        write_summary(tmp_path / "out" / pipeline / dataset / f"seed{seed}", rows)
    return tmp_path / "out"


def hmean(values):
    return len(values) / sum(1 / v for v in values)


def test_cells_means_and_markdown(root, tmp_path):
    table = overview(collect([root]))
    assert table.columns == [("dcase2020", "dev"), ("dcase2020", "eval"), ("dcase2023", "dev"), ("dcase2023", "eval")]
    assert list(table.cells) == [("pA", "knn"), ("pA", "maha"), ("pB", "knn")]
    knn = table.cells["pA", "knn"]
    assert knn["dcase2020", "dev"].mean == pytest.approx(0.75)
    assert knn["dcase2020", "dev"].std == pytest.approx(0.02 ** 0.5 / 10)
    assert (knn["dcase2023", "dev"].n, knn["dcase2023", "eval"].n) == (3, 2)
    assert knn["dcase2023", "dev"].std == pytest.approx(0.05)
    assert table.cells["pB", "knn"]["dcase2020", "eval"].std == 0.0
    means = [0.75, 0.61, 0.55, 0.75]
    assert table.hmean(("pA", "knn")) == pytest.approx(hmean(means))
    assert table.amean(("pA", "knn")) == pytest.approx(sum(means) / 4)

    markdown = write_overview(table, tmp_path / "o")
    lines = markdown.splitlines()
    assert lines[0].startswith("official (%): mean ± std over n seeds per cell")
    assert lines[2] == HEADER and lines[3] == "|---" * 7 + "|"
    assert lines[4] == ("| pA / knn | 75.00 ± 1.41 (n=2) | 61.00 ± 1.41 (n=2) | 55.00 ± 5.00 (n=3) "
                        f"| 75.00 ± 7.07 (n=2) | {100 * hmean(means):.2f} | 66.50 |")
    assert lines[6] == "| pB / knn | 90.00 ± 0.00 (n=1) | 80.00 ± 0.00 (n=1) | – | – | 84.71 | 85.00 |"
    assert (tmp_path / "o" / "overview.md").read_text() == markdown


def test_csv_rows(root, tmp_path):
    write_overview(overview(collect([root])), tmp_path)
    with open(tmp_path / "overview.csv", newline="") as f:
        rows = {(r["pipeline"], r["backend"], r["dataset"], r["subset"]): r for r in csv.DictReader(f)}
    cell = rows["pA", "knn", "dcase2023", "eval"]
    assert (cell["metric"], cell["mean"], cell["n"]) == ("official", "0.75", "2")
    assert float(cell["std"]) == pytest.approx(0.02 ** 0.5 / 2)
    assert float(rows["pB", "knn", "all", "hmean"]["mean"]) == pytest.approx(hmean([0.9, 0.8]))
    assert rows["pA", "maha", "all", "amean"]["std"] == "" and rows["pA", "maha", "all", "amean"]["n"] == "2"
    assert len(rows) == 4 + 2 + 2 + 2 + 2 + 2


def test_per_machine_metric_is_averaged_over_machines_and_sections(root):
    table = overview(collect([root]), metric="s_auc")
    assert list(table.cells) == [("pA", "knn")] and table.columns == [("dcase2020", "dev"), ("dcase2020", "eval")]
    dev, eval_ = table.cells["pA", "knn"].values()
    assert (dev.mean, dev.n) == (pytest.approx(0.75), 2)
    assert eval_.mean == pytest.approx(0.7) and eval_.std == pytest.approx(0.08 ** 0.5)


def test_machine_in_two_subsets_cannot_be_split(tmp_path):
    rows = [("knn", "fan", "00", "s_auc", 0.8), ("knn", "fan", "dev", "official", 0.8),
            ("knn", "fan", "eval", "official", 0.7)]
    write_summary(tmp_path / "p" / "d" / "seed0", rows)
    with pytest.raises(ArtifactError, match="machine 'fan' has official scores in subsets dev, eval"):
        overview(collect([tmp_path]), "s_auc")


def test_paths_reached_twice_count_once(root):
    once = collect([root])
    again = collect([root, root / "pA", root / "pA" / "dcase2020", root / "pA" / "dcase2020" / "seed0"])
    assert again == once
    assert {row.run.name for row in once if row.dataset == "dcase2023"} == {"seed0", "seed1", "seed2"}
    assert overview(again).cells["pA", "knn"]["dcase2020", "dev"].n == 2


def test_errors_name_the_path_and_metric(root, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="empty: no summary.csv"):
        collect([root, tmp_path / "empty"])
    with pytest.raises(ConfigError, match="metric 's_aux' is in none of the summaries.*Did you mean 's_auc'"):
        overview(collect([root]), "s_aux")


def test_cli(root, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["table", str(root / "pA"), str(root / "pB"), "--metric", "s_auc"])
    assert result.exit_code == 0, result.output
    assert "s_auc (%): mean ± std over 2 seed(s)" in result.output
    assert "| pA / knn | 75.00 ± 7.07 | 70.00 ± 28.28 | 72.41 | 72.50 |" in result.output
    assert f"overview: {root / 'overview.csv'}" in result.output and (root / "overview.md").exists()
    result = runner.invoke(cli, ["table", str(root), "--output", str(tmp_path / "o")])
    assert result.exit_code == 0 and HEADER in result.output
    assert (tmp_path / "o" / "overview.csv").exists()

    (tmp_path / "empty").mkdir()
    missing = runner.invoke(cli, ["table", str(tmp_path / "empty")])
    assert missing.exit_code == 5 and f"Error: {tmp_path / 'empty'}: no summary.csv" in missing.output
    unknown = runner.invoke(cli, ["table", str(root), "--metric", "nope"])
    assert unknown.exit_code == 2 and "Error: metric 'nope' is in none of the summaries" in unknown.output
    assert "Traceback" not in missing.output + unknown.output
