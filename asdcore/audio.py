"""Audio reading (soundfile) with clear errors, the channel choices of two-microphone recordings, the
fixed-length tile/crop rule with its warning for clips tiled many times, and the clip-length minimum of
frontends."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError, ConfigError

log = logging.getLogger("asdcore")

CHANNELS = ("near", "far", "mean", "diff")  # what a frontend sees of a two-channel (near, far) clip
MAX_TILES = 4  # a clip repeated more often than this to fill the clip length is warned about
_tiled: set[str] = set()  # files warned about by this process


def read_audio(path: Path, sample_rate: int, channels: int = 1) -> np.ndarray:
    """Read a clip as float32: ``[N]`` when ``channels`` is 1, else ``[N, channels]``. A missing, corrupt,
    truncated or wrongly sampled file, or one with another number of channels, raises AudioError naming it."""
    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate != sample_rate:
                raise AudioError(f"{path}: sample rate {f.samplerate} Hz, expected {sample_rate} Hz")
            if f.channels != channels:
                raise AudioError(f"{path}: {_count(f.channels)}, expected {_expected(channels)}")
            expected = f.frames
            wave = f.read(dtype="float32", always_2d=channels > 1)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    if len(wave) < expected or (_declared_bytes(path) or 0) > Path(path).stat().st_size:
        raise _truncated(path)
    if len(wave) == 0:
        raise AudioError(f"{path}: empty audio file (no samples); record it again or remove it")
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples; export it again or remove it")
    return wave


def duration(path: Path) -> float:
    """The length of an audio file in seconds, from its header; an unreadable or truncated file raises
    AudioError naming it."""
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    if (_declared_bytes(path) or 0) > Path(path).stat().st_size:
        raise _truncated(path)
    return info.frames / info.samplerate


def _truncated(path: Path) -> AudioError:
    return AudioError(f"{path}: truncated audio file (header declares more data than the file holds); "
                      "copy or export the recording again")


def _count(channels: int) -> str:
    return f"{channels} channel{'s' if channels != 1 else ''}"


def _expected(channels: int) -> str:
    if channels == 1:
        return "mono"
    return "2 (channel 0: near microphone, 1: far microphone)" if channels == 2 else str(channels)


def select_channels(wave: np.ndarray, choice: str) -> np.ndarray:
    """What a frontend sees of a two-channel clip ``[N, 2]`` (channel 0 near, 1 far): ``near``, ``far``,
    their ``mean`` or their difference ``diff`` (near − far)."""
    near, far = wave[:, 0], wave[:, 1]
    if choice == "near":
        return np.ascontiguousarray(near)
    if choice == "far":
        return np.ascontiguousarray(far)
    if choice == "mean":
        return (near + far) / np.float32(2)
    if choice == "diff":
        return near - far
    raise ValueError(f"unknown channel choice {choice!r}; choose one of {', '.join(CHANNELS)}")


def _declared_bytes(path: Path) -> int | None:
    """For RIFF/WAVE files, the total size the RIFF header declares (None for other formats)."""
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        size = int.from_bytes(head[4:8], "little")
        return size + 8 if 0 < size < 0xFFFFFFFF else None  # 0 / 0xFFFFFFFF: streamed, size unknown
    return None


def fit_length(wave: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Tile a short clip until it covers ``length`` samples, then cut ``length`` samples from ``offset``."""
    if len(wave) < length + offset:
        wave = np.tile(wave, -(-(length + offset) // len(wave)))
    return np.ascontiguousarray(wave[offset : offset + length])


def warn_tiling(path: Path | str, samples: int, length: int, sample_rate: int) -> None:
    """Warn (once per file and process) when a clip of ``samples`` must be repeated more than
    :data:`MAX_TILES` times to fill the clip length of ``length`` samples."""
    if samples and -(-length // samples) > MAX_TILES and str(path) not in _tiled:
        _tiled.add(str(path))
        log.warning("%s: a clip of %.3g s is tiled %d times to the clip length of %.3g s; check the recording, "
                    "or leave it out", path, samples / sample_rate, -(-length // samples), length / sample_rate)


def require_clip_samples(frontend: str, minimum: int, clip_samples: int, sample_rate: int, remedy: str) -> None:
    """Raise ConfigError when clips of ``clip_samples`` are shorter than the ``minimum`` samples that
    ``frontend`` needs; ``remedy`` says what else helps (e.g. which frontend params lower the minimum)."""
    if clip_samples < minimum:
        seconds = math.ceil(minimum / sample_rate * 100) / 100
        raise ConfigError(
            f"frontend {frontend!r} needs clips of at least {minimum} samples ({minimum / sample_rate:.3g} s at "
            f"{sample_rate} Hz), but the clip length is {clip_samples} samples ({clip_samples / sample_rate:.3g} s); "
            f"use longer clips, set `dataset.clip_seconds` to at least {seconds:g} where the dataset has it "
            f"(shorter clips are tiled), or {remedy}")
