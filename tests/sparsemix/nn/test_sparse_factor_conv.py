import pytest
import torch
from torch_geometric import EdgeIndex

import topologies
from sparsemix import SparseFactorConv, kernels
from sparsemix import reference as R

SIZES = [1, 2, 3, 13, 16, 1000, 1024]
PROTOCOLS = ["chord", "cdil"]


def make(protocol, n, channels=4, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    topo = topologies.get(protocol, n)
    conv = SparseFactorConv(channels, topo.num_slots, hidden_channels=6).to(dtype)
    return topo, conv


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n", SIZES)
def test_matches_dense_reference_fp64(protocol, n):
    topo, conv = make(protocol, n)
    m = topo.num_factors - 1  # the last factor has the most duplicate columns in CDIL
    v = torch.randn(2, n, 4, dtype=torch.float64)
    out, weights = conv(v, topo.edge_index(m), topo.slot(m), return_weights=True)
    expected = R.factor(topo, m, conv.mlp(v), v)
    assert weights.shape == (2, n, topo.num_slots)
    assert torch.allclose(out, expected, rtol=1e-10, atol=1e-12 * expected.abs().max().item())
    # the returned weights are exactly the values used
    assert torch.allclose(out, R.factor(topo, m, weights, v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_matches_dense_reference_fp32(protocol):
    topo, conv = make(protocol, 13, dtype=torch.float32)
    v = torch.randn(3, 13, 4)
    out = conv(v, topo.edge_index(0), topo.slot(0))
    expected = R.factor(topo, 0, conv.mlp(v), v)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_gradcheck(protocol):
    topo, conv = make(protocol, 5, channels=3)
    v = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    m = topo.num_factors - 1
    assert torch.autograd.gradcheck(lambda v, x: conv(v, topo.edge_index(m), topo.slot(m), x=x), (v, x))


def test_x_defaults_to_v_and_can_differ():
    topo, conv = make("chord", 16)
    v = torch.randn(16, 4, dtype=torch.float64)
    ei, slot = topo.edge_index(1), topo.slot(1)
    assert torch.equal(conv(v, ei, slot), conv(v, ei, slot, x=v))
    assert not torch.allclose(conv(v, ei, slot), conv(v, ei, slot, x=torch.randn_like(v)))


def test_static_batch_equals_loop():
    topo, conv = make("cdil", 13)
    v = torch.randn(3, 13, 4, dtype=torch.float64)
    ei, slot = topo.edge_index(2), topo.slot(2)
    batched = conv(v, ei, slot)
    looped = torch.stack([conv(vb, ei, slot) for vb in v])
    assert torch.allclose(batched, looped, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_edge_permutation_invariance(protocol):
    topo, conv = make(protocol, 16)
    v = torch.randn(16, 4, dtype=torch.float64)
    m = topo.num_factors - 1
    ei, slot = topo.edge_index(m), topo.slot(m)
    perm = torch.randperm(ei.size(1))
    out = conv(v, ei, slot)
    permuted = conv(v, ei[:, perm], slot[perm])
    assert torch.allclose(out, permuted, rtol=1e-12, atol=1e-14)
    # permuting edges WITHOUT their slots must change the result (the test can fail)
    assert not torch.allclose(out, conv(v, ei[:, perm], slot))


def test_accepts_pyg_edge_index():
    topo, conv = make("chord", 13)
    v = torch.randn(13, 4, dtype=torch.float64)
    ei = topo.edge_index(0)
    wrapped = EdgeIndex(ei, sparse_size=(13, 13))
    assert torch.allclose(conv(v, wrapped, topo.slot(0)), conv(v, ei, topo.slot(0)), rtol=1e-12, atol=0)


def test_accepts_torch_sparse_adj_t():
    torch_sparse = pytest.importorskip("torch_sparse")
    topo, conv = make("cdil", 16)
    v = torch.randn(16, 4, dtype=torch.float64)
    m = topo.num_factors - 1  # duplicates: the adjacency must not merge them
    src, dst = topo.edge_index(m)
    adj_t = torch_sparse.SparseTensor(row=dst, col=src, value=topo.slot(m), sparse_sizes=(16, 16))
    assert torch.allclose(conv(v, adj_t), conv(v, topo.edge_index(m), topo.slot(m)), rtol=1e-12, atol=1e-14)


def test_bad_input_names_the_argument():
    topo, conv = make("chord", 8)
    v = torch.randn(8, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="x must have the same leading shape"):
        conv(v, topo.edge_index(0), topo.slot(0), x=torch.randn(7, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x must have shape \[\.\.\., N, 4\]"):
        conv(torch.randn(8, 5, dtype=torch.float64), topo.edge_index(0), topo.slot(0))
    with pytest.raises(ValueError, match="slot must be"):
        conv(v, topo.edge_index(0), topo.slot(0)[:-1])
    with pytest.raises(ValueError, match="edge_index must be"):
        conv(v, topo.edge_index(0)[0], topo.slot(0))


def test_repr_and_reset():
    _, conv = make("chord", 16)
    assert repr(conv) == "SparseFactorConv(4, num_slots=5, hidden_channels=6, backend='message')"
    before = conv.mlp[2].weight.clone()
    conv.reset_parameters()
    assert not torch.equal(before, conv.mlp[2].weight)


FAST = ["fused", pytest.param("compiled", marks=pytest.mark.slow),
        pytest.param("native", marks=pytest.mark.skipif(not kernels.HAS_NATIVE, reason=f"native op not built: "
                                                         f"{kernels.NATIVE_ERROR}")),
        pytest.param("sparse", marks=pytest.mark.skipif(not kernels.HAS_TORCH_SPARSE,
                                                         reason="torch-sparse not installed"))]


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_backend_applies_the_same_factor(backend, protocol):
    """forward(edge_index) and apply_factor(topology.tables(m)) of a fast backend equal the dense reference."""
    topo, _ = make(protocol, 13)
    torch.manual_seed(1)
    conv = SparseFactorConv(4, topo.num_slots, hidden_channels=6, backend=backend).double()
    assert conv.active_backend == backend
    m = topo.num_factors - 1
    v = torch.randn(2, 13, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 13, topo.num_slots, dtype=torch.float64, requires_grad=True)
    want = R.factor(topo, m, w, v)
    got = conv.apply_factor(v, w, topo.tables(m))
    g = torch.randn_like(want)
    for a, b in zip([got, *torch.autograd.grad(got, (v, w), g)], [want, *torch.autograd.grad(want, (v, w), g)]):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    out = conv(v, topo.edge_index(m), topo.slot(m))
    assert torch.allclose(out, R.factor(topo, m, conv.mlp(v), v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["message", *FAST])
@pytest.mark.parametrize("shared_w", [False, True], ids=["w-per-batch", "w-shared"])
def test_residual_applies_identity_plus_factor(backend, shared_w):
    """apply_factor(..., residual=True) is (I + W) v, forward and backward, on every backend (the
    native kernel adds v inside its pass, the others after)."""
    topo, _ = make("cdil", 13)
    conv = SparseFactorConv(4, topo.num_slots, hidden_channels=6, backend=backend).double()
    m = 1
    gen = torch.Generator().manual_seed(2)
    v = torch.randn(2, 13, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    w_shape = (13, topo.num_slots) if shared_w else (2, 13, topo.num_slots)
    w = torch.randn(*w_shape, dtype=torch.float64, generator=gen, requires_grad=True)
    want = v + R.factor(topo, m, w, v)
    got = conv.apply_factor(v, w, topo.tables(m), residual=True)
    g = torch.randn(want.shape, dtype=torch.float64, generator=gen)
    for a, b in zip([got, *torch.autograd.grad(got, (v, w), g)], [want, *torch.autograd.grad(want, (v, w), g)]):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_fast_backend_rejects_edges_outside_the_slot_layout():
    topo, _ = make("chord", 8)
    conv = SparseFactorConv(4, topo.num_slots, backend="fused").double()
    perm = torch.randperm(topo.edge_index(0).size(1), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="slot layout"):
        conv(torch.randn(8, 4, dtype=torch.float64), topo.edge_index(0)[:, perm], topo.slot(0)[perm])


@pytest.mark.parametrize("bad", [0, -1, 2.5, None])
def test_bad_channels_are_rejected(bad):
    with pytest.raises(ValueError, match="in_channels must be an integer >= 1"):
        SparseFactorConv(bad, 3)
    if bad is not None:
        with pytest.raises(ValueError, match="hidden_channels must be an integer >= 1"):
            SparseFactorConv(4, 3, hidden_channels=bad)


def test_numpy_input_is_rejected():
    np = pytest.importorskip("numpy")
    topo, conv = make("chord", 8)
    with pytest.raises(TypeError, match="v: expected a torch.Tensor, got numpy.ndarray"):
        conv(np.zeros((8, 4)), topo.edge_index(0), topo.slot(0))


def test_native_wiring_passes_the_op_its_shapes(monkeypatch):
    """Without the built op, a stand-in checks what the layer hands to native_slot_mix: v [B, N, C],
    w [B | 1, N, K], src and inv [N, K], one dtype; the result keeps v's leading dims."""
    import types

    from sparsemix.nn import backends

    seen = []

    def fake_native_slot_mix(v, w, src, inv, residual):
        assert v.dim() == 3 and w.dim() == 3 and w.size(0) in (1, v.size(0))  # op casts dtypes
        assert src.shape == inv.shape == (v.size(1), w.size(2))
        seen.append((tuple(v.shape), tuple(w.shape), residual))
        out = kernels.fused_slot_mix(v, w, src, inv)
        return v + out if residual else out

    monkeypatch.setattr(kernels, "HAS_NATIVE", True)
    monkeypatch.setattr(kernels, "native", types.SimpleNamespace(native_slot_mix=fake_native_slot_mix))
    monkeypatch.setattr(backends, "_logged_auto", True)
    topo = topologies.cdil(13)
    conv = SparseFactorConv(4, topo.num_slots, backend="auto").double()
    assert conv.active_backend == "native"
    v = torch.randn(2, 3, 13, 4, dtype=torch.float64)
    w = torch.randn(2, 3, 13, topo.num_slots).float()  # mixed dtypes: the op promotes them
    out = conv.apply_factor(v, w, topo.tables(2))
    assert out.shape == v.shape and seen == [((6, 13, 4), (6, 13, topo.num_slots), False)]
    assert torch.allclose(out, R.factor(topo, 2, w.double(), v), rtol=1e-10, atol=1e-12)
    out = conv.apply_factor(v, w, topo.tables(2), residual=True)
    assert seen[-1][2] is True
    assert torch.allclose(out, v + R.factor(topo, 2, w.double(), v), rtol=1e-10, atol=1e-12)
    conv.apply_factor(v[0, 0], w[0, 0], topo.tables(2))  # unbatched: w [N, K] is shared, [1, N, K] for the op
    assert seen[-1] == ((1, 13, 4), (1, 13, topo.num_slots), False)
