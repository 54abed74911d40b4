import pydantic
import pytest
import torch

import asdcore
from asd_frontends.augmentations import Mixup, SpecAugment, _band_mask

N_FFT, HOP = 1024, 256


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    waves = torch.randn(4, 8000, generator=generator)
    target = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0]])
    return waves, target


def test_mixup_with_prob_one_mixes_with_the_seeded_partner(batch):
    waves, target = batch
    torch.manual_seed(7)
    lam, perm = torch.rand(4).tolist(), torch.randperm(4).tolist()
    assert perm != [0, 1, 2, 3]
    torch.manual_seed(7)
    mixed, mixed_target = Mixup(Mixup.Params(prob=1.0))(waves, target)
    for i in range(4):
        j, lam_i = perm[i], lam[i]
        assert torch.allclose(mixed[i], lam_i * waves[i] + (1 - lam_i) * waves[j], atol=1e-6)
        assert mixed_target[i].tolist() == pytest.approx((lam_i * target[i] + (1 - lam_i) * target[j]).tolist())
    assert mixed_target.sum(dim=1).tolist() == pytest.approx([1.0] * 4)


def test_mixup_applies_per_sample_with_probability(batch):
    waves, target = batch
    torch.manual_seed(3)
    torch.rand(4), torch.randperm(4)
    applied = (torch.rand(4) < 0.5).tolist()
    assert any(applied) and not all(applied)
    torch.manual_seed(3)
    mixed, mixed_target = Mixup(Mixup.Params())(waves, target)
    for i in range(4):
        assert torch.equal(mixed[i], waves[i]) is not applied[i]
    assert mixed_target.sum(dim=1).tolist() == pytest.approx([1.0] * 4)


def test_mixup_with_prob_zero_leaves_the_batch_unchanged(batch):
    waves, target = batch
    mixed, mixed_target = Mixup(Mixup.Params(prob=0.0))(waves, target.long())
    assert torch.equal(mixed, waves)
    assert mixed_target.dtype == torch.float32 and torch.equal(mixed_target, target.long().float())


def test_band_mask_is_one_contiguous_band_per_applied_sample():
    torch.manual_seed(0)
    masks = _band_mask(200, 50, 20, 0.5)
    widths = masks.sum(dim=1)
    assert widths.max() < 20 and (widths > 0).sum() > 50 and (widths == 0).sum() > 50
    for row in masks[widths > 0]:
        index = row.nonzero().flatten()
        assert index[-1] - index[0] + 1 == len(index)
    assert not _band_mask(10, 50, 20, 0.0).any()
    assert _band_mask(10, 5, 80, 1.0).sum(dim=1).max() <= 5


def test_specaugment_with_prob_zero_round_trips(batch):
    waves, target = batch
    waves = waves[:, :7777]
    out, out_target = SpecAugment(SpecAugment.Params(prob=0.0))(waves, target)
    assert out.shape == waves.shape and out_target is target
    assert torch.allclose(out, waves, atol=1e-5)


def test_specaugment_time_mask_zeroes_a_band_of_frames(batch):
    waves, target = batch
    augment = SpecAugment(SpecAugment.Params(max_time_width=20, max_freq_width=0, prob=1.0))
    torch.manual_seed(15)
    frames = 1 + waves.shape[1] // HOP
    time = _band_mask(4, frames, 20, 1.0)
    torch.manual_seed(15)
    out, _ = augment(waves, target)
    assert out.shape == waves.shape
    for i in range(4):
        masked = time[i].nonzero().flatten().tolist()
        first, last = masked[0], masked[-1]
        assert len(masked) == last - first + 1 >= 5 and first >= 2 and last + 2 < frames
        # Frame f (centred at f·HOP) covers the samples t with |t − f·HOP| < N_FFT/2 = 2·HOP: samples
        # covered by masked frames only are silent, samples covered by unmasked frames only unchanged.
        silent = slice((first + 2) * HOP, (last - 2) * HOP + 1)
        assert out[i, silent].abs().max() < 1e-6
        for kept in (slice(0, (first - 2) * HOP + 1), slice((last + 2) * HOP, None)):
            assert torch.allclose(out[i, kept], waves[i, kept], atol=1e-5)


def test_specaugment_frequency_mask_removes_a_band_of_bins(batch):
    waves, target = batch
    augment = SpecAugment(SpecAugment.Params(max_time_width=0, max_freq_width=80, prob=1.0))
    torch.manual_seed(2)
    _band_mask(4, 1 + waves.shape[1] // HOP, 0, 1.0)
    freq = _band_mask(4, N_FFT // 2 + 1, 80, 1.0)
    torch.manual_seed(2)
    out, _ = augment(waves, target)
    window = torch.hann_window(N_FFT)
    before = torch.stft(waves, N_FFT, HOP, window=window, return_complex=True).abs()
    after = torch.stft(out, N_FFT, HOP, window=window, return_complex=True).abs()
    for i in range(4):
        masked = freq[i].nonzero().flatten().tolist()
        assert len(masked) > 10
        inner = slice(masked[0] + 3, masked[-1] - 2)  # Hann leakage reaches 2 bins beyond the band
        assert after[i, inner].mean() < 0.01 * before[i, inner].mean()
        outside = [b for b in range(N_FFT // 2 + 1) if not masked[0] - 3 <= b <= masked[-1] + 3]
        assert torch.allclose(after[i, outside].mean(), before[i, outside].mean(), rtol=0.05)


def test_registered_by_path_and_strict_params():
    registry = asdcore.get_registry()
    assert {name: registry.get("augmentations", name).cls for name in ("mixup", "specaugment")} == \
           {"mixup": Mixup, "specaugment": SpecAugment}
    for cls in (Mixup, SpecAugment):
        assert issubclass(cls, asdcore.Augmentation) and issubclass(cls.Params, asdcore.Params)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Mixup.Params(alpha=1.0)
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 1"):
        Mixup.Params(prob=1.5)
