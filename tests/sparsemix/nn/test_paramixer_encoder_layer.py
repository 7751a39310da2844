"""ParamixerEncoderLayer: shapes, no leak across sequences, backends agree, gradients reach the
factors, and the "sum" init's product is the all-ones matrix."""
import pytest
import torch
from torch import nn

import sparsemix
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


@pytest.mark.parametrize("kw", [{}, {"wrap_gate": True}, {"protocol": "cdil"}, {"mixing": False}])
def test_a_sequence_alone_equals_it_in_a_batch(kw):
    layer = _layer(**kw)
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
