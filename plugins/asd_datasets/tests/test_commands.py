import click
import pytest
import soundfile as sf

from asd_datasets.layout import parse_name
from asdcore import ANOMALY, SOURCE, TARGET
from asdcore.testing import run_cli

SMALL = ["--n-train-source", "8", "--n-train-target", "2", "--n-test", "8", "--clip-seconds", "0.5"]


def run(*args):
    return run_cli("data", "synth", *args)


def test_data_command_is_registered(registry):
    group = click.Group()
    registry.add_commands(group)
    assert "synth" in group.commands["data"].commands
    result = run_cli("data", "--help")
    assert result.exit_code == 0 and "synth" in result.output


def test_synth_writes_the_clips(tmp_path):
    result = run("--root", str(tmp_path), "--machines", "fan", *SMALL)
    assert result.exit_code == 0, result.output
    assert f"18 clips of fan in {tmp_path}" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".synth.lock", "fan", "synth.json"]
    train = sorted((tmp_path / "fan" / "train").glob("*.wav"))
    test = sorted((tmp_path / "fan" / "test").glob("*.wav"))
    assert len(train) == 10 and len(test) == 8
    assert sorted(parse_name(p).domain for p in train) == [SOURCE] * 8 + [TARGET] * 2
    assert sum(parse_name(p).is_anomaly == ANOMALY for p in test) == 4
    info = sf.info(test[0])
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 8000)


def test_synth_is_deterministic(tmp_path):
    for root in ("a", "b"):
        assert run("--root", str(tmp_path / root), "--machines", "valve", "--seed", "3", *SMALL).exit_code == 0
    a = sorted((tmp_path / "a").rglob("*.wav"))
    assert len(a) == 18
    assert all(p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes() for p in a)


@pytest.mark.parametrize(("args", "named"), [
    (["--machines", "fan,drill", *SMALL], "drill"),
    (["--machines", "fan", *SMALL[:-4], "--n-test", "6", *SMALL[-2:]], "divisible by 4"),
])
def test_invalid_options_fail_with_a_clean_message(tmp_path, args, named):
    result = run("--root", str(tmp_path / "out"), *args)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert result.exit_code == 1
    assert "Error:" in result.output and named in result.output
    assert not list(tmp_path.rglob("*.wav"))


def test_n_test_out_of_range_is_rejected(tmp_path):
    result = run("--root", str(tmp_path), "--n-test", "1")
    assert result.exit_code == 2
    assert "--n-test" in result.output
    assert not list(tmp_path.rglob("*.wav"))


def _clips(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


@pytest.mark.parametrize("year", [[], ["--year", "2021", "--subset", "dev"]])
def test_other_parameters_need_force(tmp_path, year):
    args = [*year, "--machines", "fan", *SMALL]
    assert run("--root", str(tmp_path / "data"), *args).exit_code == 0
    result = run("--root", str(tmp_path / "data"), *args, "--seed", "5")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Error:" in result.output and "seed: recorded 0, requested 5" in result.output
    assert "--force" in result.output

    result = run("--root", str(tmp_path / "data"), *args, "--seed", "5", "--force")
    assert result.exit_code == 0, result.output
    assert run("--root", str(tmp_path / "fresh"), *args, "--seed", "5").exit_code == 0
    regenerated, fresh = _clips(tmp_path / "data"), _clips(tmp_path / "fresh")
    assert regenerated and regenerated == fresh


def test_2026_synth_format_and_labels(tmp_path):
    root = str(tmp_path)
    tiny = ["--year", "2026", "--root", root, "--machines", "ToyCarEmu,ToyDrone", "--n-train", "2", "--n-test", "2"]
    result = run(*tiny, "--clip-seconds", "0.1")
    assert result.exit_code == 1 and "shortest DCASE 2026 clips 0.06 s" in result.output
    assert run(*tiny, "--clip-seconds", "0.2").exit_code == 0
    tree = tmp_path / "original" / "dcase2026"
    assert {sf.info(p).channels for p in tree.rglob("*.wav")} == {2}
    assert not list(tree.rglob("eval_data_list*"))
    result = run_cli("data", "format", "--year", "2026", "--root", root)
    assert result.exit_code == 0, result.output
    assert "ToyCarEmu: test 4, train 3" in result.output and "ToyDrone: test 4, train 3" in result.output
    result = run_cli("data", "labels", "--year", "2026", "--root", root)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "labels" / "dcase2026" / "main.json").is_file()
