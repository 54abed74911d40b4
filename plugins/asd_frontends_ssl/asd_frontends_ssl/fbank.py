"""Kaldi log-mel filterbanks of a whole batch on its device: ``torchaudio.compliance.kaldi.fbank`` with
the options BEATs, EAT and AST use, vectorised over clips and frames."""
from __future__ import annotations

import functools

import torch
from torchaudio.compliance import kaldi

FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
PREEMPHASIS = 0.97
LOW_FREQ = 20.0  # kaldi.fbank defaults; high_freq 0 means the Nyquist frequency
EPSILON = torch.finfo(torch.float32).eps  # kaldi.fbank's floor before the log
WINDOWS = ("povey", "hanning")
# Frame samples per chunk on the CPU (8 MiB of float32): a larger working set costs more in cache misses
# and page faults of fresh buffers than the few extra calls.
CPU_CHUNK = 1 << 21


# Cached per device, and built outside inference mode since autograd may save them in a later call.
@functools.lru_cache(maxsize=None)
@torch.inference_mode(False)
def _mel_banks(num_mel_bins: int, fft_size: int, sample_frequency: float, device: torch.device) -> torch.Tensor:
    """Float32 mel weights (fft_size // 2 + 1, num_mel_bins), the Nyquist row zero as in ``kaldi.fbank``."""
    banks, _ = kaldi.get_mel_banks(num_mel_bins, fft_size, sample_frequency, LOW_FREQ, 0.0, 100.0, -500.0, 1.0)
    return torch.nn.functional.pad(banks, (0, 1)).T.contiguous().to(device=device, dtype=torch.float32)


@functools.lru_cache(maxsize=None)
@torch.inference_mode(False)
def _window(window: str, size: int, device: torch.device) -> torch.Tensor:
    hann = torch.hann_window(size, periodic=False, device=device, dtype=torch.float32)
    return hann.pow(0.85) if window == "povey" else hann


def _log_mel(
    waves: torch.Tensor, size: int, shift: int, fft_size: int, window: torch.Tensor, banks: torch.Tensor
) -> torch.Tensor:
    # In-place steps keep the batch-sized temporaries few; each computes what kaldi.fbank computes, in its order.
    frames = waves.unfold(1, size, shift)
    frames = frames - frames.mean(-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1).mul_(PREEMPHASIS)
    frames.sub_(previous).mul_(window)
    power = torch.fft.rfft(frames, n=fft_size).abs().pow_(2.0)
    return torch.matmul(power, banks).clamp_min_(EPSILON).log_()


def kaldi_fbank(
    waves: torch.Tensor, num_mel_bins: int, sample_frequency: float = 16000.0, window: str = "povey"
) -> torch.Tensor:
    """Waves ``[B, L]`` → log-mel ``[B, T, num_mel_bins]`` in float32 on the waves' device.

    Equals ``kaldi.fbank`` per clip with ``window_type=window`` and defaults otherwise: 25 ms frames
    every 10 ms with snip_edges (T = 1 + (L − N) // S), dither 0, per-frame DC removal, pre-emphasis
    0.97, FFT zero-padded to the next power of two, power spectrum, mel banks from 20 Hz to Nyquist,
    log floored at float32 eps, no energy term (so ``htk_compat`` has no effect). Float32 even
    under autocast. On the CPU the batch runs in chunks of about :data:`CPU_CHUNK` frame samples.
    """
    if window not in WINDOWS:
        raise ValueError(f"window {window!r} is not one of {WINDOWS}")
    if waves.dim() != 2:
        raise ValueError(f"expected waveforms of shape [B, L], got {tuple(waves.shape)}")
    size = int(sample_frequency * FRAME_LENGTH_MS / 1000)
    shift = int(sample_frequency * FRAME_SHIFT_MS / 1000)
    if waves.shape[1] < size:
        raise ValueError(f"a clip of {waves.shape[1]} samples is shorter than one {size}-sample fbank frame")
    fft_size = 1 << (size - 1).bit_length()
    frame_samples = (1 + (waves.shape[1] - size) // shift) * size
    with torch.autocast(waves.device.type, enabled=False):
        constants = (_window(window, size, waves.device),
                     _mel_banks(num_mel_bins, fft_size, float(sample_frequency), waves.device))
        waves = waves.float()
        chunks = waves.split(max(1, CPU_CHUNK // frame_samples)) if waves.device.type == "cpu" else [waves]
        parts = [_log_mel(chunk, size, shift, fft_size, *constants) for chunk in chunks]
        return parts[0] if len(parts) == 1 else torch.cat(parts)
