"""``dcase_baseline_ae``: the official DCASE 2023–2026 Task 2 autoencoder baseline (methods-facts §1)."""
from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torchaudio
from torch import nn

import asdcore
from asdcore import NOT_IN_IDENTITY, fingerprint, load_artifact, require_clip_samples, save_artifact

from .ae import AutoEncoder, long_enough, min_samples

EPSILON = float(np.finfo(np.float64).eps)  # floor of the log: float64 machine epsilon
N_MELS, FRAMES = 128, 5
VALIDATION_SHARE = 0.1
CHECKPOINT = "checkpoint.pt"
# Training settings of the core's loop that this frontend's own loop does not have, with the only value it takes.
FIXED_TRAINING = {"weight_decay": 0.0, "warmup_steps": 0, "precision": "32", "devices": 1,
                  "accumulate_grad_batches": 1, "gradient_clip_norm": None, "compile": False}


class LogMelVectors(nn.Module):
    """``[B, L]`` waveforms → ``[B, T − 4, 640]`` context vectors (§1.2).

    Power mel spectrogram (n_fft 1024, hop 512, periodic Hann window of n_fft, centred with zero padding,
    128 Slaney-normalised Slaney-scale mels from 0 Hz to Nyquist), then 10·log10(max(M, ε)) in float64 with
    ε the float64 machine epsilon; vector t stacks frames t…t+4, frame-major. No normalisation. Clips of
    fewer than five frames give no vector.
    """

    def __init__(self, sample_rate: int):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=1024, hop_length=512, f_min=0.0, f_max=None, n_mels=N_MELS,
            power=2.0, center=True, pad_mode="constant", norm="slaney", mel_scale="slaney",
        )

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        log_mel = 10 * self.mel(waves).double().clamp_min(EPSILON).log10()
        frames = log_mel.float().transpose(1, 2)  # [B, T, mels]
        if frames.shape[1] < FRAMES:
            return frames.new_zeros(len(frames), 0, FRAMES * N_MELS)
        return frames.unfold(1, FRAMES, 1).transpose(2, 3).flatten(2)


class BaselineAutoEncoder(AutoEncoder):
    """The network of §1.3 with the error covariances of the source and target domain (zero until
    :func:`error_covariances` fills them) as float64 buffers, saved with the weights."""

    def __init__(self):
        super().__init__(input_dim=FRAMES * N_MELS, hidden_dim=128, bottleneck_dim=8)
        self.register_buffer("cov_source", torch.zeros(N_MELS, N_MELS, dtype=torch.float64))
        self.register_buffer("cov_target", torch.zeros(N_MELS, N_MELS, dtype=torch.float64))

    def precisions(self) -> torch.Tensor:
        """Plain inverses of the two covariances, ``[2, 128, 128]`` (source, target)."""
        return torch.linalg.inv(torch.stack([self.cov_source, self.cov_target]))


def split_vectors(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices: a seeded 10 % of the vectors (rounded up) for validation."""
    order = np.random.default_rng(seed).permutation(count)
    n_valid = math.ceil(VALIDATION_SHARE * count)
    return order[n_valid:], order[:n_valid]


def shuffled_batches(index: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Batches of ``index`` in the order drawn from ``(seed, epoch)``; batches of ≤ 1 vector are left out."""
    order = index[np.random.default_rng([seed, epoch]).permutation(len(index))]
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    return [batch for batch in batches if len(batch) > 1]


def error_covariances(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Σ_source and Σ_target ``[2, 128, 128]`` (float64) of §1.6 from batches ``(errors [n, 640], is_target [n])``.

    Each error vector is five rows of 128; per batch and domain the rows are centred on their mean and their
    scatter summed into S_d; Σ_d = S_d / (n_d − 1) with n_d counted in vectors. Without target vectors
    Σ_target = Σ_source.
    """
    scatter, counts = [0, 0], [0, 0]
    for errors, is_target in batches:
        for domain, mask in enumerate((~is_target, is_target)):
            vectors = errors[mask].double()
            if len(vectors):
                rows = vectors.reshape(-1, N_MELS)
                centred = rows - rows.mean(dim=0)
                scatter[domain] = scatter[domain] + centred.T @ centred
                counts[domain] += len(vectors)
    if counts[0] < 2:
        raise asdcore.AsdcoreError(f"the covariance pass needs at least 2 source vectors, got {counts[0]}")
    source = scatter[0] / (counts[0] - 1)
    target = scatter[1] / (counts[1] - 1) if counts[1] else source
    return torch.stack([source, target])


def mse_scores(features: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """"Simple Autoencoder" score ``[B]``: the mean squared error over every vector and dim of a clip (§1.5)."""
    return (reconstruction - features).square().mean(dim=(1, 2))


def mahalanobis_scores(features: torch.Tensor, reconstruction: torch.Tensor, precisions: torch.Tensor) -> torch.Tensor:
    """"Selective Mahalanobis" score ``[B]`` (§1.6): min over domains d of δ̄ᵀ P_d δ̄, δ̄ the mean of a clip's
    128-d error rows — equal to the baseline's (1/R²) Σ_i Σ_j δ_iᵀ P_d δ_j over its R rows."""
    mean_error = (reconstruction - features).double().reshape(len(features), -1, N_MELS).mean(dim=1)
    return torch.einsum("bi,dij,bj->bd", mean_error, precisions.double(), mean_error).amin(dim=1)


class DcaseBaselineAeFrontend(asdcore.Frontend):
    """``dcase_baseline_ae``: the official DCASE 2023–2026 Task 2 autoencoder baseline (Harada et al.,
    "First-shot anomaly detection for machine condition monitoring: a domain generalization baseline",
    EUSIPCO 2023; methods-facts §1).

    Features :class:`LogMelVectors`; network :class:`BaselineAutoEncoder`; trained with its own loop on the
    vectors of the training clips (whole waveforms): Adam (lr from ``frontend.training``, no weight decay),
    MSE, ``batch_size`` and ``epochs`` from ``frontend.training``; 10 % of the vectors held out for
    validation; batches of ≤ 1 vector skipped. After the last epoch the covariance pass over the training
    split fills the domain covariances. ``score`` picks the clip score: ``mse`` ("Simple Autoencoder") or
    ``mahalanobis`` ("Selective Mahalanobis"); the embedding is the bottleneck averaged over the clip's
    vectors. Usage (one model per machine type, as the baseline)::

        frontend:
          name: dcase_baseline_ae
          params: {score: mahalanobis}
          training: {epochs: 100, batch_size: 256, lr: 0.001, weight_decay: 0.0, tf32: false, scope: per_machine}
        backends: [{name: passthrough}]

    Where asdcore differs from the baseline:

    - The validation split (unseeded in the baseline) and the order of the batches of every epoch and of
      the covariance pass are drawn from ``data.seed``; training resumes from the checkpoint of its last epoch.
    - The decision threshold: the core fits its gamma distribution to the ``passthrough`` training scores,
      the per-clip scores of all training clips in eval mode; the baseline fits it to per-batch losses
      (MSE: the last epoch's training and validation batches; Mahalanobis: per-batch scores of 256 vectors).
    - The covariances are accumulated and inverted in float64 (float32 in the baseline), and the
      Mahalanobis score is computed in its clip-mean form.
    - The logged ``loss`` is the mean over the trained batches (the baseline also counts skipped ones).
    - Test clips are tiled/cropped by the core to their machine type's clip length (the baseline scores
      each clip at its own length); DCASE clips of one machine type share that length.

    Of two-channel DCASE 2026 clips it sees the dataset's ``channels`` choice; ``near`` is the baseline's
    channel 0.
    """

    class Params(asdcore.Params):
        score: Literal["mse", "mahalanobis"] = "mse"

    needs_training = True

    def __init__(self, params: Params, **context):
        super().__init__(params, **context)
        require_clip_samples("dcase_baseline_ae", min_samples(), self.clip_samples, self.sample_rate,
                             "choose a frontend without a 5-frame context (e.g. raw_spec)")
        self.features = LogMelVectors(self.sample_rate).to(self.device)
        self.model = BaselineAutoEncoder().to(self.device)

    @property
    def spec(self) -> asdcore.FrontendSpec:
        return asdcore.FrontendSpec(embedding_dim=8, needs_training=True, emits_scores=True)

    def fit(self, data: asdcore.TrainData) -> None:
        cfg = data.training
        _check_training(cfg)
        if data.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
        vectors, is_target = self._training_vectors(data)
        train_index, valid_index = split_vectors(len(vectors), data.seed)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        path = Path(data.workdir) / CHECKPOINT
        identity = fingerprint(data.identity, cfg.model_dump(exclude=set(NOT_IN_IDENTITY)), data.seed, len(vectors),
                               type(self).__name__, self.params.model_dump())
        start = self._resume(path, identity, optimizer, data)
        for epoch in range(start, cfg.epochs):
            started = time.perf_counter()
            batches = shuffled_batches(train_index, cfg.batch_size, data.seed, epoch)
            loss = self._train_epoch(vectors, batches, optimizer)
            data.log.append({"epoch": epoch + 1, "loss": loss, "val_loss": self._validation_loss(
                vectors, valid_index, cfg.batch_size), "seconds": round(time.perf_counter() - started, 3)})
            self._checkpoint(path, identity, epoch + 1, optimizer, data.log)
        self._covariance_pass(vectors, is_target, shuffled_batches(train_index, cfg.batch_size, data.seed, cfg.epochs))

    @torch.no_grad()
    def _training_vectors(self, data: asdcore.TrainData) -> tuple[torch.Tensor, torch.Tensor]:
        """The context vectors of every training clip and whether each is of the target domain."""
        vectors, is_target = [], []
        for clip in data.clips:
            wave = torch.from_numpy(long_enough(data.load(clip), clip, "dcase_baseline_ae")).to(self.device)
            vectors.append(self.features(wave[None])[0])
            is_target.append(torch.full((len(vectors[-1]),), clip.domain == asdcore.TARGET, device=self.device))
        vectors, is_target = torch.cat(vectors), torch.cat(is_target)
        if len(vectors) < 3:
            raise asdcore.AsdcoreError(f"dcase_baseline_ae: {len(vectors)} training vectors are too few to train on")
        return vectors, is_target

    def _train_epoch(self, vectors: torch.Tensor, batches: list[np.ndarray], optimizer) -> float:
        self.model.train()
        total = torch.zeros((), device=self.device)
        for index in batches:
            x = vectors[torch.from_numpy(index).to(self.device)]
            loss = nn.functional.mse_loss(self.model(x)[0], x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach()
        return float(total) / len(batches)

    @torch.no_grad()
    def _validation_loss(self, vectors: torch.Tensor, index: np.ndarray, batch_size: int) -> float:
        """Mean of the per-batch losses over the validation vectors in unshuffled batches, in eval mode."""
        self.model.eval()
        losses = [nn.functional.mse_loss(self.model(x)[0], x)
                  for x in vectors[torch.from_numpy(index).to(self.device)].split(batch_size)]
        return float(torch.stack(losses).mean())

    @torch.no_grad()
    def _covariance_pass(self, vectors: torch.Tensor, is_target: torch.Tensor, batches: list[np.ndarray]) -> None:
        self.model.eval()
        indices = (torch.from_numpy(index).to(self.device) for index in batches)
        covariances = error_covariances((vectors[i] - self.model(vectors[i])[0], is_target[i]) for i in indices)
        self.model.cov_source.copy_(covariances[0])
        self.model.cov_target.copy_(covariances[1])

    def _checkpoint(self, path: Path, identity: str, epoch: int, optimizer, log: list[dict]) -> None:
        state = {"identity": identity, "epoch": epoch, "model": self.model.state_dict(),
                 "optimizer": optimizer.state_dict(), "log": list(log)}
        save_artifact(state, path)

    def _resume(self, path: Path, identity: str, optimizer, data: asdcore.TrainData) -> int:
        """The number of epochs already trained by a checkpoint of the same training inputs (restored)."""
        if not path.exists():
            return 0
        state = load_artifact(path, self.device, weights_only=False)
        if state["identity"] != identity or state["epoch"] > data.training.epochs:
            return 0
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        data.log[:] = state["log"]
        return state["epoch"]

    @torch.no_grad()
    def extract(self, waves: torch.Tensor) -> asdcore.FrontendOutput:
        self.model.eval()
        features = self.features(waves)
        reconstruction, bottleneck = self.model(features)
        if self.params.score == "mse":
            score = mse_scores(features, reconstruction)
        else:
            score = mahalanobis_scores(features, reconstruction, self.model.precisions())
        return asdcore.FrontendOutput(bottleneck.mean(dim=1), score)

    def save(self, directory: Path) -> None:
        save_artifact(self.model.state_dict(), Path(directory) / "model.pt")

    def load(self, directory: Path) -> None:
        state = load_artifact(Path(directory) / "model.pt", self.device)
        self.model.load_state_dict(state)


def _check_training(cfg) -> None:
    """Reject ``frontend.training`` settings of the core's loop that the baseline's loop does not have."""
    off = {key: getattr(cfg, key) for key, value in FIXED_TRAINING.items() if getattr(cfg, key) != value}
    if off:
        raise asdcore.ConfigError(
            "frontend.training: dcase_baseline_ae trains with its own loop (Adam without weight decay, float32, "
            f"one device); set {', '.join(f'{key}: {FIXED_TRAINING[key]!r}' for key in off)} "
            f"(got {', '.join(f'{key}: {value!r}' for key, value in off.items())})")
