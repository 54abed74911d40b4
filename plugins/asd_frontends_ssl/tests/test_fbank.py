"""The batched Kaldi filterbank against ``torchaudio.compliance.kaldi.fbank`` clip by clip."""
import pytest
import torch
from torchaudio.compliance import kaldi

from asd_frontends_ssl import beats, eat
from asd_frontends_ssl.fbank import kaldi_fbank

SR = 16000
# The options BEATs (povey window, input × 2^15) and EAT / AST (Hanning window, htk_compat) pass.
OPTIONS = {
    "povey": {"window_type": "povey"},
    "hanning": {"window_type": "hanning", "htk_compat": True, "use_energy": False},
}


def noise(batch, samples, seed=0, scale=0.1):
    return scale * torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


def per_clip(waves, window, num_mel_bins=128, sample_frequency=SR):
    return torch.stack([
        kaldi.fbank(w[None], num_mel_bins=num_mel_bins, sample_frequency=sample_frequency, frame_length=25.0,
                    frame_shift=10.0, dither=0.0, **OPTIONS[window])
        for w in waves
    ])


@pytest.mark.parametrize("window, scale", [("povey", 2**15 * 0.1), ("hanning", 0.1)])
@pytest.mark.parametrize("batch, samples", [(3, SR), (2, 24001), (4, 401), (1, 400), (3, 18 * SR)])
def test_equals_kaldi_fbank_per_clip(window, scale, batch, samples):
    """Equal to the per-clip path within atol 1e-4 on the log-mel: both run float32 FFTs and mel
    products whose algorithm and summation order may differ with the batch shape and device (on the
    CPU they agree bit for bit except for single-frame clips). Three 18-s clips run in two CPU chunks."""
    waves = noise(batch, samples, scale=scale)
    out = kaldi_fbank(waves, 128, SR, window=window)
    assert out.dtype == torch.float32 and out.shape == (batch, 1 + (samples - 400) // 160, 128)
    torch.testing.assert_close(out, per_clip(waves, window), rtol=0, atol=1e-4)


def test_other_mel_bins_and_sample_rate():
    waves = noise(2, 8000)
    torch.testing.assert_close(kaldi_fbank(waves, 64, 8000, window="hanning"),
                               per_clip(waves, "hanning", 64, 8000), rtol=0, atol=1e-4)


def test_float32_under_bf16_autocast():
    waves = noise(2, SR)
    expected = kaldi_fbank(waves, 128, SR)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = kaldi_fbank(waves, 128, SR)
        beats_out, eat_out = beats.preprocess(waves), eat.preprocess(waves)
    assert out.dtype == beats_out.dtype == eat_out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(beats_out, beats.preprocess(waves), rtol=0, atol=0)
    torch.testing.assert_close(eat_out, eat.preprocess(waves), rtol=0, atol=0)


def test_bf16_and_float64_waves_are_computed_in_float32():
    waves = noise(2, SR)
    assert torch.equal(kaldi_fbank(waves.double(), 128, SR), kaldi_fbank(waves, 128, SR))
    assert torch.equal(kaldi_fbank(waves.bfloat16(), 128, SR), kaldi_fbank(waves.bfloat16().float(), 128, SR))


def test_constants_cached_in_inference_mode_serve_autograd():
    with torch.inference_mode():
        kaldi_fbank(noise(1, SR), 40, 22050, window="hanning")
    waves = noise(1, SR).requires_grad_()
    kaldi_fbank(waves, 40, 22050, window="hanning").sum().backward()
    assert torch.isfinite(waves.grad).all()


@pytest.mark.parametrize("waves, kwargs, message", [
    (torch.zeros(2, 399), {}, "399 samples is shorter than one 400-sample"),
    (torch.zeros(SR), {}, r"\[B, L\]"),
    (torch.zeros(1, SR), {"window": "hamming"}, "'hamming' is not one of"),
])
def test_bad_input(waves, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kaldi_fbank(waves, 128, SR, **kwargs)


def test_beats_and_eat_preprocess_of_18_s_clips_equal_the_per_clip_path():
    """BEATs equals the per-clip path within atol 1e-4 on the log-mel. EAT within 1e-3: it first removes
    each clip's mean, a float32 sum whose rounding depends on how torch splits it over threads (per clip
    or per batch), and the lowest mel bins, which pre-emphasis attenuates by about 30 dB, amplify that
    last-bit difference."""
    waves = noise(2, 18 * SR)
    log_mel = beats.preprocess(waves) * (2 * beats.FBANK_STD) + beats.FBANK_MEAN
    torch.testing.assert_close(log_mel, per_clip(waves * 2**15, "povey"), rtol=0, atol=1e-4)
    reference = per_clip(torch.stack([w - w.mean() for w in waves]), "hanning")
    log_mel = eat.preprocess(waves)[:, : reference.shape[1]] * (2 * eat.FBANK_STD) + eat.FBANK_MEAN
    torch.testing.assert_close(log_mel, reference, rtol=0, atol=1e-3)
