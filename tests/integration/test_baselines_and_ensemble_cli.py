"""The official AE baseline recipes, the memory-bank recipe and an ensemble of them through the ``asdcore``
command line on synthetic data, in one table."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_BEATS = {"encoder_layers": 2, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 128,
              "encoder_attention_heads": 4, "embed_dim": 32, "conv_pos": 16, "conv_pos_groups": 4}


def asdcore(*args, env=None):
    result = subprocess.run([sys.executable, "-c", "from asdcore.cli import main; main()", *args],
                            capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_new_recipes_and_an_ensemble_appear_in_one_table(tmp_path):
    beats = pytest.importorskip("asd_frontends_ssl.beats")
    env = {**os.environ, "BEATS_CHECKPOINT": str(beats.write_random_checkpoint(tmp_path / "beats.pt", TINY_BEATS)),
           "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out"
    common = ["--set", f"dataset={{name: synth, root: {tmp_path / 'data'}, machines: [fan, valve], "
                       "n_train_source: 12, n_train_target: 2, n_test: 8, clip_seconds: 1.0}",
              "--set", f"output={out}", "--set", "device=cpu", "--no-progress"]
    for recipe in ("dcase_baseline_ae_mse", "dcase_baseline_ae_mahalanobis"):
        asdcore("-q", "run", f"recipes/{recipe}.yaml", *common, "--set", "frontend.training.epochs=2", env=env)
    asdcore("-q", "run", "recipes/raw_beats_memory_bank.yaml", *common, env=env)
    ensemble = asdcore("-q", "ensemble", f"{out}/dcase_baseline_ae_mse/synth/seed13711:passthrough",
                       f"{out}/raw_beats_memory_bank/synth/seed0:memory_bank", "--name", "baseline_and_bank", env=env)
    assert "| mean_z |" in ensemble
    table = asdcore("table", str(out), env=env)
    for row in ("dcase_baseline_ae_mse / passthrough", "dcase_baseline_ae_mahalanobis / passthrough",
                "raw_beats_memory_bank / memory_bank", "raw_beats_memory_bank / memory_bank_test_transductive",
                "baseline_and_bank / mean_z"):
        assert f"| {row} |" in table
    assert (out / "baseline_and_bank" / "synth" / "seed0+13711" / "ensembles.json").is_file()
