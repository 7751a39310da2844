import logging

import pytest
import torch

from sparsemix import Paramixer
from sparsemix import reference as R

SIZES = [1, 2, 3, 13, 16, 1000, 1024]
PROTOCOLS = ["chord", "cdil"]


def block(protocol="chord", max_len=64, channels=4, backend="message", seed=0, **kw):
    torch.manual_seed(seed)
    return Paramixer(channels, protocol=protocol, max_len=max_len, hidden_channels=5, backend=backend,
                     **kw).double().eval()


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n", SIZES)
def test_block_matches_dense_reference_fp64(protocol, n):
    b = block(protocol, max_len=n)
    v = torch.randn(2, n, 4, dtype=torch.float64)
    assert rel_err(b(v), R.block_forward(b, v)) <= 1e-10


@pytest.mark.parametrize("backend", ["message", "fused"])
def test_block_gradcheck(backend):
    b = block("cdil", max_len=6, channels=3, backend=backend)
    v = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, x: b(v, x=x), (v, x))


def test_structure_attributes():
    b = block("chord", max_len=1000)
    assert b.num_factors == 10 and len(b.factors) == 10 and b.num_slots == 11
    assert b.topology_for(1000).num_factors == 10
    assert b.topology_for(5).num_factors == 10  # shorter sequences: same M, offsets wrap mod 5
    assert Paramixer(4, num_factors=3).num_factors == 3
    assert Paramixer(4, max_len=1).num_factors == 1


def test_factors_read_x_not_running_values():
    b = block("chord", max_len=16)
    v = torch.randn(16, 4, dtype=torch.float64)
    x = torch.randn(16, 4, dtype=torch.float64)
    out, weights = b(v, x=x, return_weights=True)
    for factor, w in zip(b.factors, weights):
        assert torch.allclose(w, factor.mlp(x), rtol=1e-12, atol=0)
    assert rel_err(out, R.block_forward(b, v, x=x)) <= 1e-10


@pytest.mark.parametrize("backend", ["message", "fused"])
def test_return_weights_reproduce_output(backend):
    b = block("cdil", max_len=16, backend=backend)
    v = torch.randn(16, 4, dtype=torch.float64)
    out, weights = b(v, return_weights=True)
    assert len(weights) == b.num_factors and weights[0].shape == (16, b.num_slots)
    topo = b.topology_for(16)
    V = b.value(v)
    for m, w in enumerate(weights):
        V = V + R.factor(topo, m, w, V)
    assert rel_err(out, V) <= 1e-10


@pytest.mark.parametrize("backend", ["message", "fused"])
def test_static_batch_equals_loop_and_reference(backend):
    b = block("chord", max_len=13, backend=backend)
    v = torch.randn(3, 13, 4, dtype=torch.float64)
    looped = torch.stack([b(vb) for vb in v])
    assert torch.allclose(b(v), looped, rtol=1e-12, atol=1e-13)
    # not only self-consistent: each example equals the dense product computed on its own
    assert rel_err(looped, torch.stack([R.block_forward(b, vb) for vb in v])) <= 1e-10


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("backend", ["message", "fused"])
def test_variable_length_equals_alone_in_any_order(protocol, backend):
    lengths = [1, 5, 13, 64, 1000]
    b = block(protocol, max_len=1000, backend=backend)
    seqs = [torch.randn(n, 4, dtype=torch.float64) for n in lengths]
    alone = [b(s) for s in seqs]
    for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
        v = torch.cat([seqs[i] for i in order])
        batch = torch.cat([torch.full((lengths[i],), pos) for pos, i in enumerate(order)])
        out = b(v, batch=batch)
        for pos, i in enumerate(order):
            assert torch.allclose(out[batch == pos], alone[i], rtol=1e-12, atol=1e-12)
    for i in (0, 2, 3):  # and "alone" itself is the dense reference, not just the layer agreeing with itself
        assert rel_err(alone[i], R.block_forward(b, seqs[i])) <= 1e-10


def test_variable_length_matches_dense_reference():
    b = block("cdil", max_len=40)
    lengths = [3, 40, 1, 17]
    v = torch.randn(sum(lengths), 4, dtype=torch.float64)
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor(lengths))
    assert rel_err(b(v, batch=batch), R.block_forward(b, v, batch=batch)) <= 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["message", "fused"])
def test_torch_compile_fullgraph_no_breaks(backend):
    torch._dynamo.reset()
    b = block("chord", max_len=32, backend=backend).float()
    v = torch.randn(2, 32, 4)
    b(v)  # topologies are built (and cached per length and device) on the first call, outside any graph
    explanation = torch._dynamo.explain(b)(v)
    assert explanation.graph_break_count == 0
    compiled = torch.compile(b, fullgraph=True)
    assert torch.allclose(compiled(v), b(v), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n", [16, 256, 4096, pytest.param(65536, marks=pytest.mark.slow)])
def test_output_rms_stable_at_init(protocol, n):
    torch.manual_seed(n)
    b = Paramixer(16, protocol=protocol, max_len=n)
    v = torch.randn(1, n, 16)
    with torch.no_grad():
        ratio = (b(v).pow(2).mean().sqrt() / v.pow(2).mean().sqrt()).item()
    assert 0.25 <= ratio <= 4.0


@pytest.mark.slow
def test_paper_init_grows_with_depth():
    # Why the stable init exists: PyTorch's default init (the official code) drifts with M.
    torch.manual_seed(0)
    ratios = []
    for n in (16, 65536):
        b = Paramixer(16, protocol="chord", max_len=n, init="paper")
        v = torch.randn(1, n, 16)
        with torch.no_grad():
            ratios.append((b(v).pow(2).mean().sqrt() / v.pow(2).mean().sqrt()).item())
    assert ratios[1] > 4.0 > ratios[0]


def test_dropout_only_in_training():
    b = block("chord", max_len=16, dropout=0.5)
    v = torch.randn(16, 4, dtype=torch.float64)
    assert torch.equal(b(v), b(v))
    b.train()
    assert not torch.equal(b(v), b(v))


def test_auto_backend_is_recorded_and_logged(caplog):
    import sparsemix.nn.backends as B
    from sparsemix import kernels

    want = "native" if kernels.HAS_NATIVE else "fused"
    B._logged_auto = False
    with caplog.at_level(logging.INFO, logger=B.__name__):
        b = Paramixer(4, max_len=8)
        Paramixer(4, max_len=8)
    assert b.active_backend == want
    assert all(f.active_backend == want for f in b.factors)
    assert caplog.text.count(f"uses {want!r}") == 1  # resolved per layer, logged once
    assert f"active: {want!r}" in repr(b)


def test_checkpointed_weights_same_gradients():
    v = torch.randn(2, 32, 4, dtype=torch.float64)
    grads = []
    for ckpt in (False, True):
        b = block("chord", max_len=32, backend="fused", checkpoint_weights=ckpt)
        b(v).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in b.parameters()]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-12, atol=1e-14)


def test_bad_input_is_rejected_with_names():
    b = block("chord", max_len=16, check_inputs=True)
    v = torch.randn(16, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"v must be \[N, C\] or \[B, N, C\]"):
        b(torch.randn(2, 2, 16, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"v must have shape \[\.\.\., N, 4\]"):
        b(torch.randn(16, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x must have the same leading shape"):
        b(v, x=torch.randn(15, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="exceeds max_len = 16"):
        b(torch.randn(17, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch must be sorted"):
        b(v, batch=torch.tensor([0] * 8 + [1] * 4 + [0] * 4))
    with pytest.raises(ValueError, match="batch must be a \\[T\\] vector with T = 16"):
        b(v, batch=torch.zeros(15, dtype=torch.long))
    with pytest.raises(ValueError, match="with a batch vector, v must be \\[T, C\\]"):
        b(v[None], batch=torch.zeros(16, dtype=torch.long))
    bad = v.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="v holds NaN or inf"):
        b(bad)
    with pytest.raises(ValueError, match="backend must be one of"):
        Paramixer(4, max_len=8, backend="cuda")
    with pytest.raises(ValueError, match="protocol must be one of"):
        Paramixer(4, max_len=8, protocol="butterfly")
    with pytest.raises(ValueError, match="needs max_len or num_factors"):
        Paramixer(4)


@pytest.mark.parametrize("backend", ["message", "fused", "compiled"])
def test_backend_passes_through_to_every_factor(backend):
    b = block("chord", max_len=8, backend=backend)
    assert b.active_backend == backend
    assert [f.active_backend for f in b.factors] == [backend] * b.num_factors


def test_unbuilt_native_backend_names_what_to_build(monkeypatch):
    from sparsemix import kernels

    # as in a source checkout that was never built (CI builds the op: the flag is what is read)
    monkeypatch.setattr(kernels, "HAS_NATIVE", False)
    monkeypatch.setattr(kernels, "NATIVE_ERROR", "sparsemix._C could not be loaded")
    with pytest.raises(RuntimeError, match="backend='native' needs the C\\+\\+ op"):
        Paramixer(4, max_len=8, backend="native")
    assert Paramixer(4, max_len=8).active_backend == "fused"  # auto falls back, and says so


def test_variable_length_tables_are_cached_per_lengths():
    b = block("cdil", max_len=40, backend="fused")
    lengths = [3, 40, 1, 17]
    v = torch.randn(sum(lengths), 4, dtype=torch.float64)
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor(lengths))
    first = b(v, batch=batch)
    topo = b.batched_topology_for(tuple(lengths), v.device)
    tables = [topo.source_index(m) for m in range(b.num_factors)]
    second = b(v, batch=batch)
    assert b.batched_topology_for(tuple(lengths), v.device) is topo  # same object: nothing rebuilt
    assert all(topo.source_index(m) is t for m, t in enumerate(tables))
    assert torch.equal(first, second)
    assert rel_err(first, R.block_forward(b, v, batch=batch)) <= 1e-10
    b(v[:20], batch=batch[:20])  # another tuple of lengths gets its own entry
    assert len(b._batched) == 2


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_bad_channels_are_rejected(bad):
    with pytest.raises(ValueError, match="channels must be an integer >= 1"):
        Paramixer(bad, max_len=8)
    with pytest.raises(ValueError, match="hidden_channels must be an integer >= 1"):
        Paramixer(4, max_len=8, hidden_channels=bad)


def test_numpy_input_is_rejected():
    np = pytest.importorskip("numpy")
    b = block("chord", max_len=8)
    with pytest.raises(TypeError, match="v: expected a torch.Tensor, got numpy.ndarray"):
        b(np.zeros((8, 4)))
    with pytest.raises(TypeError, match="batch: expected a torch.Tensor"):
        b(torch.zeros(8, 4, dtype=torch.float64), batch=np.zeros(8, dtype=np.int64))
