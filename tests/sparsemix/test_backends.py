"""Every Paramixer backend computes the same block: outputs and gradients of v, x and all parameters."""
import copy
import functools
import logging

import pytest
import torch

from sparsemix import Paramixer
from sparsemix import kernels
from sparsemix import reference as R

SIZES = [1, 2, 3, 13, 16, 1000, 1024]
# Every fast backend; those that cannot run here are listed as skipped with the reason, never dropped.
FAST = ["fused",
        pytest.param("compiled", marks=pytest.mark.slow),  # one torch.compile per slot count K
        pytest.param("native", marks=pytest.mark.skipif(not kernels.HAS_NATIVE,
                                                         reason=f"native op not built: {kernels.NATIVE_ERROR}")),
        pytest.param("sparse", marks=pytest.mark.skipif(not kernels.HAS_TORCH_SPARSE,
                                                         reason="torch-sparse not installed"))]


def make(backend, protocol, max_len, dtype=torch.float64, channels=3):
    torch.manual_seed(0)  # same parameters for every backend
    return Paramixer(channels, protocol=protocol, max_len=max_len, hidden_channels=4,
                     backend=backend).to(dtype).eval()


def outputs_and_grads(block, v, x, batch=None):
    v = v.detach().requires_grad_()
    x = x.detach().requires_grad_()
    out = block(v, x=x, batch=batch)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = g.to(out.dtype)  # the same numbers for every dtype
    params = list(block.parameters())
    grads = torch.autograd.grad(out, [v, x] + params, g)
    return [out.detach()] + list(grads)


def assert_all_close(got, want, tol):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        err = ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
        assert err <= tol, err


@functools.lru_cache(maxsize=None)
def static_case(protocol, n):
    """Inputs and the message backend's outputs and gradients, shared by every fast backend."""
    gen = torch.Generator().manual_seed(n)
    v = torch.randn(2, n, 3, generator=gen, dtype=torch.float64)
    x = torch.randn(2, n, 3, generator=gen, dtype=torch.float64)
    return v, x, outputs_and_grads(make("message", protocol, n), v, x)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
@pytest.mark.parametrize("n", SIZES)
def test_static_equals_message_fp64(backend, protocol, n):
    v, x, want = static_case(protocol, n)
    got = outputs_and_grads(make(backend, protocol, n), v, x)
    assert_all_close(got, want, 1e-10)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_static_equals_dense_reference(backend, protocol):
    b = make(backend, protocol, 13)
    v = torch.randn(2, 13, 3, dtype=torch.float64)
    assert_all_close([b(v)], [R.block_forward(b, v)], 1e-10)


@pytest.mark.parametrize("protocol", ["chord", "cdil"])
@pytest.mark.parametrize("n", [1, 3, 16])
def test_message_equals_dense_reference_forward_and_backward(protocol, n):
    """The readable path is itself checked against the dense matrices, gradients included."""
    v, x, want = static_case(protocol, n)
    b = make("message", protocol, n)
    vr, xr = v.detach().requires_grad_(), x.detach().requires_grad_()
    out = R.block_forward(b, vr, xr)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = [out.detach()] + list(torch.autograd.grad(out, [vr, xr] + list(b.parameters()), g))
    assert_all_close(want, ref, 1e-10)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_fp32_equals_fp64_message(backend, protocol):
    """fp32 fast path vs the fp64 message path: within 1e-5 of the largest entry."""
    v, x, want = static_case(protocol, 1000)
    got = outputs_and_grads(make(backend, protocol, 1000, torch.float32), v.float(), x.float())
    assert_all_close([t.double() for t in got], want, 1e-5)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_variable_length_equals_message_and_reference(backend, protocol):
    lengths = [1, 2, 3, 13, 100]
    batch = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    gen = torch.Generator().manual_seed(7)
    v = torch.randn(sum(lengths), 3, generator=gen, dtype=torch.float64)
    x = torch.randn(sum(lengths), 3, generator=gen, dtype=torch.float64)
    want = outputs_and_grads(make("message", protocol, 128), v, x, batch)
    fast = make(backend, protocol, 128)
    got = outputs_and_grads(fast, v, x, batch)
    assert_all_close(got, want, 1e-10)
    assert_all_close([got[0]], [R.block_forward(fast, v, x, batch)], 1e-10)


@pytest.mark.parametrize("backend", ["message"] + FAST)
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_variable_length_fp32_equals_fp64_message(backend, protocol):
    lengths = [1, 16, 3, 1000]
    batch = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    gen = torch.Generator().manual_seed(8)
    v = torch.randn(sum(lengths), 3, generator=gen, dtype=torch.float64)
    x = torch.randn(sum(lengths), 3, generator=gen, dtype=torch.float64)
    want = outputs_and_grads(make("message", protocol, 1024), v, x, batch)
    got = outputs_and_grads(make(backend, protocol, 1024, torch.float32), v.float(), x.float(), batch)
    assert_all_close([t.double() for t in got], want, 1e-5)


@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_fused_backward_is_bitwise_deterministic(protocol):
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(2, 1000, 3, generator=gen)
    x = torch.randn(2, 1000, 3, generator=gen)
    first = outputs_and_grads(make("fused", protocol, 1000, torch.float32), v, x)
    second = outputs_and_grads(make("fused", protocol, 1000, torch.float32), v, x)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_auto_picks_native_if_built_else_fused_and_says_so(caplog):
    from sparsemix.nn import backends

    want = "native" if kernels.HAS_NATIVE else "fused"
    backends._logged_auto = False  # the choice is logged once per process
    with caplog.at_level(logging.INFO, logger=backends.__name__):
        block = Paramixer(4, max_len=16, backend="auto")
    assert block.active_backend == want
    assert any(want in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("backend", ["message"] + FAST)
def test_empty_batch_works(backend):
    b = make(backend, "chord", 8)
    v = torch.randn(0, 8, 3, dtype=torch.float64, requires_grad=True)
    out = b(v)
    assert out.shape == (0, 8, 3)
    out.sum().backward()
    assert v.grad.shape == v.shape


def test_sparse_backend_without_torch_sparse_names_the_package(monkeypatch):
    import sparsemix.kernels.sparse_mix as sparse_mix

    # as on a machine without torch-sparse (CI has it: the flag is what every check reads)
    monkeypatch.setattr(kernels, "HAS_TORCH_SPARSE", False)
    monkeypatch.setattr(sparse_mix, "HAS_TORCH_SPARSE", False)
    with pytest.raises(ImportError, match="torch-sparse"):
        Paramixer(4, max_len=16, backend="sparse")
    with pytest.raises(ImportError, match="torch-sparse"):
        kernels.sparse_slot_mix(torch.randn(4, 2), torch.randn(4, 3), torch.zeros(4, 3, dtype=torch.long))


def _low_precision_errors(backend, protocol, n=64):
    """(error of the backend, error of the dense reference) under CPU bf16 autocast, both vs fp64,
    for the output and the gradients of v and x."""
    torch.manual_seed(0)
    block = Paramixer(8, protocol=protocol, max_len=n, backend=backend).eval()
    gen = torch.Generator().manual_seed(2)
    v, x = torch.randn(2, n, 8, generator=gen), torch.randn(2, n, 8, generator=gen)
    g = torch.randn(2, n, 8, generator=gen)

    def run(fn, dtype, autocast):
        vv, xx = v.to(dtype).requires_grad_(), x.to(dtype).requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = fn(vv, xx)
        grads = torch.autograd.grad(out, (vv, xx), g.to(out.dtype))
        return [t.double() for t in (out, *grads)]

    want = run(lambda a, b: R.block_forward(copy.deepcopy(block).double(), a, b), torch.float64, False)
    got = run(lambda a, b: block(a, x=b), torch.float32, True)
    dense = run(lambda a, b: R.block_forward(block, a, b), torch.float32, True)
    err = lambda ts: [((a - b).abs().max() / b.abs().max()).item() for a, b in zip(ts, want)]  # noqa: E731
    return err(got), err(dense)


@pytest.mark.parametrize("backend", ["message"] + FAST)
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_bf16_autocast_is_as_accurate_as_dense(backend, protocol):
    """Flash-attention style bound: under autocast every backend runs, and its error vs fp64 is at most
    2x that of plain dense PyTorch computed in the same low dtype (+ a small epsilon)."""
    got, dense = _low_precision_errors(backend, protocol)
    assert max(dense) > 1e-4  # the low dtype really was used (the bound is not vacuous)
    for g, d in zip(got, dense):
        assert g <= 2 * d + 1e-3, (got, dense)
