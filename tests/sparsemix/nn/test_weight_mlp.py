"""Paramixer(weight_mlp="shared"): one hidden layer for all factors of a block (F -> h -> M*K),
held to the dense reference like every fast path, forward and backward, on every backend."""
import pytest
import torch

from sparsemix import Paramixer, SequenceClassifier
from sparsemix import kernels
from sparsemix import reference as R
from sparsemix.nn import WEIGHT_MLPS, shared_weights

BACKENDS = ["message", "fused",
            pytest.param("compiled", marks=pytest.mark.slow),
            pytest.param("native", marks=pytest.mark.skipif(not kernels.HAS_NATIVE,
                                                             reason="native op not built")),
            pytest.param("sparse", marks=pytest.mark.skipif(not kernels.HAS_TORCH_SPARSE,
                                                            reason="torch-sparse not installed"))]


def make(backend="fused", n=13, weight_mlp="shared", protocol="chord", dtype=torch.float64):
    torch.manual_seed(0)
    return Paramixer(3, protocol=protocol, max_len=n, hidden_channels=4, backend=backend,
                     weight_mlp=weight_mlp).to(dtype).eval()


def outputs_and_grads(fn, block, v, x):
    v = v.detach().requires_grad_()
    x = x.detach().requires_grad_()
    out = fn(v, x)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = torch.autograd.grad(out, [v, x] + list(block.parameters()), g.to(out.dtype))
    return [out.detach()] + [t.double() for t in grads]


def rel_err(got, want):
    return max(((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
               for a, b in zip(got, want))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
@pytest.mark.parametrize("n", [1, 3, 13, 16])
def test_shared_equals_dense_reference_fp64_and_fp32(backend, protocol, n):
    block = make(backend, n, protocol=protocol)
    gen = torch.Generator().manual_seed(n)
    v = torch.randn(2, n, 3, generator=gen, dtype=torch.float64)
    x = torch.randn(2, n, 3, generator=gen, dtype=torch.float64)
    want = outputs_and_grads(lambda v, x: R.block_forward(block, v, x), block, v, x)
    got = outputs_and_grads(lambda v, x: block(v, x=x), block, v, x)
    assert rel_err(got, want) <= 1e-10
    block32 = block.float()
    got32 = outputs_and_grads(lambda v, x: block32(v, x=x), block32, v.float(), x.float())
    assert rel_err(got32, want) <= 1e-5


def test_shared_variable_length_equals_each_sequence_alone():
    block = make("fused", 16)
    lengths = [16, 5, 9]
    v = torch.randn(sum(lengths), 3, dtype=torch.float64)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(lengths))
    out = block(v, batch=batch)
    assert torch.allclose(out, R.block_forward(block, v, batch=batch), rtol=1e-10, atol=1e-12)
    start = 0
    for n in lengths:
        assert torch.allclose(out[start:start + n], block(v[start:start + n]), rtol=1e-12, atol=1e-14)
        start += n


def test_shared_weights_equals_every_factor_alone_and_shares_one_first_layer():
    block = make("fused", 64)
    firsts = {id(f.weight_layers[0]) for f in block.factors}
    assert len(firsts) == 1
    x = torch.randn(2, 64, 3, dtype=torch.float64)
    got = shared_weights(block.factors, x)
    for w, f in zip(got, block.factors):
        assert w.is_contiguous() and torch.allclose(w, f.compute_weights(x), rtol=1e-12, atol=1e-14)
    per = make("fused", 64, weight_mlp="per-factor")
    n_shared = sum(p.numel() for p in block.parameters())
    n_per = sum(p.numel() for p in per.parameters())
    first = 3 * 4 + 4  # F*h + h
    assert n_per - n_shared == (block.num_factors - 1) * first
    with pytest.raises(ValueError, match="share one first layer"):
        shared_weights(per.factors, x)


def test_shared_state_dict_round_trip_keeps_the_layer_shared():
    a = make("fused", 32)
    b = make("fused", 32)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    b.load_state_dict(a.state_dict())
    assert len({id(f.weight_layers[0]) for f in b.factors}) == 1
    v = torch.randn(2, 32, 3, dtype=torch.float64)
    assert torch.equal(a(v), b(v))


@pytest.mark.parametrize("weight_mlp", WEIGHT_MLPS)
def test_init_factor_values_sets_every_factor(weight_mlp):
    block = make("fused", 64, weight_mlp=weight_mlp)
    m, k = block.num_factors, block.num_slots
    bias = torch.arange(m * k, dtype=torch.float64).reshape(m, k)
    block.init_factor_values(bias, noise_std=0.0)
    x = torch.randn(5, 64, 3, dtype=torch.float64)
    for j, w in enumerate(block.factor_weights(x)):
        assert torch.allclose(w, bias[j].expand_as(w))
    block.init_factor_values(bias, noise_std=0.1)
    spread = torch.stack(block.factor_weights(x)) - bias[:, None, None, :]
    assert 0.0 < spread.std().item() < 1.0
    with pytest.raises(ValueError, match=r"bias must be \[M, K\]"):
        block.init_factor_values(bias[:, :-1], 0.1)


def test_stable_init_output_scale_is_bounded_for_shared():
    torch.manual_seed(0)
    block = Paramixer(16, max_len=4096, weight_mlp="shared")
    v = torch.randn(1, 4096, 16)
    ratio = (block(v).pow(2).mean().sqrt() / v.pow(2).mean().sqrt()).item()
    assert 0.25 < ratio < 4.0


def test_encoder_model_with_shared_weight_mlp_trains_a_step():
    torch.manual_seed(0)
    model = SequenceClassifier(6, 4, 16, 2, max_len=64, block="encoder", weight_mlp="shared")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tokens = torch.randint(0, 6, (4, 64))
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(tokens), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_bad_weight_mlp_is_named():
    with pytest.raises(ValueError, match="weight_mlp must be one of"):
        Paramixer(4, max_len=8, weight_mlp="low-rank")


def test_shared_with_checkpointed_weights_has_the_same_gradients():
    v = torch.randn(2, 32, 3, dtype=torch.float64)
    got = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        block = Paramixer(3, max_len=32, hidden_channels=4, weight_mlp="shared",
                          checkpoint_weights=ckpt).double()
        got.append(outputs_and_grads(lambda v, x: block(v, x=x), block, v, v))
    assert rel_err(got[1], got[0]) <= 1e-12
