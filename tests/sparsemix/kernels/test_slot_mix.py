"""fused_slot_mix equals the naive gather and the dense factor, forward and backward."""
import pytest
import torch

import topologies
from sparsemix.kernels import fused_slot_mix
from sparsemix.kernels import slot_mix

SIZES = [1, 2, 3, 13, 1000, 1024]


def naive(v, w, src):
    return (w[..., None] * v[..., src, :]).sum(-2)  # [..., N, K, C] -> [..., N, C]


def run(fn, v, w, g):
    v = v.detach().requires_grad_()
    w = w.detach().requires_grad_()
    out = fn(v, w)
    (gv, gw) = torch.autograd.grad(out, (v, w), g)
    return out.detach(), gv, gw


def assert_close(got, want, dtype):
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for a, b in zip(got, want):
        assert a.shape == b.shape
        scale = b.abs().max().clamp_min(1e-30)
        assert ((a - b).abs().max() / scale) <= tol


@pytest.fixture(params=[None, 64], ids=["chunk-default", "chunk-64"])
def chunk(request, monkeypatch):
    """Also run with tiny chunks so shift runs straddle chunk borders."""
    if request.param is not None:
        monkeypatch.setattr(slot_mix, "CHUNK_ELEMENTS", request.param)
    return request.param


@pytest.mark.parametrize("protocol", ["chord", "cdil"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("use_shifts", [True, False], ids=["slices", "gather"])
def test_matches_naive_fp64(protocol, n, use_shifts, chunk):
    gen = torch.Generator().manual_seed(n)
    topo = topologies.get(protocol, n)
    m = topo.num_factors - 1
    src, inv = topo.source_index(m), topo.inverse_index(m)
    shifts = topo.shifts(m) if use_shifts else None
    v = torch.randn(2, 3, n, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(2, 3, n, topo.num_slots, generator=gen, dtype=torch.float64)
    g = torch.randn(2, 3, n, 5, generator=gen, dtype=torch.float64)
    got = run(lambda v, w: fused_slot_mix(v, w, src, inv, shifts), v, w, g)
    want = run(lambda v, w: naive(v, w, src), v, w, g)
    assert_close(got, want, torch.float64)


@pytest.mark.parametrize("n", [1, 13, 1024])
@pytest.mark.parametrize("use_shifts", [True, False], ids=["slices", "gather"])
def test_shared_weights_and_unbatched(n, use_shifts):
    gen = torch.Generator().manual_seed(1)
    topo = topologies.chord(n)
    src, inv, shifts = topo.source_index(0), topo.inverse_index(0), topo.shifts(0)
    shifts = shifts if use_shifts else None
    w = torch.randn(n, topo.num_slots, generator=gen, dtype=torch.float64)
    for shape in [(4, n, 6), (n, 6)]:  # batch shares w / no batch dims at all
        v = torch.randn(*shape, generator=gen, dtype=torch.float64)
        g = torch.randn(*shape, generator=gen, dtype=torch.float64)
        got = run(lambda v, w: fused_slot_mix(v, w, src, inv, shifts), v, w, g)
        want = run(lambda v, w: naive(v, w, src), v, w, g)
        assert_close(got, want, torch.float64)


@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_matches_dense_factor_fp32(protocol):
    gen = torch.Generator().manual_seed(0)
    topo = topologies.get(protocol, 1000)
    for m in range(topo.num_factors):
        w = torch.randn(1000, topo.num_slots, generator=gen)
        v = torch.randn(1000, 8, generator=gen)
        out = fused_slot_mix(v, w, topo.source_index(m), topo.inverse_index(m), topo.shifts(m))
        dense = topo.dense(m, w.double()) @ v.double()
        assert ((out.double() - dense).abs().max() / dense.abs().max()) <= 1e-5


@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_variable_length_batch(protocol):
    """Global src/inv of a BatchedTopology (no shifts): each sequence mixes only with itself."""
    gen = torch.Generator().manual_seed(2)
    lengths = [1, 2, 3, 13, 40]
    topos = [topologies.get(protocol, n, num_factors=6) for n in lengths]
    bt = topologies.batch(topos)
    t, k = bt.num_nodes, bt.num_slots
    v = torch.randn(t, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(t, k, generator=gen, dtype=torch.float64)
    g = torch.randn(t, 4, generator=gen, dtype=torch.float64)
    for m in range(bt.num_factors):
        src, inv = bt.source_index(m), bt.inverse_index(m)
        got = run(lambda v, w: fused_slot_mix(v, w, src, inv), v, w, g)
        want = run(lambda v, w: naive(v, w, src), v, w, g)
        assert_close(got, want, torch.float64)
        # per sequence, alone, with its own shifts
        for b, topo in enumerate(topos):
            lo, hi = int(bt.ptr[b]), int(bt.ptr[b + 1])
            alone = fused_slot_mix(v[lo:hi], w[lo:hi], topo.source_index(m), topo.inverse_index(m),
                                   topo.shifts(m))
            torch.testing.assert_close(alone, got[0][lo:hi], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("use_shifts", [True, False], ids=["slices", "gather"])
def test_bitwise_deterministic(use_shifts):
    topo = topologies.cdil(1000)
    src, inv = topo.source_index(3), topo.inverse_index(3)
    shifts = topo.shifts(3) if use_shifts else None
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(2, 1000, 16, generator=gen)
    w = torch.randn(1000, topo.num_slots, generator=gen)  # shared: grad_w sums over the batch
    g = torch.randn(2, 1000, 16, generator=gen)
    first = run(lambda v, w: fused_slot_mix(v, w, src, inv, shifts), v, w, g)
    second = run(lambda v, w: fused_slot_mix(v, w, src, inv, shifts), v, w, g)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_bfloat16_accumulates_in_fp32():
    """bf16 in, bf16 out, but the K products are summed in fp32: one rounding, at the end."""
    topo = topologies.chord(64)
    v = torch.randn(2, 64, 8, dtype=torch.bfloat16)
    w = torch.randn(2, 64, topo.num_slots, dtype=torch.bfloat16)
    out = fused_slot_mix(v, w, topo.source_index(0), topo.inverse_index(0), topo.shifts(0))
    want = naive(v.float(), w.float(), topo.source_index(0))
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, want.bfloat16()) or torch.allclose(out.float(), want, rtol=2 ** -8, atol=1e-6)


def test_mixed_dtypes_compute_in_the_wider():
    """Under autocast the weight MLP may return bf16 next to fp32 values: promoted, as a matmul would."""
    topo = topologies.chord(16)
    v = torch.randn(2, 16, 3, requires_grad=True)
    w = torch.randn(2, 16, topo.num_slots).bfloat16().requires_grad_()
    out = fused_slot_mix(v, w, topo.source_index(1), topo.inverse_index(1), topo.shifts(1))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, naive(v, w.float(), topo.source_index(1)))
    gv, gw = torch.autograd.grad(out.sum(), (v, w))
    assert (gv.dtype, gw.dtype) == (torch.float32, torch.bfloat16)


def test_saves_only_v_and_w():
    """No [.., N*K, C] tensor is kept for backward: the graph holds v, w and the index tables only."""
    topo = topologies.chord(256)
    v = torch.randn(2, 256, 8, requires_grad=True)
    w = torch.randn(2, 256, topo.num_slots, requires_grad=True)
    out = fused_slot_mix(v, w, topo.source_index(0), topo.inverse_index(0), topo.shifts(0))
    saved = out.grad_fn.saved_tensors
    assert sum(s.numel() for s in saved) == v.numel() + w.numel() + 2 * 256 * topo.num_slots


@pytest.mark.parametrize("kwargs, match", [
    (dict(v=torch.randn(5)), "v must be"),
    (dict(w=torch.randn(6, 3)), "w must end in"),
    (dict(w=torch.randn(3, 5, 3)), "leading dims"),
    (dict(src=torch.zeros(4, 3, dtype=torch.long)), "src must be"),
    (dict(shifts=(0, 1)), "shifts must hold"),
    (dict(shifts=(0, 1, 5)), r"shifts must be ints in \[0"),
])
def test_bad_input(kwargs, match):
    topo = topologies.cdil(5, radius=1)
    args = dict(v=torch.randn(2, 5, 4), w=torch.randn(2, 5, 3), src=topo.source_index(0),
                inv=topo.inverse_index(0), shifts=topo.shifts(0))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        fused_slot_mix(**args)


@pytest.mark.parametrize("use_shifts", [True, False], ids=["slices", "gather"])
def test_any_circulant_slot_order(use_shifts, chunk):
    """Slot 0 need not be the identity (its run then wraps inside a chunk)."""
    n, shifts = 13, (7, 0, 12, 7)  # repeated and wrapping shifts
    gen = torch.Generator().manual_seed(4)
    src = (torch.arange(n)[:, None] + torch.tensor(shifts)) % n
    inv = (torch.arange(n)[:, None] - torch.tensor(shifts)) % n
    v = torch.randn(3, n, 2, generator=gen, dtype=torch.float64)
    w = torch.randn(3, n, 4, generator=gen, dtype=torch.float64)
    g = torch.randn(3, n, 2, generator=gen, dtype=torch.float64)
    got = run(lambda v, w: fused_slot_mix(v, w, src, inv, shifts if use_shifts else None), v, w, g)
    want = run(lambda v, w: naive(v, w, src), v, w, g)
    assert_close(got, want, torch.float64)
