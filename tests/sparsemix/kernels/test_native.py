"""The native C++ slot mix equals the eager fused kernel and the dense reference, forward and backward.

These tests FAIL when ``sparsemix._C`` is not built (a broken install must not pass quietly);
set ``SPARSEMIX_ALLOW_NO_NATIVE=1`` to skip them instead on a machine without a compiler.
"""
import os
import subprocess
import sys

import pytest
import torch

import topologies
from sparsemix import reference
from sparsemix.kernels import fused_slot_mix, native
from sparsemix.kernels.native import native_slot_mix

SIZES = [1, 2, 3, 13, 16, 1000, 1024]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(autouse=True)
def needs_native():
    if native.HAS_NATIVE:
        return
    if os.environ.get("SPARSEMIX_ALLOW_NO_NATIVE") == "1":
        pytest.skip(f"SPARSEMIX_ALLOW_NO_NATIVE=1 and {native.NATIVE_ERROR}")
    pytest.fail(f"the native kernel is not built: {native.NATIVE_ERROR}")


def run(fn, v, w, g):
    """(out, grad_v, grad_w) of ``fn(v, w)`` for upstream gradient ``g``."""
    v = v.detach().requires_grad_()
    w = w.detach().requires_grad_()
    out = fn(v, w)
    grad_v, grad_w = torch.autograd.grad(out, (v, w), g)
    return out.detach(), grad_v, grad_w


def assert_close(got, want, tol):
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        scale = b.abs().max().clamp_min(1e-30)
        assert ((a - b).abs().max() / scale) <= tol


def data(shape_v, shape_w, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(*shape_v, generator=gen, dtype=torch.float64).to(dtype)
    w = torch.randn(*shape_w, generator=gen, dtype=torch.float64).to(dtype)
    g = torch.randn(*shape_v, generator=gen, dtype=torch.float64).to(dtype)
    return v, w, g


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
@pytest.mark.parametrize("n", SIZES)
def test_matches_fused_and_dense(dtype, protocol, n):
    topo = topologies.get(protocol, n)
    m = topo.num_factors - 1  # the widest offsets
    src, inv = topo.source_index(m), topo.inverse_index(m)
    v, w, g = data((2, n, 5), (2, n, topo.num_slots), dtype, seed=n)
    got = run(lambda v, w: native_slot_mix(v, w, src, inv), v, w, g)
    fused = run(lambda v, w: fused_slot_mix(v, w, src, inv, topo.shifts(m)), v, w, g)
    assert_close(got, fused, TOL[dtype])
    dense = run(lambda v, w: reference.factor(topo, m, w, v), v.double(), w.double(), g.double())
    assert_close([t.double() for t in got], dense, TOL[dtype])


# Every path of the channel loop (4 vectors, 1 vector, a half vector, single channels) for float and
# double, under AVX2 (8 / 4 lanes) and SSE2 (4 / 2 lanes), and for the weight gradient's 4-source
# blocks (K = 11 = 2 x 4 + 3).
CHANNELS = [1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 20, 31, 32, 33, 36, 40, 64, 67]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("channels", CHANNELS)
def test_every_channel_count_matches_dense(dtype, channels):
    topo = topologies.chord(64)  # K = 7
    m = topo.num_factors - 1
    src, inv = topo.source_index(m), topo.inverse_index(m)
    for shape_w in ((3, 64, topo.num_slots), (64, topo.num_slots)):  # per batch element, shared
        v, w, g = data((3, 64, channels), shape_w, dtype, seed=channels)
        got = run(lambda v, w: native_slot_mix(v, w, src, inv), v, w, g)
        dense = run(lambda v, w: reference.factor(topo, m, w, v), v.double(), w.double(), g.double())
        assert_close([t.double() for t in got], dense, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16],
                         ids=["fp64", "fp32", "bf16"])
@pytest.mark.parametrize("shape_w", [(3, 100, 8), (100, 8)], ids=["w-per-batch", "w-shared"])
def test_residual_is_identity_plus_factor(dtype, shape_w):
    """residual=True: v + W v in the kernel's pass, and v's gradient g + W^T g."""
    topo = topologies.chord(100)  # K = 8
    src, inv = topo.source_index(4), topo.inverse_index(4)
    v, w, g = data((3, 100, 36), shape_w, dtype, seed=5)
    got = run(lambda v, w: native_slot_mix(v, w, src, inv, residual=True), v, w, g)
    want = run(lambda v, w: v + native_slot_mix(v, w, src, inv), v, w, g)
    tol = 1e-2 if dtype == torch.bfloat16 else TOL[dtype]  # bf16: one rounding of the sum fewer
    assert_close([t.float() for t in got], [t.float() for t in want], tol)
    assert got[0].dtype == dtype


NATIVE_ISA_SCRIPT = """
import sys, torch, topologies
from sparsemix.kernels.native import native_isa, native_slot_mix
topo = topologies.chord(100)
src, inv = topo.source_index(6), topo.inverse_index(6)
gen = torch.Generator().manual_seed(0)
for dtype in (torch.float32, torch.float64):
    for channels in (5, 36, 67):
        v = torch.randn(2, 100, channels, generator=gen, dtype=dtype, requires_grad=True)
        w = torch.randn(2, 100, topo.num_slots, generator=gen, dtype=dtype, requires_grad=True)
        out = native_slot_mix(v, w, src, inv)
        out.backward(torch.randn(out.shape, generator=gen, dtype=dtype))
        torch.save((out.detach(), v.grad, w.grad), f"{sys.argv[1]}/{dtype}-{channels}.pt")
print(native_isa())
"""


def test_baseline_and_avx2_builds_agree(tmp_path):
    """The loops are compiled for SSE2 and for AVX2 + FMA; SPARSEMIX_NATIVE_ISA=baseline forces the
    first. Both give the same results up to rounding (FMA rounds once where SSE2 rounds twice)."""
    isas = {}
    for isa in ("baseline", "auto"):
        out = tmp_path / isa
        out.mkdir()
        env = {**os.environ, "SPARSEMIX_NATIVE_ISA": isa}
        done = subprocess.run([sys.executable, "-c", NATIVE_ISA_SCRIPT, str(out)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        isas[isa] = done.stdout.strip()
    assert isas["baseline"] == "baseline"
    assert isas["auto"] in ("baseline", "avx2+fma")
    files = sorted(p.name for p in (tmp_path / "baseline").iterdir())
    assert len(files) == 6
    for name in files:
        base, auto = torch.load(tmp_path / "baseline" / name), torch.load(tmp_path / "auto" / name)
        assert_close(auto, base, TOL[base[0].dtype])


@pytest.mark.parametrize("n", [1, 13, 1024])
@pytest.mark.parametrize("w_shape", ["NK", "1NK"])
def test_shared_weights(n, w_shape):
    """w [N, K] or [1, N, K] serves the whole batch; its gradient sums over the batch."""
    topo = topologies.chord(n)
    src, inv = topo.source_index(0), topo.inverse_index(0)
    shape_w = (n, topo.num_slots) if w_shape == "NK" else (1, n, topo.num_slots)
    v, w, g = data((4, n, 6), shape_w, torch.float64, seed=1)
    got = run(lambda v, w: native_slot_mix(v, w, src, inv), v, w, g)
    want = run(lambda v, w: fused_slot_mix(v, w.reshape(n, -1), src, inv), v, w, g)
    assert_close(got, [want[0], want[1], want[2].reshape(shape_w)], 1e-10)
    per_batch = run(lambda v, w: native_slot_mix(v, w.expand(4, -1, -1), src, inv),
                    v, w.reshape(1, n, -1), g)  # the same weights given per batch element
    assert_close(got[:2], per_batch[:2], 1e-10)


def test_unbatched_and_broadcast_v():
    topo = topologies.cdil(13)
    src, inv = topo.source_index(1), topo.inverse_index(1)
    v, w, g = data((13, 3), (13, topo.num_slots), torch.float64, seed=2)
    got = run(lambda v, w: native_slot_mix(v, w, src, inv), v, w, g)
    want = run(lambda v, w: fused_slot_mix(v, w, src, inv), v, w, g)
    assert got[0].shape == (13, 3)
    assert_close(got, want, 1e-10)
    # one sequence [N, C] with per-example weights [1, N, K]
    out = native_slot_mix(v, w[None], src, inv)
    assert out.shape == (13, 3) and torch.allclose(out, want[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_variable_length_batch(dtype, protocol):
    """Global tables of a BatchedTopology: each sequence mixes only with itself, as if alone."""
    lengths = [1, 2, 3, 13, 16, 40]
    topos = [topologies.get(protocol, n, num_factors=6) for n in lengths]
    bt = topologies.batch(topos)
    t = bt.num_nodes
    v, w, g = data((t, 4), (t, bt.num_slots), dtype, seed=3)
    for m in range(bt.num_factors):
        src, inv = bt.source_index(m), bt.inverse_index(m)
        got = run(lambda v, w: native_slot_mix(v, w, src, inv), v, w, g)
        assert_close(got, run(lambda v, w: fused_slot_mix(v, w, src, inv), v, w, g), TOL[dtype])
        for b, topo in enumerate(topos):
            lo, hi = int(bt.ptr[b]), int(bt.ptr[b + 1])
            dense = run(lambda v, w: reference.factor(topo, m, w, v),
                        v[lo:hi].double(), w[lo:hi].double(), g[lo:hi].double())
            assert_close([x[lo:hi].double() for x in got], dense, TOL[dtype])


@pytest.mark.parametrize("shared", [False, True], ids=["w-per-batch", "w-shared"])
def test_gradcheck_fp64(shared):
    topo = topologies.cdil(7, radius=2)
    src, inv = topo.source_index(1), topo.inverse_index(1)
    v, w, _ = data((2, 7, 3), (7, topo.num_slots) if shared else (2, 7, topo.num_slots),
                   torch.float64, seed=4)
    assert torch.autograd.gradcheck(lambda v, w: native_slot_mix(v, w, src, inv),
                                    (v.requires_grad_(), w.requires_grad_()))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_types_close_to_fp32(dtype):
    """Half inputs accumulate in float: the error is the rounding of inputs and output only."""
    topo = topologies.chord(1000)
    src, inv = topo.source_index(2), topo.inverse_index(2)
    v, w, g = data((2, 1000, 16), (2, 1000, topo.num_slots), torch.float32, seed=5)
    half = run(lambda v, w: native_slot_mix(v, w, src, inv), v.to(dtype), w.to(dtype), g.to(dtype))
    full = run(lambda v, w: native_slot_mix(v, w, src, inv),
               v.to(dtype).float(), w.to(dtype).float(), g.to(dtype).float())  # same rounded inputs
    for a, b in zip(half, full):
        assert a.dtype == dtype
        torch.testing.assert_close(a.float(), b, rtol=2e-2, atol=2e-2 * b.abs().max().item())


def test_autocast_computes_in_the_wider_dtype_like_every_backend():
    # one dtype rule for every backend (kernels.mix_dtype): the wider input dtype, autocast or not
    topo = topologies.chord(64)
    src, inv = topo.source_index(0), topo.inverse_index(0)
    v, w, _ = data((2, 64, 8), (2, 64, topo.num_slots), torch.float32, seed=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = native_slot_mix(v, w, src, inv)
        mixed_in = native_slot_mix(v, w.bfloat16(), src, inv)  # the MLP's bf16 weights, fp32 v
        eager = fused_slot_mix(v, w.bfloat16(), src, inv)
    assert out.dtype == mixed_in.dtype == eager.dtype == torch.float32
    mixed = native_slot_mix(v.double(), w, src, inv)  # outside autocast: promoted
    assert mixed.dtype == torch.float64


def test_bitwise_deterministic_across_threads():
    """Each output row is summed by one thread in a fixed order: thread count cannot change bits."""
    topo = topologies.cdil(1000)
    src, inv = topo.source_index(3), topo.inverse_index(3)
    v, w, g = data((3, 1000, 16), (1000, topo.num_slots), torch.float32, seed=7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(lambda v, w: native_slot_mix(v, w, src, inv), v, w, g)
        torch.set_num_threads(2)
        two = run(lambda v, w: native_slot_mix(v, w, src, inv), v, w, g)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_backward_through_registered_autograd():
    topo = topologies.chord(256)
    v = torch.randn(2, 256, 8, requires_grad=True)
    w = torch.randn(2, 256, topo.num_slots, requires_grad=True)
    out = native_slot_mix(v, w, topo.source_index(0), topo.inverse_index(0))
    out.sum().backward()  # runs through the registered autograd formula
    assert v.grad.shape == v.shape and w.grad.shape == w.shape


@pytest.mark.parametrize("shared", [False, True], ids=["w-per-batch", "w-shared"])
def test_opcheck(shared):
    topo = topologies.chord(13)
    src, inv = topo.source_index(1), topo.inverse_index(1)
    v, w, _ = data((3, 13, 4), (1 if shared else 3, 13, topo.num_slots), torch.float64, seed=8)
    torch.library.opcheck(torch.ops.sparsemix.slot_mix.default,
                          (v.requires_grad_(), w.requires_grad_(), src, inv))
    g = torch.randn_like(v)
    torch.library.opcheck(torch.ops.sparsemix.slot_mix_grad_v.default, (g, w.detach(), inv))
    torch.library.opcheck(torch.ops.sparsemix.slot_mix_grad_w.default,
                          (g, v.detach(), src, w.size(0)))


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_torch_compile_fullgraph(backend):
    topo = topologies.cdil(40)
    src, inv = topo.source_index(2), topo.inverse_index(2)
    v, w, g = data((2, 40, 8), (2, 40, topo.num_slots), torch.float32, seed=9)

    def block(v, w):  # the op between ordinary ops, as in a layer
        return torch.relu(native_slot_mix(v * 2, w, src, inv)) + v

    compiled = torch.compile(block, fullgraph=True, backend=backend)
    assert_close(run(compiled, v, w, g), run(block, v, w, g), 1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(v=torch.randn(5)), "v must be"),
    (dict(w=torch.randn(6, 3)), "w must end in"),
    (dict(w=torch.randn(3, 5, 3)), "w's batch must be"),
    (dict(src=torch.zeros(4, 3, dtype=torch.long)), "src must be"),
    (dict(inv=torch.zeros(5, 2, dtype=torch.long)), "inv must have"),
    (dict(src=torch.zeros(5, 3, dtype=torch.int32)), "torch.long"),
    (dict(v=torch.zeros(2, 5, 4, dtype=torch.int64)), "v must be one of"),
])
def test_bad_input(kwargs, match):
    topo = topologies.cdil(5, radius=1)
    args = dict(v=torch.randn(2, 5, 4), w=torch.randn(2, 5, 3), src=topo.source_index(0),
                inv=topo.inverse_index(0))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        native_slot_mix(**args)


def test_out_of_range_index_raises():
    """The C++ op checks its table: a bad index is an error, never an out-of-bounds read."""
    src = torch.tensor([[0, 1], [1, 5]])
    with pytest.raises(RuntimeError, match="outside"):
        torch.ops.sparsemix.slot_mix(torch.randn(1, 2, 3), torch.randn(1, 2, 2), src, src)
