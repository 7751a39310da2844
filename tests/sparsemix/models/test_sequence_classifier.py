import pytest
import torch

import sparsemix
from sparsemix.models import SequenceClassifier


def _tokens_batch(lengths, vocab=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (sum(lengths),), generator=g)
    batch = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    return tokens, batch


def test_exported_from_package():
    assert sparsemix.SequenceClassifier is SequenceClassifier


@pytest.mark.parametrize("pooling", ["mean", "cls", "flatten"])
@pytest.mark.parametrize("protocol", ["chord", "cdil"])
def test_fixed_length_shapes_and_gradients(pooling, protocol):
    model = SequenceClassifier(6, 4, 8, 2, protocol=protocol, max_len=16, pooling=pooling,
                               positional=True)
    out = model(torch.randint(0, 6, (3, 16)))
    assert out.shape == (3, 4)
    out.sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "positions" not in n
               or pooling != "cls")


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_variable_length_output_does_not_depend_on_the_batch(pooling):
    torch.manual_seed(0)
    model = SequenceClassifier(6, 3, 8, 2, max_len=40, pooling=pooling, positional=True).eval()
    lengths = [7, 40, 13]
    tokens, batch = _tokens_batch(lengths)
    together = model(tokens, batch)
    start = 0
    for b, n in enumerate(lengths):
        alone = model(tokens[start:start + n], torch.zeros(n, dtype=torch.long))
        torch.testing.assert_close(together[b], alone[0], atol=1e-5, rtol=1e-5)
        fixed = model(tokens[start:start + n][None])  # the same sequence in the [B, N] layout
        torch.testing.assert_close(fixed[0], alone[0], atol=1e-5, rtol=1e-5)
        start += n


def test_continuous_input_and_weights_from():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 2)
    a = SequenceClassifier(None, 1, 8, 2, max_len=16, input_dim=2, weights_from="embedding")
    b = SequenceClassifier(None, 1, 8, 2, max_len=16, input_dim=2, weights_from="state")
    b.load_state_dict(a.state_dict())
    assert a(x).shape == (2, 1)
    # block 2's factor MLPs read X in one model and block 1's output in the other
    assert not torch.allclose(a(x), b(x))


def test_mixing_reaches_every_position():
    """With mean pooling the output for position 0 must depend on the last token (log N mixing)."""
    torch.manual_seed(0)
    model = SequenceClassifier(None, 1, 8, 1, max_len=64, input_dim=2, pooling="cls").double()
    x = torch.randn(1, 64, 2, dtype=torch.double, requires_grad=True)
    model(x).sum().backward()
    assert bool((x.grad.abs().sum(-1) > 0).all())


def test_bad_input_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(6, 2, 8, 1, max_len=16, pooling="max")
    with pytest.raises(ValueError, match="max_len"):
        SequenceClassifier(6, 2, 8, 1)
    model = SequenceClassifier(6, 2, 8, 1, max_len=16, pooling="flatten")
    with pytest.raises(ValueError, match="flatten"):
        model(torch.randint(0, 6, (2, 12)))
    with pytest.raises(ValueError, match="token ids"):
        SequenceClassifier(6, 2, 8, 1, max_len=16)(torch.full((1, 16), 9))
    with pytest.raises(ValueError, match="max_len"):
        SequenceClassifier(6, 2, 8, 1, max_len=16, positional=True)(torch.zeros(1, 20, dtype=torch.long))
