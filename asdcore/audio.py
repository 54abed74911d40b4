"""Audio reading (soundfile) with clear errors, and the fixed-length tile/crop rule."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Read a mono clip as float32; a missing, corrupt, truncated, multi-channel or
    wrongly sampled file raises AudioError naming the file."""
    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate != sample_rate:
                raise AudioError(f"{path}: sample rate {f.samplerate} Hz, expected {sample_rate} Hz")
            if f.channels != 1:
                raise AudioError(f"{path}: {f.channels} channels, expected mono")
            expected = f.frames
            wave = f.read(dtype="float32")
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    if len(wave) < expected or (_declared_bytes(path) or 0) > Path(path).stat().st_size:
        raise AudioError(f"{path}: truncated audio file (header declares more data than the file holds)")
    if len(wave) == 0:
        raise AudioError(f"{path}: empty audio file")
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return wave


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
