import math

import numpy as np
import pytest
import torch

from cilf.model.fourier import FourierFormer, FourierMixer, GlobalFilter


def _ones_filter(f: GlobalFilter) -> None:
    with torch.no_grad():
        f.weight.zero_()
        f.weight[..., 0] = 1.0


@pytest.mark.parametrize("mixer", ["fourier", "attention", "sdpa", "none"])
def test_shapes_and_dtype(mixer):
    m = FourierFormer(dim=16, depth=2, mixer=mixer, grid=(7, 5), heads=4)
    x = torch.randn(3, 7, 5, 16)
    y = m(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    y.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_unknown_mixer_and_bad_input_rank():
    with pytest.raises(ValueError, match="mixer"):
        FourierFormer(8, mixer="conv")
    with pytest.raises(ValueError, match="B x H x W x C"):
        FourierFormer(8)(torch.randn(2, 16, 8))


@pytest.mark.parametrize("grid", [(8, 8), (5, 7), (6, 9)])
def test_all_ones_filter_without_dwconv_is_identity(grid):
    mixer = FourierMixer(12, grid=grid, dwconv=False)
    _ones_filter(mixer.filter)
    x = torch.randn(2, *grid, 12)
    torch.testing.assert_close(mixer(x), x, atol=1e-5, rtol=1e-5)


def _direct_dft_filter(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """x: H x W x C real, k: C x H x (W//2+1) complex -> irfft2(rfft2(x) * k), by explicit sums."""
    h, w, c = x.shape
    wf = w // 2 + 1
    m = np.arange(h)[:, None]
    n = np.arange(w)[None, :]
    out = np.zeros_like(x)
    for ch in range(c):
        spec = np.zeros((h, wf), complex)
        for u in range(h):
            for v in range(wf):
                spec[u, v] = (x[:, :, ch] * np.exp(-2j * math.pi * (u * m / h + v * n / w))).sum() / math.sqrt(h * w)
        spec *= k[ch]
        for u in range(h):
            for v in range(wf):
                cw = 1.0 if v == 0 or (w % 2 == 0 and v == w // 2) else 2.0
                out[:, :, ch] += cw * (spec[u, v] * np.exp(2j * math.pi * (u * m / h + v * n / w))).real
        out[:, :, ch] /= math.sqrt(h * w)
    return out


@pytest.mark.parametrize("grid", [(4, 6), (5, 7), (3, 5)])
def test_fft_filter_equals_direct_dft(grid):
    torch.manual_seed(0)
    f = GlobalFilter(3, grid, init_std=0.5)
    x = torch.randn(1, *grid, 3)
    got = f(x)[0].detach().numpy()
    k = torch.view_as_complex(f.weight.detach().double()).numpy()
    want = _direct_dft_filter(x[0].double().numpy(), k)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_changed_grid_interpolates_filter():
    f = GlobalFilter(4, (8, 8))
    _ones_filter(f)
    x = torch.randn(2, 12, 10, 4)
    torch.testing.assert_close(f(x), x, atol=1e-5, rtol=1e-5)  # ones interpolate to ones
    assert f.filter_for(12, 10).shape == (4, 12, 6)
    torch.nn.init.normal_(f.weight)
    assert torch.equal(torch.view_as_real(f.filter_for(8, 8)), f.weight.detach())  # same grid: untouched
    assert FourierFormer(4, grid=(8, 8))(torch.randn(1, 11, 13, 4)).shape == (1, 11, 13, 4)


def test_fft_runs_in_float32_for_half_inputs():
    f = GlobalFilter(4, (6, 6))
    x = torch.randn(1, 6, 6, 4).to(torch.bfloat16)
    y = f(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), f(x.float()), atol=2e-2, rtol=2e-2)


def test_attention_variants_agree():
    torch.manual_seed(0)
    a = FourierFormer(16, depth=1, mixer="attention", grid=(4, 4))
    s = FourierFormer(16, depth=1, mixer="sdpa", grid=(4, 4))
    s.load_state_dict(a.state_dict())
    x = torch.randn(2, 4, 4, 16)
    torch.testing.assert_close(a(x), s(x), atol=1e-5, rtol=1e-4)


def test_the_notebooks_fft_steps_compose_to_the_filters_forward():
    from cilf.notebook.analysis import fpe_steps

    torch.manual_seed(0)
    f = GlobalFilter(5, (6, 6), init_std=0.5)
    x = torch.randn(3, 7, 9, 5)  # a grid other than the filter's: the filter is interpolated
    size = (7, 9)
    steps = fpe_steps(f, x[0])
    assert steps["spectrum"].shape == (7, 5)
    with torch.no_grad():
        assert np.array_equal(steps["output"], f(x[:1])[0].mean(-1).numpy())
    assert np.array_equal(steps["filter"], f.filter_for(*size).abs().mean(0).detach().numpy())
