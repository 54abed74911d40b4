import yaml
from click.testing import CliRunner

import toy_plugin
from asdcore.cli import cli


def write_pipeline(tmp_path, toy_root, **changes):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(toy_plugin.pipeline(toy_root, tmp_path / "out", **changes)))
    return path


def test_run_prints_table_and_stage_verbs_work(registry, toy_root, tmp_path):
    path = write_pipeline(tmp_path, toy_root)
    runner = CliRunner()
    for verb in ("train", "extract", "score", "evaluate"):
        result = runner.invoke(cli, ["-q", verb, str(path), "--no-progress"])
        assert result.exit_code == 0, result.output
    assert "| distance |" in result.output and "mean ± std over 2 run(s)" in result.output
    again = runner.invoke(cli, ["-q", "run", str(path), "--no-progress", "--seeds", "0,1"])
    assert again.exit_code == 0 and result.output == again.output


def test_config_errors_are_clean_messages(registry, toy_root, tmp_path):
    path = write_pipeline(tmp_path, toy_root)
    result = CliRunner().invoke(cli, ["run", str(path), "--set", "backends.0.name=knnn"])
    assert result.exit_code == 2
    assert "Error: backends.0.name: unknown backend 'knnn'; registered backends: distance" in result.output
    assert "Traceback" not in result.output


def test_table_across_run_folders(registry, toy_root, tmp_path):
    path = write_pipeline(tmp_path, toy_root, seeds=[0, 1, 2])
    CliRunner().invoke(cli, ["-q", "run", str(path), "--no-progress"])
    root = tmp_path / "out" / "toyrun" / "toy"
    result = CliRunner().invoke(cli, ["table", str(root / "seed0"), str(root / "seed2"), "--output", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "over 2 seed(s)" in result.output and "| toyrun / distance |" in result.output
    lines = (tmp_path / "t" / "overview.csv").read_text().splitlines()
    assert lines[1].startswith("toyrun,distance,toy,dev,official,") and lines[1].endswith(",2")
    result = CliRunner().invoke(cli, ["table", str(root)])
    assert "over 3 seed(s)" in result.output and (root / "overview.md").exists()
    missing = CliRunner().invoke(cli, ["table", str(tmp_path)])
    assert missing.exit_code == 5 and "no summary.csv" in missing.output


def test_plugins_command_lists_in_test_plugins(registry):
    result = CliRunner().invoke(cli, ["plugins"])
    assert "toy-dist 9.9 (toy_plugin)" in result.output
    assert "  datasets: toy" in result.output
