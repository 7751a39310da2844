"""ParamixerEncoderLayer: shapes, no leak across sequences, backends agree, gradients reach the
factors, and the "sum" init's product is the all-ones matrix."""
import pytest
import torch
from torch import nn

import sparsemix
from sparsemix import reference
from sparsemix.nn import ParamixerEncoderLayer


def _layer(**kw) -> ParamixerEncoderLayer:
    torch.manual_seed(0)
    return ParamixerEncoderLayer(8, max_len=32, **kw).double().eval()


def test_exported_and_shapes():
    assert sparsemix.ParamixerEncoderLayer is ParamixerEncoderLayer
    layer = _layer()
    assert layer(torch.randn(3, 32, 8, dtype=torch.double)).shape == (3, 32, 8)
    assert layer(torch.randn(20, 8, dtype=torch.double)).shape == (20, 8)
    batch = torch.tensor([0] * 5 + [1] * 11)
    out, weights = layer(torch.randn(16, 8, dtype=torch.double), batch=batch, return_weights=True)
    assert out.shape == (16, 8) and len(weights) == layer.mixer.num_factors
    assert weights[0].shape == (16, layer.mixer.num_slots)
    assert "mix_init='sum'" in repr(layer)


@pytest.mark.parametrize("kw", [{}, {"wrap_gate": True}, {"protocol": "cdil"}, {"mixing": False},
                                {"mix_mode": "average"},
                                {"mix_mode": "average", "wrap_gate": True},
                                {"mix_mode": "average", "protocol": "cdil"},
                                {"mix_mode": "average", "score_scale": "log-length"}])
def test_a_sequence_alone_equals_it_in_a_batch(kw):
    layer = _average_layer(**_drop_mode(kw)) if kw.get("mix_mode") == "average" else _layer(**kw)
    lengths = [5, 32, 1, 13]
    seqs = [torch.randn(n, 8, dtype=torch.double) for n in lengths]
    batch = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    together = layer(torch.cat(seqs), batch=batch)
    for b, seq in enumerate(seqs):
        alone = layer(seq, batch=torch.zeros(len(seq), dtype=torch.long))
        torch.testing.assert_close(together[batch == b], alone, rtol=1e-12, atol=1e-12)
        # and equal to the fixed-length path for the same sequence
        torch.testing.assert_close(layer(seq[None])[0], alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["fused", "auto"])
def test_backends_agree_with_message_passing(backend):
    torch.manual_seed(1)
    ref = ParamixerEncoderLayer(8, max_len=40, backend="message", wrap_gate=True).double()
    fast = ParamixerEncoderLayer(8, max_len=40, backend=backend, wrap_gate=True).double()
    with torch.no_grad():
        ref.wrap_gate.normal_()
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(19 + 40, 8, dtype=torch.double)
    batch = torch.repeat_interleave(torch.tensor([0, 1]), torch.tensor([19, 40]))
    grads = []
    for layer in (ref, fast):
        xi = x.clone().requires_grad_()
        out = layer(xi, batch=batch)
        out.pow(2).sum().backward()
        grads.append((out.detach(), xi.grad, [p.grad for p in layer.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-10)
    for a, b in zip(grads[0][2], grads[1][2]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_gradients_reach_every_factor_mlp_at_init():
    torch.manual_seed(2)
    layer = ParamixerEncoderLayer(8, max_len=64)
    x = torch.randn(4, 64, 8)
    # a loss at position 0 that depends on the far end only through the mixing
    layer(x)[:, 0].pow(2).sum().backward()
    for m, factor in enumerate(layer.mixer.factors):
        first, last = factor.weight_layers
        assert float(first.weight.grad.norm()) > 1e-4, f"factor {m} gets no gradient"
        assert float(last.weight.grad.norm()) > 1e-4, f"factor {m} gets no gradient"


def test_sum_init_product_is_all_ones():
    layer = _layer()
    layer._sum_init(noise=0.0)  # exact: weight 1 on the slot of offset 2^m, 0 elsewhere
    v = torch.randn(32, 8, dtype=torch.double)
    out = layer.mixer(v)  # (I + W^(M)) ... (I + W^(1)) g(v)
    g = layer.mixer.value(v)
    torch.testing.assert_close(out, g.sum(0, keepdim=True).expand_as(out), rtol=1e-10, atol=1e-10)


def test_wrap_gate_closed_gives_the_suffix_sum():
    layer = _layer(wrap_gate=True)
    layer._sum_init(noise=0.0)
    v = torch.randn(32, 8, dtype=torch.double)
    out = layer.mixer(v, weight_gates=layer.gates(v))
    g = layer.mixer.value(v)
    suffix = g.flip(0).cumsum(0).flip(0)  # row i: sum over j >= i
    torch.testing.assert_close(out, suffix, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("protocol", ["chord", "cdil"])
@pytest.mark.parametrize("mix_mode", ["sum", "average"])
def test_wrap_gates_are_gamma_exactly_on_the_edges_that_leave_the_sequence(protocol, mix_mode):
    layer = _layer(wrap_gate=True, protocol=protocol, mix_mode=mix_mode)
    with torch.no_grad():
        layer.wrap_gate.uniform_(-0.5, 1.0)
    gamma = layer.wrap_gate.clamp(min=0) if mix_mode == "average" else layer.wrap_gate
    lengths = [5, 32, 1, 13]
    batch = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    gates = layer.gates(torch.zeros(len(batch), 8, dtype=torch.double), batch)
    assert len(gates) == layer.mixer.num_factors
    wrapped_somewhere = 0
    for m, gate in enumerate(gates):
        t = 0
        for n in lengths:
            for i in range(n):
                for k, off in enumerate(layer.offsets[m].tolist()):
                    wraps = not 0 <= i + off < n
                    wrapped_somewhere += wraps
                    assert gate[t, k] == (gamma[m, k] if wraps else 1.0), (m, n, i, k)
                t += 1
    assert wrapped_somewhere > 0
    fixed = layer.gates(torch.zeros(2, 13, 8, dtype=torch.double))  # [N, K], as the 13-long one
    start = sum(lengths[:3])
    for m in range(layer.mixer.num_factors):
        torch.testing.assert_close(fixed[m], gates[m][start:start + 13], rtol=0, atol=0)


def test_mixing_off_is_per_element():
    layer = _layer(mixing=False)
    x = torch.randn(1, 32, 8, dtype=torch.double)
    y = x.clone()
    y[0, 20] += 1.0
    with torch.no_grad():
        diff = (layer(x) - layer(y)).abs().sum(-1)[0]
    assert float(diff[20]) > 0 and float(diff.sum() - diff[20]) == 0.0


def test_bad_options():
    with pytest.raises(ValueError, match="mix_init"):
        ParamixerEncoderLayer(8, max_len=16, mix_init="ones")
    with pytest.raises(ValueError, match="mix_init, not init"):
        ParamixerEncoderLayer(8, max_len=16, init="paper")
    for gain in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="mix_gain must be a positive number"):
            ParamixerEncoderLayer(8, max_len=16, mix_gain=gain)


def test_mix_gain_sets_the_mixing_norm_and_survives_reset():
    layer = ParamixerEncoderLayer(8, max_len=16, mix_gain=0.25)
    nn.init.ones_(layer.mix_norm.weight)
    layer.reset_parameters()
    assert torch.equal(layer.mix_norm.weight, torch.full((8,), 0.25))


# ---- mix_mode="average" ----------------------------------------------------------------------------
def _average_layer(dtype=torch.double, **kw) -> ParamixerEncoderLayer:
    torch.manual_seed(3)
    layer = ParamixerEncoderLayer(8, max_len=32, mix_mode="average", num_heads=2, **kw).to(dtype)
    with torch.no_grad():  # scores and gates away from their init, so every term is exercised
        layer.score.weight.normal_()
        if layer.wrap_gate is not None:
            layer.wrap_gate.uniform_(-0.5, 1.0)
    return layer.eval()


def _drop_mode(kw: dict) -> dict:
    return {k: v for k, v in kw.items() if k != "mix_mode"}


def _average_branch(layer, h):
    """The averaging branch alone, on the layer's normalised input."""
    return layer._average(layer.norm1(h), None)[0]


@pytest.mark.parametrize("dtype,tol", [(torch.double, 1e-10), (torch.float, 2e-5)])
@pytest.mark.parametrize("wrap_gate,score_scale", [(False, "none"), (True, "none"),
                                                   (True, "log-length")])
def test_average_matches_the_dense_reference_forward_and_backward(dtype, tol, wrap_gate,
                                                                   score_scale):
    layer = _average_layer(dtype, wrap_gate=wrap_gate, score_scale=score_scale)
    h = torch.randn(27, 8, dtype=dtype)
    fast_in, ref_in = h.clone().requires_grad_(), h.clone().requires_grad_()
    fast = _average_branch(layer, fast_in)
    ref = reference.encoder_average(layer, layer.norm1(ref_in))
    torch.testing.assert_close(fast, ref, rtol=tol, atol=tol)
    probe = torch.randn_like(fast)
    g_fast = torch.autograd.grad((fast * probe).sum(), [fast_in, *layer.parameters()], allow_unused=True)
    g_ref = torch.autograd.grad((ref * probe).sum(), [ref_in, *layer.parameters()], allow_unused=True)
    for a, b in zip(g_fast, g_ref):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=10 * tol, atol=10 * tol)


def test_average_sum_init_is_a_softmax_over_the_whole_sequence():
    """Exact sum init (A = all ones): every element gets softmax(scores)-weighted g, whatever N."""
    layer = _average_layer()
    layer._sum_init(noise=0.0)
    for f in layer.mixer.factors:  # softplus(_OFF) is small, not 0: switch the other slots off exactly
        last = f.weight_layers[1]
        with torch.no_grad():
            last.bias[last.bias < 0] = -80.0
    u = torch.randn(32, 8, dtype=torch.double)
    out, _ = layer._average(u, None)
    p = torch.softmax(layer.score(u), dim=0)  # [N, H] over positions
    g = layer.mixer.value(u).chunk(2, dim=-1)
    want = torch.cat([(p[:, h, None] * g[h]).sum(0, keepdim=True) for h in range(2)], -1)
    torch.testing.assert_close(out, want.expand_as(out), rtol=1e-10, atol=1e-10)


def test_average_is_exact_for_scores_far_apart():
    """Scores 1000 apart neither overflow nor give NaN: the shift by the sequence's maximum."""
    layer = _average_layer(torch.float)
    with torch.no_grad():
        layer.score.weight.mul_(1000.0)
    out = layer(torch.randn(2, 32, 8))
    assert torch.isfinite(out).all()


def test_average_bad_options():
    with pytest.raises(ValueError, match="mix_mode must be one of"):
        ParamixerEncoderLayer(8, max_len=16, mix_mode="mean")
    with pytest.raises(ValueError, match="score_scale must be one of"):
        ParamixerEncoderLayer(8, max_len=16, mix_mode="average", score_scale="log")
    with pytest.raises(ValueError, match="num_heads .3. must divide channels .8."):
        ParamixerEncoderLayer(8, max_len=16, mix_mode="average", num_heads=3)


def test_log_length_scores_weigh_by_a_power_of_n():
    """With score_scale="log-length" and A = all ones, an element scoring 1 above the rest gets
    n times the weight of each of them, at every n."""
    layer = _average_layer(score_scale="log-length")
    layer._sum_init(noise=0.0)
    for f in layer.mixer.factors:
        with torch.no_grad():
            f.weight_layers[1].bias[f.weight_layers[1].bias < 0] = -80.0
    with torch.no_grad():
        layer.score.weight.zero_()
        layer.score.weight[:, 0] = 1.0  # score = channel 0 of u, both heads
    for n in (8, 32):
        u = torch.zeros(n, 8, dtype=torch.double)
        u[3, 0] = 1.0  # element 3 scores 1, the others 0
        out, _ = layer._average(u, None)
        g = layer.mixer.value(u)
        want = (n * g[3] + g.sum(0) - g[3]) / (n + n - 1)  # weights n : 1 : ... : 1
        torch.testing.assert_close(out[0], want, rtol=1e-10, atol=1e-10)
