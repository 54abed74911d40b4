"""The decoded-audio cache: exactly what the dataset decodes, built once, shared, rebuilt, resumed, and clear
errors when it cannot be written."""
import errno
import logging
import multiprocessing
import os
import pickle
import threading
import time

import h5py
import numpy as np
import pytest
import soundfile as sf

import asdcore
import toy_plugin
from asdcore import audio_cache
from asdcore.audio_cache import AudioCache, CachedLoad, open_cache
from asdcore.config import load_config
from asdcore.engine import Pipeline
from asdcore.errors import AsdcoreError, AudioError, UnitsFailedError

LOADS: list[str] = []  # names of the clips CountingToy decoded


class CountingToy(toy_plugin.ToyDataset):
    """The toy dataset, recording every clip it decodes; ``fail_at`` raises, ``exit_at`` ends the process
    (without clean-up, as a kill would), ``delay`` slows decoding."""

    fail_at = exit_at = ""
    delay = 0.0

    def load(self, clip):
        if clip.name == self.fail_at:
            raise AudioError(f"{clip.path}: cannot read audio (corrupt)")
        if clip.name == self.exit_at:
            os._exit(3)
        time.sleep(self.delay)
        LOADS.append(clip.name)
        return super().load(clip)


class CountingPlugin:
    @staticmethod
    @asdcore.hookimpl
    def register_datasets(register):
        register("counting_toy", CountingToy)


@pytest.fixture(autouse=True)
def loads():
    LOADS.clear()
    yield LOADS


@pytest.fixture
def data(tmp_path):
    return toy_plugin.make_data(tmp_path / "data", n_train=6, n_target=2, n_test=4)


def dataset_at(root) -> CountingToy:
    return CountingToy(CountingToy.Params(root=str(root)))


def cache_of(dataset, folder, machine="alpha", split="train", **kwargs) -> AudioCache:
    return open_cache(dataset, dataset.clips(machine, split), folder,
                      {"name": "counting_toy", "params": {"root": str(dataset.root)}}, progress=False, **kwargs)


def assert_same_as_dataset(cache, dataset, clips):
    for clip in clips:
        got, expected = cache.load(clip), dataset.load(clip)
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), clip.name  # bit for bit, -0.0 too


def write_clips(folder, waves, subtype):
    folder.mkdir(parents=True, exist_ok=True)
    for name, wave in waves.items():
        sf.write(folder / f"{name}.wav", wave, toy_plugin.SR, subtype=subtype)


@pytest.fixture
def counting(registry):
    """The registry with ``counting_toy``."""
    registry.add_plugin(CountingPlugin, name="counting")
    return registry


def pipeline(root, output, **changes):
    return dict(toy_plugin.pipeline(root, output, **changes), dataset={"name": "counting_toy", "root": str(root)})


def run(registry, config, **kwargs):
    return Pipeline.create(load_config(config, registry=registry), registry, progress=False).run(**kwargs)


def features(root, base="shared"):
    with h5py.File(root / base / "alpha" / "features.h5") as f:
        return {split: f[f"{split}/embedding"][()] for split in ("train", "test")}


@pytest.mark.parametrize("kind, dtype", [("pcm16", "int16"), ("float", "float32"),
                                         ("pcm_values_and_minus_zero", "float32")])
def test_load_is_the_datasets_load_bit_for_bit(tmp_path, kind, dtype):
    rng = np.random.default_rng(1)
    lengths = (1500, 2000, 2600)
    if kind == "float":
        waves = {f"source_normal_{i:03d}": (0.3 * rng.standard_normal(n)).astype(np.float32)
                 for i, n in enumerate(lengths)}
    else:
        waves = {f"source_normal_{i:03d}": (rng.integers(-32768, 32768, n) / 32768).astype(np.float32)
                 for i, n in enumerate(lengths)}
    if kind == "pcm_values_and_minus_zero":
        waves["source_normal_001"][5] = -0.0  # k/32768 for every other value, but int16 has no -0.0
    write_clips(tmp_path / "data" / "alpha" / "train", waves, "PCM_16" if kind == "pcm16" else "FLOAT")
    dataset = dataset_at(tmp_path / "data")
    clips = dataset.clips("alpha", "train")
    cache = cache_of(dataset, tmp_path / "cache")
    assert cache.dtype == dtype
    assert cache.path.stat().st_size == sum(lengths) * np.dtype(dtype).itemsize
    assert_same_as_dataset(cache, dataset, clips)
    if kind == "pcm_values_and_minus_zero":
        assert np.signbit(cache.load(clips[1])[5])


def test_switches_to_float32_when_a_later_clip_is_not_pcm(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "data" / "alpha" / "train"
    write_clips(folder, {f"source_normal_{i:03d}": 0.2 * rng.standard_normal(1000) for i in range(3)}, "PCM_16")
    write_clips(folder, {"target_normal_000": 0.2 * rng.standard_normal(1200)}, "FLOAT")
    dataset = dataset_at(tmp_path / "data")
    cache = cache_of(dataset, tmp_path / "cache")
    assert cache.dtype == "float32" and [p.name for p in (tmp_path / "cache").glob("samples-*")] == [cache.path.name]
    assert cache.path.stat().st_size == 4200 * 4
    assert_same_as_dataset(cache, dataset, dataset.clips("alpha", "train"))


def test_built_once_and_shared_by_every_pipeline_of_the_output(counting, data, tmp_path, loads):
    dataset = dataset_at(data)
    clips = {(m, s): [c.name for c in dataset.clips(m, s)] for m in ("alpha", "beta") for s in ("train", "test")}
    trained = pipeline(data, tmp_path / "out", frontend={"name": "centred", "params": {"noise": 0.1}})
    run(counting, trained)  # two seeds: two trainings and two extractions per machine type, one decoding
    assert sorted(loads) == sorted(n for names in clips.values() for n in names)
    for (machine, split), names in clips.items():
        index = (tmp_path / "out" / "audio_cache" / "toy" / machine / split / "index.json").read_text()
        assert all(name in index for name in names)
    loads.clear()
    run(counting, dict(pipeline(data, tmp_path / "out"), name="another"))
    assert loads == []


def test_off_reads_through_the_dataset_and_is_no_part_of_the_identity(counting, data, tmp_path, loads):
    config = pipeline(data, tmp_path / "on", frontend={"name": "centred"}, seeds=[0])
    cached = features(run(counting, config, stages=("train", "extract")), "seed0")
    config["audio_cache"] = False
    plan = Pipeline.create(load_config(config, registry=counting), counting, progress=False).plan()
    ran = {uid: why for uid, why in plan.reasons().items() if "/train/" in uid or "/extract/" in uid}
    assert len(ran) == 3 and not any(ran.values())  # switching the cache off reruns nothing
    loads.clear()
    root = run(counting, dict(config, output=str(tmp_path / "off")), stages=("train", "extract"))
    assert not (tmp_path / "off" / "audio_cache").exists()
    assert len(loads) == 16 + 16 + 8  # the train clips for training, then every clip for extraction
    uncached = features(root, "seed0")
    for split in ("train", "test"):
        assert np.array_equal(cached[split], uncached[split])


def test_rebuilt_when_a_clip_changes(data, tmp_path, loads, caplog):
    dataset = dataset_at(data)
    clips = dataset.clips("alpha", "train")
    cache_of(dataset, tmp_path / "cache")
    cache_of(dataset, tmp_path / "cache")
    assert len(loads) == len(clips)
    new = (0.5 * np.sin(np.arange(2000) / 3)).astype(np.float32)
    sf.write(clips[2].path, new, toy_plugin.SR)
    loads.clear()
    caplog.set_level(logging.INFO, logger="asdcore")
    cache = cache_of(dataset, tmp_path / "cache")
    assert "rebuilding" in caplog.text and len(loads) == len(clips)
    assert np.array_equal(cache.load(clips[2]), sf.read(clips[2].path, dtype="float32")[0])
    assert not np.array_equal(cache.load(clips[2]), cache.load(clips[1]))
    assert_same_as_dataset(cache, dataset, clips)


def test_a_content_change_that_keeps_size_and_time_is_seen_with_verify_content(counting, data, tmp_path):
    config = pipeline(data, tmp_path / "out", seeds=[0])
    before = features(run(counting, config, stages=("extract",)))
    path = data / "alpha" / "test" / "source_normal_000.wav"
    stat = path.stat()
    wave, rate = sf.read(path, dtype="int16")
    sf.write(path, wave[::-1].copy(), rate, subtype="PCM_16")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    cached = features(run(counting, config, stages=("extract",), verify_content=True))
    uncached = dict(config, output=str(tmp_path / "fresh"), audio_cache=False)
    fresh = features(run(counting, uncached, stages=("extract",)))
    assert np.array_equal(cached["test"], fresh["test"]) and not np.array_equal(cached["test"], before["test"])


def assert_resumes(dataset, folder, loads, remaining):
    """A second build decodes only ``remaining`` and gives what the dataset gives."""
    loads.clear()
    cache = cache_of(dataset, folder)
    assert loads == remaining
    assert_same_as_dataset(cache, dataset, dataset.clips("alpha", "train"))


def test_resumes_after_an_error_without_decoding_the_finished_clips(data, tmp_path, loads, monkeypatch):
    dataset = dataset_at(data)
    names = [c.name for c in dataset.clips("alpha", "train")]
    monkeypatch.setattr(CountingToy, "fail_at", names[3])
    with pytest.raises(AudioError, match=names[3]):
        cache_of(dataset, tmp_path / "cache")
    monkeypatch.undo()
    assert_resumes(dataset, tmp_path / "cache", loads, names[3:])


def _build_until_killed(root, folder, exit_at):
    audio_cache.SAVE_SECONDS = 0.0
    CountingToy.exit_at = exit_at
    cache_of(dataset_at(root), folder)


def test_resumes_after_a_kill(data, tmp_path, loads):
    dataset = dataset_at(data)
    names = [c.name for c in dataset.clips("alpha", "train")]
    child = multiprocessing.get_context("fork").Process(target=_build_until_killed,
                                                        args=(data, tmp_path / "cache", names[4]))
    child.start()
    child.join()
    assert child.exitcode == 3 and not (tmp_path / "cache" / "index.json").exists()
    with open(next((tmp_path / "cache").glob("samples-*")), "ab") as f:
        f.write(b"\x01" * 1000)  # written after the last record: dropped on resuming
    cache = cache_of(dataset, tmp_path / "cache")
    assert loads == names[4:]
    assert_same_as_dataset(cache, dataset, dataset.clips("alpha", "train"))


def test_concurrent_opens_decode_once(data, tmp_path, loads, monkeypatch):
    monkeypatch.setattr(CountingToy, "delay", 0.01)
    dataset = dataset_at(data)
    caches = []
    threads = [threading.Thread(target=lambda: caches.append(cache_of(dataset, tmp_path / "cache"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(caches) == 3 and len(loads) == len(dataset.clips("alpha", "train"))
    for cache in caches:
        assert_same_as_dataset(cache, dataset, dataset.clips("alpha", "train"))


def test_pickles_without_its_samples(data, tmp_path):
    dataset = dataset_at(data)
    clips = dataset.clips("alpha", "train")
    load = CachedLoad({("alpha", "train"): cache_of(dataset, tmp_path / "cache")})
    load(clips[0])  # maps the samples in this process
    blob = pickle.dumps(load)
    assert len(blob) < load.caches["alpha", "train"].path.stat().st_size / 4
    copy = pickle.loads(blob)
    assert copy.caches["alpha", "train"]._samples is None
    assert all(np.array_equal(copy(c), dataset.load(c)) for c in clips)


def test_an_unwritable_cache_folder_is_one_clear_error(counting, data, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "audio_cache").write_text("")  # a file where the folder would go: nothing can be written
    with pytest.raises(UnitsFailedError) as failed:
        run(counting, pipeline(data, tmp_path / "out", seeds=[0]), stages=("extract",))
    message = str(failed.value)
    assert f"audio cache {tmp_path / 'out' / 'audio_cache' / 'toy' / 'alpha'}" in message
    assert "cannot write" in message and "set `audio_cache: false`" in message and "Traceback" not in message


def test_a_full_disk_is_one_clear_error_and_the_build_resumes(data, tmp_path, loads, monkeypatch):
    dataset = dataset_at(data)
    names = [c.name for c in dataset.clips("alpha", "train")]
    append = audio_cache._append

    def fill(path, samples):
        if len(loads) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        append(path, samples)

    monkeypatch.setattr(audio_cache, "_append", fill)
    with pytest.raises(AsdcoreError, match=r"cannot write \(No space left on device\); make the folder writable"):
        cache_of(dataset, tmp_path / "cache")
    monkeypatch.undo()
    assert_resumes(dataset, tmp_path / "cache", loads, names[2:])


def test_a_load_that_is_not_float32_is_named(data, tmp_path, monkeypatch):
    dataset = dataset_at(data)
    monkeypatch.setattr(CountingToy, "load", lambda self, clip: np.zeros(10))
    with pytest.raises(AsdcoreError, match="returned a float64 array of shape \\(10,\\), not a 1-D float32"):
        cache_of(dataset, tmp_path / "cache")
