"""The multi-branch CNN against fact sheet §4b, with sizes and parameter counts derived independently."""
import pytest
import torch
from torch import nn

from asd_frontends.multibranch import MultiBranchNet, SpectrogramBranch, SpectrumBranch

SR = 16000
SECONDS = {2020: 11, 2021: 10, 2023: 18, 2024: 12}


def se_params(c):
    return 2 * c * (c // 16)


def spectrum_branch_params(flatten_dim, emb=128):
    convs = 1 * 128 * 256 + 128 * 128 * 64 + 128 * 128 * 16
    mlp = flatten_dim * emb + 4 * emb * emb + emb * emb
    return convs + 3 * se_params(128) + mlp


def spectrogram_branch_params(f_out, emb=128):
    total = 16 * 1 * 7 * 7
    c_in = 16
    for c in (16, 32, 64, 128):
        first = c_in * c * 9 + c * c * 9 + se_params(c) + (c_in * c if c_in != c else 0)
        second = 2 * c * c * 9 + se_params(c)
        total += first + second
        c_in = c
    return total + 128 * f_out * emb


@pytest.mark.parametrize(
    ("year", "remaining"), [(2021, 6), (2023, 14), (2024, 8), (2020, 7)]
)
def test_spectrum_branch_flatten_size(year, remaining):
    branch = SpectrumBranch(SECONDS[year] * SR)
    assert branch.remaining_length == remaining
    assert branch.flatten_dim == 128 * remaining
    assert branch.head[0].in_features == 128 * remaining
    assert sum(p.numel() for p in branch.parameters()) == spectrum_branch_params(128 * remaining)


@pytest.mark.parametrize(
    ("n_fft", "first", "last", "f_out"), [(256, 4, 128, 4), (1024, 13, 512, 16), (4096, 52, 2048, 63)]
)
def test_spectrogram_branch_crop_and_sizes(n_fft, first, last, f_out):
    branch = SpectrogramBranch(n_fft)
    assert (branch.first_bin, branch.last_bin, branch.n_bins) == (first, last, last - first + 1)
    assert first * SR / n_fft >= 200 > (first - 1) * SR / n_fft
    assert branch.hop == n_fft // 2
    assert branch.input_norm.num_features == branch.n_bins
    assert branch.out_bins == f_out
    assert branch.head[-1].in_features == 128 * f_out
    assert sum(p.numel() for p in branch.parameters()) == spectrogram_branch_params(f_out)


def test_spectrogram_branch_map_sizes():
    """10 s clip, n_fft 1024: (500 bins, 313 frames) → (16, 10) after stage 5."""
    branch = SpectrogramBranch(1024).eval()
    waves = torch.randn(1, 10 * SR)
    spec = branch.stft(waves)[:, branch.first_bin : branch.last_bin + 1]
    assert spec.shape == (1, 500, 313)
    with torch.no_grad():
        x = branch.blocks(branch.stem(branch.input_norm(spec).unsqueeze(1)))
    assert x.shape == (1, 128, 16, 10)


def test_no_biases_and_non_affine_batchnorm():
    net = MultiBranchNet(10 * SR, n_ffts=(256, 1024, 4096))
    for module in net.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            assert module.bias is None
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            assert not module.affine
            assert (module.momentum, module.eps) == (0.1, 1e-5)
    weights = {id(m.weight) for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}
    assert all(id(p) in weights for p in net.parameters())


@pytest.mark.parametrize(
    ("n_ffts", "f_outs", "dim"), [((1024,), (16,), 256), ((256, 1024, 4096), (4, 16, 63), 512)]
)
def test_configuration_sizes(n_ffts, f_outs, dim):
    net = MultiBranchNet(10 * SR, n_ffts=n_ffts)
    assert net.embedding_dim == dim
    assert net.subspace_slices() == [slice(i, i + 128) for i in range(0, dim, 128)]
    assert isinstance(net.branches[0], SpectrumBranch)
    assert [b.n_fft for b in net.branches[1:]] == list(n_ffts)
    expected = spectrum_branch_params(768) + sum(spectrogram_branch_params(f) for f in f_outs)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_forward_backward_multispec():
    torch.manual_seed(0)
    net = MultiBranchNet(10 * SR, n_ffts=(256, 1024, 4096))
    waves = 0.1 * torch.randn(2, 10 * SR)
    out = net(waves)
    assert out.shape == (2, 512)
    for branch, part in zip(net.branches, net.subspace_slices()):
        assert torch.equal(out[:, part], branch(waves))
    out.square().sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_rejects_too_few_bins_frames_or_samples():
    with pytest.raises(ValueError, match="bins"):
        SpectrogramBranch(64)  # bins 1–32: 32 < 36
    with pytest.raises(ValueError, match="frames"):
        MultiBranchNet(71000, n_ffts=(4096,))  # 1 + 71000 // 2048 = 35 frames
    with pytest.raises(ValueError, match="too short"):
        SpectrumBranch(SR)
    net = MultiBranchNet(5 * SR, n_ffts=(256,))
    with pytest.raises(ValueError, match="samples"):
        net(torch.zeros(2, 4 * SR))
