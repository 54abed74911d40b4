"""Every component the installed distributions register passes the conformance checks of asdcore.testing,
on tiny clips and params; the components that need files (SSL checkpoints, a Hugging Face model, data) get
tiny ones made here. No test touches the network."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers reads it

import dataclasses  # noqa: E402
import functools  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

import asdcore  # noqa: E402
from asdcore.registry import Registry, use_registry  # noqa: E402
from asdcore.scoring import HarmonicMeanScorer  # noqa: E402
from asdcore.testing import (  # noqa: E402
    AUGMENTATION_CHECKS, DATASET_CHECKS, FRONTEND_CHECKS, LOSS_CHECKS, SCORER_CHECKS, ToyDataset, ToyFrontend, ToyLoss,
    check_augmentation, check_backend, check_dataset, check_executor, check_frontend, check_loss, check_scorer,
    prepare_frontend, toy_train_data,
)

AE_SAMPLES = 4096  # five 5-frame vectors per clip
SSL_SAMPLES = 9600  # 0.6 s at 16 kHz: enough frames for the tiny BEATs and EAT encoders
BEATS_TINY = {"encoder_layers": 2, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 128,
              "encoder_attention_heads": 4, "embed_dim": 32, "conv_pos": 16, "conv_pos_groups": 4}
EAT_TINY = {"depth": 2, "embed_dim": 64, "num_heads": 4, "max_length": 64}
LORA = {"lora_rank": 4, "embedding_dim": 8}


class Assets:
    """Files that components need, made on first use in one folder."""

    def __init__(self, folder: Path):
        self.folder = folder

    @functools.cached_property
    def beats(self) -> str:
        from asd_frontends_ssl.beats import write_random_checkpoint

        return str(write_random_checkpoint(self.folder / "beats.pt", BEATS_TINY))

    @functools.cached_property
    def eat(self) -> str:
        from asd_frontends_ssl.eat import write_random_checkpoint

        write_random_checkpoint(self.folder / "eat.pt", EAT_TINY)
        return str(self.folder / "eat.pt")

    @functools.cached_property
    def wav2vec2(self) -> str:
        """A two-layer Wav2Vec2Model with its feature extractor, saved as a local Hugging Face model."""
        import torch
        import transformers

        path = self.folder / "wav2vec2"
        config = transformers.Wav2Vec2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16),
            conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        )
        torch.manual_seed(0)
        transformers.Wav2Vec2Model(config).save_pretrained(path)
        transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True,
                                              return_attention_mask=False).save_pretrained(path)
        return str(path)

    @functools.cached_property
    def own(self) -> str:
        """Two machine types of tones at 16 and 8 kHz (resampled on load), one stereo file (mixed down),
        test labels for one type."""
        root = self.folder / "own"
        for machine in ("pump", "slider"):
            for split, count in (("train", 3), ("test", 4)):
                for i in range(count):
                    rate = 8000 if i == 1 else 16000
                    wave = _tone(rate, 0.25, 300 + 50 * i)
                    _write(root / machine / split / f"rec {i}.wav", np.stack([wave, wave], 1) if i == 2 else wave, rate)
        (root / "pump" / "test_labels.csv").write_text(
            "file,label,domain\nrec 0.wav,normal,source\nrec 1.wav,anomaly,target\n")
        return str(root)

    @functools.cached_property
    def dcase(self) -> str:
        """Formatted DCASE 2023 (mono) and 2026 (near and far channels) trees: a dev and an eval type each."""
        root = self.folder / "dcase"
        for year, machines, channels in ((2023, ("fan", "bandsaw"), 1), (2026, ("fan", "ToyDrone"), 2)):
            for machine in machines:
                for domain in ("source", "target"):
                    for split, labels in (("train", ("normal",)), ("test", ("normal", "anomaly"))):
                        for label in labels:
                            for i in range(2):
                                name = f"section_00_{domain}_{split}_{label}_{i:04d}_a_{i}.wav"
                                wave = _tone(16000, 0.1, 400 + 100 * i + (50 if label == "anomaly" else 0))
                                _write(root / "formatted" / f"dcase{year}" / "raw" / machine / split / name,
                                       np.stack([wave, 0.5 * wave], 1) if channels == 2 else wave, 16000)
        return str(root)


def _tone(rate: int, seconds: float, freq: float) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path: Path, wave: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate)


# Per component: (id, params from the assets, keyword arguments of the check); components not listed are
# checked with their default params.
FRONTENDS = {
    "raw_spec": [("small", lambda a: {"n_fft": 256, "hop_length": 128, "n_mels": 16}, {})],
    "ae": [("short", lambda a: {}, {"clip_samples": AE_SAMPLES})],
    "dcase_baseline_ae": [("mse", lambda a: {}, {"clip_samples": AE_SAMPLES}),
                          ("mahalanobis", lambda a: {"score": "mahalanobis"}, {"clip_samples": AE_SAMPLES})],
    "multibranch_cnn": [("small", lambda a: {"n_ffts": [256], "emb_per_branch": 8}, {"clip_samples": 70014})],
    "beats": [("tiny", lambda a: {"checkpoint": a.beats, **LORA}, {"clip_samples": SSL_SAMPLES})],
    "eat": [("tiny", lambda a: {"checkpoint": a.eat, **LORA}, {"clip_samples": SSL_SAMPLES})],
    "raw_beats": [("tiny", lambda a: {"checkpoint": a.beats}, {"clip_samples": SSL_SAMPLES})],
    "raw_eat": [("tiny", lambda a: {"checkpoint": a.eat}, {"clip_samples": SSL_SAMPLES})],
    "hf_encoder": [
        ("lora", lambda a: {"model": a.wav2vec2, "local_files_only": True, **LORA}, {"clip_samples": SSL_SAMPLES}),
        ("frozen", lambda a: {"model": a.wav2vec2, "local_files_only": True, "trainable": False},
         {"clip_samples": SSL_SAMPLES}),
    ],
}
LOSSES = {
    "arcface": [("fixed", lambda a: {}, {}), ("trainable", lambda a: {"trainable": True}, {})],
    "adacos": [("dynamic", lambda a: {}, {}), ("trainable", lambda a: {"trainable": True, "dynamic": False}, {})],
    "scac": [("dynamic", lambda a: {"k": 2}, {}),
             ("trainable", lambda a: {"k": 2, "trainable": True, "dynamic": False}, {})],
    "adaproj": [("dynamic", lambda a: {"basis_size": 2}, {})],
    "subspace": [("small", lambda a: {"k": 2, "subspace_size": 4}, {})],
    "featex": [("small", lambda a: {"k": 2, "subspace_size": 4, "prob": 1.0}, {})],
}
AUGMENTATIONS = {
    "mixup": [("always", lambda a: {"prob": 1.0}, {})],
    "specaugment": [("always", lambda a: {"prob": 1.0, "n_fft": 256, "max_time_width": 8, "max_freq_width": 16}, {})],
}
DATASETS = {
    "synth": [("small", lambda a: {"root": str(a.folder / "synth"), "machines": ["fan"], "n_train_source": 2,
                                   "n_train_target": 1, "n_test": 4, "clip_seconds": 0.25}, {})],
    "own": [("mixed", lambda a: {"root": a.own}, {})],
    "dcase": [("2023", lambda a: {"root": a.dcase, "year": 2023}, {}),
              ("2026", lambda a: {"root": a.dcase, "year": 2026, "channels": "mean"}, {})],
}
EXECUTORS = {
    "processes": [("two", lambda a: {"workers": 2}, {})],
    "slurm": [("debug", lambda a: {"cluster": "debug"}, {})],
    "ray": [("two", lambda a: {"num_cpus": 2}, {})],
}


INSTALLED = Registry()  # the core's and the installed distributions' components


def cases(kind: str, table: dict) -> list:
    """A pytest param (name, params from assets, check keywords) per case of every registered ``kind``."""
    return [pytest.param(name, params, context, id=f"{name}-{case}")
            for name in INSTALLED.names(kind)
            for case, params, context in table.get(name, [("defaults", lambda a: {}, {})])]


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Assets:
    """The installed components' registry, one torch thread (tiny models run slower on more), the assets."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with use_registry(INSTALLED):
        yield Assets(tmp_path_factory.mktemp("conformance"))
    torch.set_num_threads(threads)


def test_every_kind_has_registered_components():
    empty = [kind for kind in ("frontends", "losses", "backends", "datasets", "scorers", "augmentations", "executors")
             if not INSTALLED.names(kind)]
    assert not empty and not INSTALLED.errors, (empty, INSTALLED.errors)


@pytest.mark.parametrize(("name", "params", "context"), cases("frontends", FRONTENDS))
def test_frontend(assets, name, params, context):
    check_frontend(name, params(assets), **context)


@pytest.mark.parametrize(("name", "params", "context"), cases("losses", LOSSES))
def test_loss(assets, name, params, context):
    check_loss(name, params(assets), **context)


@pytest.mark.parametrize(("name", "params", "context"), cases("augmentations", AUGMENTATIONS))
def test_augmentation(assets, name, params, context):
    check_augmentation(name, params(assets), **context)


@pytest.mark.parametrize(("name", "params", "context"), cases("scorers", {}))
def test_scorer(assets, name, params, context):
    check_scorer(name, params(assets), **context)


@pytest.mark.parametrize("name", INSTALLED.names("datasets"))
def test_dataset(assets, name):
    assert name in DATASETS, f"dataset {name!r} has no data to be checked on: add a case to DATASETS"
    for _, params, context in DATASETS[name]:
        check_dataset(name, params(assets), **context)


@pytest.mark.parametrize(("name", "params", "context"), cases("backends", {}))
def test_backend(assets, name, params, context):
    check_backend(name, params(assets), **context)


@pytest.mark.parametrize(("name", "params", "context"), cases("executors", EXECUTORS))
def test_executor(assets, tmp_path, name, params, context):
    check_executor(name, params(assets), folder=tmp_path, **context)


# The checks themselves: the toy components pass; a component broken in one way fails the checks of that way.


def failures(checks, *args, **kwargs) -> dict[str, str]:
    """Name -> message of each check that fails."""
    out = {}
    for check in checks:
        try:
            check(*args, **kwargs)
        except AssertionError as exc:
            out[check.__name__] = str(exc)
    return out


class Centred(ToyFrontend):
    """A conforming trained frontend: learns the mean embedding of the training clips and subtracts it."""

    needs_training = True

    def __init__(self, params, **context):
        super().__init__(params, **context)
        self.centre = torch.zeros(params.bins)

    @property
    def spec(self):
        return asdcore.FrontendSpec(embedding_dim=self.params.bins, needs_training=True)

    def fit(self, data):
        waves = torch.stack([torch.from_numpy(data.load(clip)) for clip in data.clips])
        self.centre = super().extract(waves).embedding.mean(dim=0)
        data.log.append({"epoch": 1, "loss": 0.5})

    def extract(self, waves):
        return asdcore.FrontendOutput(super().extract(waves).embedding - self.centre.to(waves.device))

    def save(self, directory):
        torch.save(self.centre, Path(directory) / "centre.pt")

    def load(self, directory):
        self.centre = torch.load(Path(directory) / "centre.pt")


class ForgetsToSave(Centred):
    def save(self, directory):
        pass

    def load(self, directory):
        pass


class NoLog(Centred):
    def fit(self, data):
        super().fit(data)
        data.log.clear()


class WrongDimension(ToyFrontend):
    @property
    def spec(self):
        return asdcore.FrontendSpec(embedding_dim=self.params.bins + 1)


class Float64(ToyFrontend):
    def extract(self, waves):
        return asdcore.FrontendOutput(super().extract(waves).embedding.double())


class Noisy(ToyFrontend):
    def extract(self, waves):
        embedding = super().extract(waves).embedding
        return asdcore.FrontendOutput(embedding + 0.1 * torch.rand_like(embedding))


class BatchCentred(ToyFrontend):
    def extract(self, waves):
        embedding = super().extract(waves).embedding
        return asdcore.FrontendOutput(embedding - embedding.mean(dim=0))


class SeedDependent(ToyFrontend):
    def __init__(self, params, **context):
        super().__init__(params, **context)
        self.weight = torch.randn(params.bins)

    def extract(self, waves):
        return asdcore.FrontendOutput(super().extract(waves).embedding * self.weight.to(waves.device))


class UndeclaredScores(ToyFrontend):
    def extract(self, waves):
        embedding = super().extract(waves).embedding
        return asdcore.FrontendOutput(embedding, embedding.sum(dim=1))


class SpecSaysTrained(ToyFrontend):
    @property
    def spec(self):
        return asdcore.FrontendSpec(embedding_dim=self.params.bins, needs_training=True)


BROKEN_FRONTENDS = {
    Centred: ([], ""),
    ForgetsToSave: (["check_frontend_save_load", "check_frontend_devices"],
                    "after load\\(\\) of what save\\(\\) wrote, a fresh instance gives other embeddings"),
    NoLog: (["check_frontend_training"], "fit\\(\\) for one epoch left 0 rows in data.log"),
    WrongDimension: (["check_frontend_output"], r"gave embeddings of shape \(4, 16\), the spec declares \(4, 17\)"),
    Float64: (["check_frontend_output"], "dtype torch.float64, expected torch.float32"),
    Noisy: (["check_frontend_deterministic", "check_frontend_batch_independent", "check_frontend_save_load",
             "check_frontend_devices"], "two extracts of the same clips differ"),
    BatchCentred: (["check_frontend_batch_independent"], "depends on the other clips of its batch"),
    SeedDependent: (["check_frontend_save_load", "check_frontend_devices"], "must not depend on it"),
    UndeclaredScores: (["check_frontend_scores"], "gives scores but spec.emits_scores is false"),
    SpecSaysTrained: (["check_frontend_output"], "spec.needs_training is True but the class says False"),
}


@pytest.mark.parametrize("cls", list(BROKEN_FRONTENDS), ids=lambda cls: cls.__name__)
def test_each_frontend_check_fails_for_its_kind_of_breakage(assets, tmp_path, cls):
    expected, message = BROKEN_FRONTENDS[cls]
    subject = prepare_frontend(cls, workdir=tmp_path, sample_rate=8000, clip_samples=2000)
    found = failures(FRONTEND_CHECKS, subject)
    assert sorted(found) == sorted(expected), found
    assert all(text.startswith(f"frontend class {cls.__name__}") for text in found.values())
    if expected:
        assert re.search(message, found[expected[0]]), found


def test_check_frontend_by_name_lists_failures_and_names_a_failed_build(assets):
    registry = Registry(entry_points=False)
    registry.add_plugin(InTestPlugin(), name="in_test")
    with use_registry(registry):
        check_frontend("toy", {"bins": 8}, sample_rate=8000, clip_samples=2000)
        with pytest.raises(AssertionError) as info:
            check_frontend("noisy", sample_rate=8000, clip_samples=2000)
        assert str(info.value).startswith("frontend 'noisy' failed 4 of 7 conformance checks:\n- "
                                          "check_frontend_deterministic: frontend 'noisy': two extracts")
        with pytest.raises(AssertionError, match="frontend 'toy': building it .* on clips of 8 samples at 16000 Hz "
                                                 "failed: ConfigError: frontend.params.bins: 16 bands exceed"):
            check_frontend("toy", clip_samples=8)
        with pytest.raises(AssertionError, match="frontend 'nope' is not registered; registered frontends: noisy, toy"):
            check_frontend("nope")


class NanOnSoftLabels(ToyLoss):
    def forward(self, embedding, target):
        soft = ((target > 0) & (target < 1)).any()
        return super().forward(embedding, target) + (float("nan") if soft else 0.0)


class NanGradient(ToyLoss):
    def forward(self, embedding, target):
        embedding.register_hook(lambda grad: grad * float("nan"))
        return super().forward(embedding, target)


class NotAModule(asdcore.Loss):
    def __call__(self, embedding, target):
        return embedding.sum() * 0


@pytest.mark.parametrize(("cls", "expected", "message"), [
    (ToyLoss, [], ""),
    (NanOnSoftLabels, ["check_loss_finite"], "in train mode with soft labels: the loss is nan"),
    (NanGradient, ["check_loss_finite"], "in train mode with one-hot labels: NaN or infinite gradient w.r.t. the emb"),
    (NotAModule, ["check_loss_class", "check_loss_finite"], "is not a torch.nn.Module"),
], ids=lambda value: getattr(value, "__name__", ""))
def test_each_loss_check_fails_for_its_kind_of_breakage(assets, cls, expected, message):
    found = failures(LOSS_CHECKS, cls, embedding_dim=4, num_classes=3)
    assert sorted(found) == sorted(expected), found
    if expected:
        assert message in found[expected[0]], found


class DoublesTargets(asdcore.Augmentation):
    def __call__(self, waves, target):
        return waves, 2 * target


class NumpyNoise(asdcore.Augmentation):
    def __call__(self, waves, target):
        noise = np.random.default_rng().normal(size=waves.shape)
        return waves + torch.from_numpy(noise).float(), target


class Float64Waves(asdcore.Augmentation):
    def __call__(self, waves, target):
        return waves.double(), target


@pytest.mark.parametrize(("cls", "expected", "message"), [
    (NumpyNoise, ["check_augmentation_deterministic"], "two calls under torch seed 3 gave different outputs"),
    (DoublesTargets, ["check_augmentation_batch"], "target rows sum to [2.0, 2.0, 2.0, 2.0], not 1"),
    (Float64Waves, ["check_augmentation_batch"], "waves of dtype torch.float32 came back as torch.float64"),
], ids=lambda value: getattr(value, "__name__", ""))
def test_each_augmentation_check_fails_for_its_kind_of_breakage(assets, cls, expected, message):
    found = failures(AUGMENTATION_CHECKS, cls)
    assert sorted(found) == sorted(expected), found
    assert message in found[expected[0]], found


class AnomalousTraining(ToyDataset):
    def clips(self, machine, split):
        return [dataclasses.replace(clip, is_anomaly=asdcore.ANOMALY) for clip in super().clips(machine, split)]


class UnknownScorer(ToyDataset):
    scorer = "no_such_scorer"


class WrongRate(ToyDataset):
    """Declares 16 kHz; its clips are written at 8 kHz."""

    def __init__(self, params):
        super().__init__(params)
        self.sample_rate = 16000


class NoLength(ToyDataset):
    def clip_seconds_of(self, machine):
        return 0.0


@pytest.mark.parametrize(("cls", "expected", "message"), [
    (ToyDataset, [], ""),
    (AnomalousTraining, ["check_dataset_clips"],
     "alpha/train: source_normal_000.wav has is_anomaly 1; expected one of (0,) (training clips are normal)"),
    (UnknownScorer, ["check_dataset_scorer"], "names scorer 'no_such_scorer', which is not registered"),
    (WrongRate, ["check_dataset_audio"], "sample rate 8000 Hz, expected 16000 Hz"),
    (NoLength, ["check_dataset_lengths"], "clip_samples_of('alpha') is 0, not a positive int"),
], ids=lambda value: getattr(value, "__name__", ""))
def test_each_dataset_check_fails_for_its_kind_of_breakage(assets, tmp_path, cls, expected, message):
    found = failures(DATASET_CHECKS, cls, {"root": str(tmp_path / "toy"), "generate": True})
    assert sorted(found) == sorted(expected), found
    if expected:
        assert message in found[expected[0]], found
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["alpha", "beta"]  # generated by prepare()


class Inverted(HarmonicMeanScorer):
    def evaluate(self, machine, test, scores, subsets, decisions=None):
        return super().evaluate(machine, test, -np.asarray(scores), subsets, decisions)


class LosesAClip(HarmonicMeanScorer):
    def groups(self, machine, test):
        return {key: index[index != 0] for key, index in super().groups(machine, test).items()}


@pytest.mark.parametrize(("cls", "expected", "message"), [
    (HarmonicMeanScorer, [], ""),
    (Inverted, ["check_scorer_ranking"], "evaluate() of a perfect ranking: expected every AUC to be 1, but s_auc of "
                                         "section 00 is 0"),
    (LosesAClip, ["check_scorer_groups"], "groups() leaves 1 of 32 test clips in no group, e.g. section_00_source_"),
], ids=lambda value: getattr(value, "__name__", ""))
def test_each_scorer_check_fails_for_its_kind_of_breakage(assets, cls, expected, message):
    found = failures(SCORER_CHECKS, cls)
    assert sorted(found) == sorted(expected), found
    if expected:
        assert message in found[expected[0]], found


class InTestPlugin:
    @asdcore.hookimpl
    def register_frontends(self, register):
        register("toy", ToyFrontend)
        register("noisy", Noisy)


def test_importing_the_checks_and_toy_components_leaves_torch_out():
    subprocess.run([sys.executable, "-c", "import sys, asdcore.testing; assert 'torch' not in sys.modules"], check=True)


def test_toy_train_data_fits_the_toy_loss(tmp_path):
    data = toy_train_data(tmp_path, sample_rate=8000, clip_samples=1000, n=8, num_classes=4)
    assert [c.domain for c in data.clips] == [0] * 6 + [1] * 2 and data.labels.tolist() == [0, 1, 2, 3] * 2
    assert data.load(data.clips[3]).shape == (1000,) and data.load(data.clips[3]).dtype == np.float32
    loss = data.make_loss(5, data.num_classes)
    assert isinstance(loss, ToyLoss) and loss.head.out_features == 4
    assert toy_train_data(tmp_path, make_loss=None).make_loss is None
