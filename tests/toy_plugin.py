"""Small in-test components for core tests: a WAV-folder dataset, frontends and a backend."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pydantic
import soundfile as sf
import torch

import asdcore
from asdcore import testing
from asdcore.audio import fit_length
from asdcore.scoring import HarmonicMeanScorer
from asdcore.training import TorchFrontend

SR = testing.ToyDataset.sample_rate
SECONDS = testing.ToyDataset.clip_seconds
CALLS: dict[str, int] = {}
PREPARED: list[Path] = []  # the roots ToyDataset.prepare was called for

make_data = testing.ToyDataset.write
SoftmaxLoss = testing.ToyLoss  # cross-entropy of a linear head; ``scale`` multiplies the logits


def count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


def make_stereo_data(root: Path, machines=("alpha", "beta"), n_train=12, n_target=3, n_test=8, seed=0) -> Path:
    """Two-channel clips named as :func:`make_data`'s: channel 0 (near) = tone + a little noise, channel 1
    (far) = the tone attenuated + louder noise that both microphones hear, the near one 3 samples later;
    the clips of machine type ``i`` last ``SECONDS * (1 + i / 2)``."""
    rng = np.random.default_rng(seed)
    for m_index, path, f in testing.toy_tones(root, machines, n_train, n_target, n_test, rng):
        t = np.arange(int(SR * SECONDS * (1 + m_index / 2))) / SR
        tone = 0.3 * np.sin(2 * np.pi * f * t)
        noise = 0.2 * rng.standard_normal(len(t) + 3)
        near = tone + 0.2 * noise[:-3] + 0.01 * rng.standard_normal(len(t))
        far = 0.3 * tone + noise[3:]
        sf.write(path, np.stack([near, far], axis=1).astype(np.float32), SR)
    return root


class ToyDataset(testing.ToyDataset):
    """:class:`asdcore.testing.ToyDataset`; ``truth: true`` takes test labels and domains from
    ``<root>/<machine>/truth.csv`` (``file,normal|anomaly,source|target``) instead of the names; ``gain``
    scales the audio.
    """

    class Params(testing.ToyDataset.Params):
        truth: bool = False
        gain: float = 1.0
        tag: str = ""  # appended to the id, so that a grid can hold several toy datasets

    @property
    def id(self) -> str:
        return "toy" + self.params.tag

    def prepare(self, progress=True, force=False):
        PREPARED.append(self.root)
        super().prepare(progress, force)

    def clips(self, machine, split):
        clips = super().clips(machine, split)
        if split != "test" or not self.params.truth:
            return clips
        truth = self._truth(machine)
        out = []
        for clip in clips:
            label, domain = truth.get(clip.name, (None, None))
            if label is not None:
                is_anomaly = {"normal": asdcore.NORMAL, "anomaly": asdcore.ANOMALY}.get(label, asdcore.UNKNOWN)
                clip = dataclasses.replace(clip, domain=int(domain == "target"), is_anomaly=is_anomaly)
            out.append(clip)
        return out

    def _truth(self, machine):
        rows = (line.split(",") for line in (self.root / machine / "truth.csv").read_text().splitlines() if line)
        return {name: (label, domain) for name, label, domain in rows}

    def metadata_files(self, machine):
        return [self.root / machine / "truth.csv"] if self.params.truth else []

    def load(self, clip):
        return super().load(clip) * np.float32(self.params.gain)


class StereoDataset(ToyDataset):
    """:class:`ToyDataset` of two-channel (near, far) clips; each machine type's clip length is its own."""

    recorded_channels = 2

    @property
    def id(self) -> str:
        return "toy_stereo" + self.params.tag

    def clip_seconds_of(self, machine):
        return SECONDS * (1 + self.available_machines().index(machine) / 2)

    def load(self, clip, channels=None):
        return asdcore.Dataset.load(self, clip, channels)


def write_truth(root: Path, machine: str, flip: bool = False) -> Path:
    """``truth.csv`` for the test clips of ``machine`` from their names (labels swapped with ``flip``)."""
    rows = []
    for path in sorted((root / machine / "test").glob("*.wav")):
        domain, label, _ = path.stem.split("_")
        if flip:
            label = {"normal": "anomaly", "anomaly": "normal"}[label]
        rows.append(f"{path.name},{label},{domain}\n")
    target = root / machine / "truth.csv"
    target.write_text("".join(rows))
    return target


class SpectrumFrontend(asdcore.Frontend):
    """Magnitude spectrum in ``bins`` bands; ``delay`` seconds of sleep per batch (for kill tests)."""

    class Params(asdcore.Params):
        bins: int = pydantic.Field(16, ge=1)
        delay: float = 0.0
        nan: bool = False

    @property
    def spec(self):
        return asdcore.FrontendSpec(embedding_dim=self.params.bins)

    def extract(self, waves):
        count("extract")
        time.sleep(self.params.delay)
        spectrum = torch.fft.rfft(waves).abs()
        bands = spectrum[:, : spectrum.shape[1] // self.params.bins * self.params.bins]
        embedding = bands.reshape(len(waves), self.params.bins, -1).mean(-1)
        if self.params.nan:
            embedding[0, 0] = float("nan")
        return asdcore.FrontendOutput(embedding, embedding.sum(1))


class CentredFrontend(SpectrumFrontend):
    """A trainable frontend: learns the mean training spectrum and subtracts it, then weights the bands
    with random weights (``noise``), so results depend on the seed."""

    needs_training = True

    class Params(SpectrumFrontend.Params):
        noise: float = 0.0

    @property
    def spec(self):
        return asdcore.FrontendSpec(embedding_dim=self.params.bins, needs_training=True)

    def fit(self, data):
        count("fit")
        time.sleep(self.params.delay)
        waves = torch.stack([torch.from_numpy(fit_length(data.load(c), data.clip_samples)) for c in data.clips])
        for augmentation in data.augmentations:
            waves, _ = augmentation(waves, torch.zeros(len(waves), data.num_classes))
        feats = super().extract(waves).embedding
        scale = data.make_loss(self.params.bins, data.num_classes).params.scale if data.make_loss else 1.0
        for epoch in range(data.training.epochs):
            self.centre = feats.mean(0)
            self.weight = scale * (1 + self.params.noise * torch.randn(self.params.bins))
            data.log.append({"epoch": epoch, "loss": float(((feats - self.centre) ** 2).mean())})

    def extract(self, waves):
        out = super().extract(waves)
        return asdcore.FrontendOutput((out.embedding - self.centre) * self.weight)

    def save(self, directory):
        torch.save({"centre": self.centre, "weight": self.weight}, Path(directory) / "weights.pt")

    def load(self, directory):
        state = torch.load(Path(directory) / "weights.pt")
        self.centre, self.weight = state["centre"], state["weight"]


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(16, 4)

    def forward(self, waves):
        spectrum = torch.fft.rfft(waves).abs()[:, :256].reshape(len(waves), 16, -1).mean(-1)
        return self.linear(torch.log1p(spectrum))


class TinyFrontend(TorchFrontend):
    """A small network trained by the core's trainer (checkpoints, resume)."""

    embedding_dim = 4

    def build_model(self):
        count("build")
        return TinyNet()


class Gain(asdcore.Augmentation):
    """Random gain in [low, low + 1)."""

    class Params(asdcore.Params):
        low: float = 0.5

    def __call__(self, waves, target):
        return waves * (self.params.low + torch.rand(len(waves), 1)), target


class SlowScorer(HarmonicMeanScorer):
    """``hmean`` that takes ``delay`` seconds per machine type (for kill tests)."""

    class Params(asdcore.Params):
        delay: float = 0.2

    def evaluate(self, *args, **kwargs):
        time.sleep(self.params.delay)
        return super().evaluate(*args, **kwargs)


class DistanceBackend(asdcore.Backend):
    """Euclidean distance to the nearest training embedding; ``fail_on`` raises for one machine."""

    class Params(asdcore.Params):
        fail_on: str = ""
        scale: float = 1.0
        nan: bool = False
        delay: float = 0.0

    def fit(self, train):
        count("fit_backend")
        time.sleep(self.params.delay)
        self.refs = train.embedding.astype(np.float64)

    def score(self, test):
        if self.params.fail_on and any(self.params.fail_on in p for p in test.path):
            raise RuntimeError(f"backend failure on {self.params.fail_on}")
        d = np.linalg.norm(test.embedding[:, None, :] - self.refs[None], axis=-1).min(1) * self.params.scale
        if self.params.nan:
            d[0] = np.nan
        return d


@asdcore.hookimpl
def register_datasets(register):
    register("toy", ToyDataset)
    register("toy_stereo", StereoDataset)


@asdcore.hookimpl
def register_frontends(register):
    register("spectrum", SpectrumFrontend)
    register("centred", CentredFrontend)
    register("tiny", TinyFrontend)


@asdcore.hookimpl
def register_losses(register):
    register("softmax", SoftmaxLoss)


@asdcore.hookimpl
def register_augmentations(register):
    register("toy_gain", Gain)


@asdcore.hookimpl
def register_scorers(register):
    register("slow_hmean", SlowScorer)


@asdcore.hookimpl
def register_backends(register):
    register("distance", DistanceBackend)


def pipeline(root: Path, output: Path, **changes) -> dict:
    config = {
        "name": "toyrun",
        "dataset": {"name": "toy", "root": str(root)},
        "frontend": {"name": "spectrum", "params": {}},
        "backends": [{"name": "distance"}],
        "seeds": [0, 1],
        "output": str(output),
        "device": "cpu",
    }
    config.update(changes)
    return config
