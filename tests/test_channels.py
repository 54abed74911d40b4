"""Two-channel (near, far) clips: reading, channel choices, per-type clip lengths, views, the residual view
and channel score fusion, each against a direct computation."""
import csv

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

import toy_plugin
from asdcore.audio import read_audio, select_channels
from asdcore.config import load_config
from asdcore.context import Context
from asdcore.engine import Pipeline
from asdcore.errors import AudioError, ConfigError
from asdcore.features import load_features
from asdcore.plan import plan_pipeline
from asdcore.submission import SCORES, TRAIN_KEY, read_table


@pytest.fixture(scope="module")
def stereo_root(tmp_path_factory):
    return toy_plugin.make_stereo_data(tmp_path_factory.mktemp("stereo"))


def stereo_pipeline(root, output, **changes):
    return toy_plugin.pipeline(root, output, **{"dataset": {"name": "toy_stereo", "root": str(root)}, "seeds": [0],
                                                **changes})


def test_read_audio_two_channels_and_every_choice(stereo_root):
    path = next((stereo_root / "alpha" / "train").glob("*.wav"))
    direct, _ = sf.read(path, dtype="float32", always_2d=True)
    wave = read_audio(path, toy_plugin.SR, channels=2)
    np.testing.assert_array_equal(wave, direct)
    near, far = direct[:, 0], direct[:, 1]
    expected = {"near": near, "far": far, "mean": (near + far) / 2, "diff": near - far}
    for choice, values in expected.items():
        np.testing.assert_allclose(select_channels(wave, choice), values, rtol=0, atol=1e-7)
        assert select_channels(wave, choice).flags["C_CONTIGUOUS"]


def test_fewer_channels_than_asked_names_the_file(tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, np.zeros(800, np.float32), toy_plugin.SR)
    with pytest.raises(AudioError, match=r"mono\.wav: 1 channel, expected 2 \(channel 0: near microphone, 1: far"):
        read_audio(path, toy_plugin.SR, channels=2)
    with pytest.raises(AudioError, match="2 channels, expected mono"):
        sf.write(tmp_path / "stereo.wav", np.zeros((800, 2), np.float32), toy_plugin.SR)
        read_audio(tmp_path / "stereo.wav", toy_plugin.SR)


def test_dataset_channels_option(registry, stereo_root, tmp_path):
    clip = next(iter(Context.create(load_config(stereo_pipeline(stereo_root, tmp_path), registry=registry), registry)
                     .dataset.clips("beta", "test")))
    direct, _ = sf.read(clip.path, dtype="float32", always_2d=True)
    for choice, values in {"near": direct[:, 0], "far": direct[:, 1], "diff": direct[:, 0] - direct[:, 1]}.items():
        config = stereo_pipeline(stereo_root, tmp_path, dataset={"name": "toy_stereo", "root": str(stereo_root),
                                                                 "channels": choice})
        dataset = Context.create(load_config(config, registry=registry), registry).dataset
        np.testing.assert_allclose(dataset.load(clip), values, atol=1e-7)


def test_mono_file_in_a_two_channel_tree(registry, tmp_path):
    root = toy_plugin.make_stereo_data(tmp_path / "data", machines=("alpha",))
    bad = root / "alpha" / "train" / "source_normal_000.wav"
    sf.write(bad, np.zeros(2000, np.float32), toy_plugin.SR)
    with pytest.raises(Exception, match=r"source_normal_000\.wav: 1 channel, expected 2"):
        Pipeline.create(load_config(stereo_pipeline(root, tmp_path / "out"), registry=registry), registry,
                        progress=False).run()


@pytest.mark.parametrize("changes, message", [
    ({"dataset": {"name": "toy", "root": "/d", "channels": "far"}},
     r"dataset.channels: 'far' needs two-channel recordings \(near and far microphones\), but toy has one channel"),
    ({"extraction": {"views": ["near", "far"]}}, r"extraction.views.1: 'far' needs two-channel recordings"),
])
def test_far_channels_on_mono_data_are_errors(registry, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_config(toy_plugin.pipeline("/d", "/o", **changes), registry=registry)


@pytest.mark.parametrize("changes, message", [
    ({"backends": [{"name": "distance", "view": "residual"}]},
     r"backends.0.view: 'residual' needs the far view\(s\), but extraction.views is \['near'\]"),
    ({"backends": [{"name": "distance", "view": "far"}]}, r"backends.0.view: 'far' needs the far view"),
    ({"extraction": {"views": ["near", "far"]}, "backends": [{"name": "distance", "alpha": 0.2}]},
     r"backends.0.alpha: only the residual view takes alpha \(view is 'near'\)"),
    ({"extraction": {"views": ["near", "near"]}}, r"extraction.views: Value error, each view once"),
    ({"fusions": [{"id": "f", "near": "distance", "far": "dist"}]},
     r"fusions.0.far: no backend with id 'dist'; backend ids: distance. Did you mean 'distance'\?"),
    ({"fusions": [{"id": "distance", "near": "distance", "far": "distance"}]},
     r"fusions.0.id: 'distance' is already the id of a backend or fusion"),
    ({"fusions": [{"id": "f", "near": "distance", "far": "distance", "alpha": 1.5}]}, r"fusions.0.alpha"),
])
def test_view_and_fusion_config_errors(registry, stereo_root, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_config(stereo_pipeline(stereo_root, "/o", **changes), registry=registry)


def test_clip_length_per_machine_type(registry, stereo_root, tmp_path):
    config = stereo_pipeline(stereo_root, tmp_path)
    plan = plan_pipeline(Context.create(load_config(config, registry=registry), registry))
    samples = {m: int(toy_plugin.SR * toy_plugin.SECONDS * (1 + i / 2)) for i, m in enumerate(["alpha", "beta"])}
    assert {m: plan[f"shared/extract/{m}"].inputs["clip samples"] for m in samples} == samples
    trained = stereo_pipeline(stereo_root, tmp_path, frontend={"name": "centred"})
    plan = plan_pipeline(Context.create(load_config(trained, registry=registry), registry))
    longest = max(samples.values())  # one shared model sees the longest clip length
    assert plan["seed0/train/shared"].inputs["clip samples"] == longest
    assert {plan[f"seed0/extract/{m}"].inputs["clip samples"] for m in samples} == {longest}
    per_machine = stereo_pipeline(stereo_root, tmp_path, frontend={"name": "centred", "training": {"scope":
                                                                                                     "per_machine"}})
    plan = plan_pipeline(Context.create(load_config(per_machine, registry=registry), registry))
    assert {m: plan[f"seed0/extract/{m}"].inputs["clip samples"] for m in samples} == samples


def _direct_embeddings(root, machine, split, choice, samples):
    frontend = toy_plugin.SpectrumFrontend(toy_plugin.SpectrumFrontend.Params())
    waves = []
    for path in sorted((root / machine / split).glob("*.wav")):
        wave, _ = sf.read(path, dtype="float32", always_2d=True)
        wave = {"near": wave[:, 0], "far": wave[:, 1]}[choice]
        waves.append(np.resize(wave, samples))  # tiles like fit_length
    return frontend.extract(torch.from_numpy(np.stack(waves))).embedding.numpy()


def _nearest(train, test):
    return np.linalg.norm(test[:, None, :].astype(np.float64) - train[None].astype(np.float64), axis=-1).min(1)


def _scores(directory, machine):
    return read_table(directory / f"{SCORES}_{machine}_section_00_test.csv")


@pytest.mark.parametrize("audio_cache", [True, False])
def test_views_residual_and_fusion_against_hand_computation(registry, stereo_root, tmp_path, audio_cache):
    config = stereo_pipeline(
        stereo_root, tmp_path, audio_cache=audio_cache, extraction={"views": ["near", "far"]},
        backends=[{"id": "d_near", "name": "distance"}, {"id": "d_far", "name": "distance", "view": "far"},
                  {"id": "d_res", "name": "distance", "view": "residual", "alpha": 0.3},
                  {"id": "d_cat", "name": "distance", "view": "concat"}],
        fusions=[{"id": "fused", "near": "d_near", "far": "d_far", "alpha": 0.7}])
    root = Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()
    features = root / "shared" / "beta" / "features.h5"
    with h5py.File(features) as f:
        assert sorted(f) == ["test", "test@far", "train", "train@far"]
        assert [str(v) for v in f.attrs["views"]] == ["near", "far"]
    samples = int(toy_plugin.SR * toy_plugin.SECONDS * 1.5)
    emb = {(split, view): _direct_embeddings(stereo_root, "beta", split, view, samples)
           for split in ("train", "test") for view in ("near", "far")}
    for view in ("near", "far"):
        np.testing.assert_allclose(load_features(features, "test", view).embedding, emb["test", view], rtol=1e-5)
    test_names = load_features(features, "test").names
    seed = root / "seed0" / "beta"
    expected = {
        "d_near": _nearest(emb["train", "near"], emb["test", "near"]),
        "d_far": _nearest(emb["train", "far"], emb["test", "far"]),
        "d_res": _nearest(emb["train", "near"] - 0.3 * emb["train", "far"], emb["test", "near"] - 0.3 * emb["test", "far"]),
        "d_cat": _nearest(np.hstack([emb["train", "near"], emb["train", "far"]]),
                          np.hstack([emb["test", "near"], emb["test", "far"]])),
    }
    for bid, values in expected.items():
        scores = _scores(seed / bid, "beta")
        np.testing.assert_allclose([scores[n] for n in test_names], values, rtol=1e-4)
    z = {}
    for bid in ("d_near", "d_far"):
        train = np.array(list(read_table(seed / bid / f"{SCORES}_{TRAIN_KEY}.csv").values()))
        z[bid] = (np.array([_scores(seed / bid, "beta")[n] for n in test_names]) - train.mean()) / train.std()
    fused = _scores(seed / "fused", "beta")
    np.testing.assert_allclose([fused[n] for n in test_names], 0.7 * z["d_near"] + 0.3 * z["d_far"], rtol=1e-9)
    assert (seed / "fused" / "evaluation.json").exists()
    assert list((seed / "fused").glob("decision_result_beta_section_00_test.csv"))
    rows = list(csv.DictReader((root / "seed0" / "summary.csv").open()))
    assert {r["backend"] for r in rows} == {"d_near", "d_far", "d_res", "d_cat", "fused"}
    if audio_cache:
        cache = tmp_path / "audio_cache" / "toy_stereo" / "beta"
        assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == ["test", "test-far", "train", "train-far"]


def test_far_channel_choice_trains_and_extracts_far(registry, stereo_root, tmp_path):
    config = stereo_pipeline(stereo_root, tmp_path, dataset={"name": "toy_stereo", "root": str(stereo_root),
                                                             "channels": "far"})
    root = Pipeline.create(load_config(config, registry=registry), registry, progress=False).run()
    samples = int(toy_plugin.SR * toy_plugin.SECONDS)
    stored = load_features(root / "shared" / "alpha" / "features.h5", "train")
    np.testing.assert_allclose(stored.embedding, _direct_embeddings(stereo_root, "alpha", "train", "far", samples),
                               rtol=1e-5)
    rerun = stereo_pipeline(stereo_root, tmp_path, dataset={"name": "toy_stereo", "root": str(stereo_root)})
    plan = plan_pipeline(Context.create(load_config(rerun, registry=registry), registry))
    assert plan["shared/extract/alpha"].stale_reason() is not None  # near is another input: extracted anew
