"""stacked_weights (one GEMM + one batched GEMM, chunked over rows) equals each factor's own MLP."""
import sys

import pytest
import torch

from sparsemix.nn import SparseFactorConv, stacked_weights

MODULE = sys.modules["sparsemix.nn.stacked_weights"]  # the package exports the function under this name


def factors(num=3, f=5, h=6, k=7, dtype=torch.float64):
    torch.manual_seed(0)
    return [SparseFactorConv(f, k, hidden_channels=h).to(dtype) for _ in range(num)]


@pytest.mark.parametrize("chunk_elements", [1, 40, 1 << 21])  # one row per chunk, several rows, one chunk
def test_equals_each_factor_forward_and_backward_fp64(monkeypatch, chunk_elements):
    monkeypatch.setattr(MODULE, "CHUNK_ELEMENTS", chunk_elements)
    fs = factors()
    x = torch.randn(2, 13, 5, dtype=torch.float64, requires_grad=True)
    got, want = stacked_weights(fs, x), [f.compute_weights(x) for f in fs]
    params = [x] + [p for f in fs for p in f.parameters()]
    g = [torch.randn_like(w) for w in want]
    for a, b in zip(got + list(torch.autograd.grad(got, params, g)),
                    want + list(torch.autograd.grad(want, params, g))):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_gradcheck_over_chunks(monkeypatch):
    monkeypatch.setattr(MODULE, "CHUNK_ELEMENTS", 30)
    fs = factors(num=2, f=3, h=4, k=3)
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: torch.stack(stacked_weights(fs, x)), (x,))


def test_fp32_and_bf16_autocast():
    fs = factors(dtype=torch.float32)
    x = torch.randn(4, 20, 5)
    want = [f.compute_weights(x.double()) for f in factors()]  # the same parameters, in fp64
    for a, b in zip(stacked_weights(fs, x), want):
        assert torch.allclose(a.double(), b, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = stacked_weights(fs, x)
    assert low[0].dtype == torch.bfloat16
    for a, b in zip(low, want):
        assert ((a.double() - b).abs().max() / b.abs().max()).item() < 3e-2


def test_factors_must_match():
    with pytest.raises(ValueError, match="share"):
        stacked_weights([SparseFactorConv(4, 3), SparseFactorConv(4, 5)], torch.randn(8, 4))
    with pytest.raises(ValueError, match="at least one"):
        stacked_weights([], torch.randn(8, 4))
