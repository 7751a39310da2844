import pytest
import torch
import torch.nn.functional as F

from sparsemix.models import CDILClassifier, TransformerClassifier
from sparsemix.models.cdil_cnn import circular_taps


def _varlen(lengths, vocab=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (sum(lengths),), generator=g)
    return tokens, torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))


def _models():
    torch.manual_seed(0)
    return [TransformerClassifier(6, 3, 8, 2, max_len=32, num_heads=2).eval(),
            CDILClassifier(6, 3, 8, None, max_len=32, positional=True).eval()]


@pytest.mark.parametrize("index", [0, 1])
def test_padding_and_batch_never_change_a_sequence(index):
    model = _models()[index]
    lengths = [5, 32, 11]
    tokens, batch = _varlen(lengths)
    together = model(tokens, batch)
    start = 0
    for b, n in enumerate(lengths):
        alone = model(tokens[start:start + n][None])  # fixed layout, no padding at all
        torch.testing.assert_close(together[b], alone[0], atol=1e-5, rtol=1e-5)
        start += n


@pytest.mark.parametrize("index", [0, 1])
def test_samples_do_not_interact(index):
    """The official baseline attended over the batch axis; here sample 0 ignores sample 1."""
    model = _models()[index]
    x = torch.randint(0, 6, (2, 32))
    y = x.clone()
    y[1] = torch.randint(0, 6, (32,))
    torch.testing.assert_close(model(x)[0], model(y)[0])


def test_transformer_attends_over_the_sequence_axis():
    model = _models()[0]
    model.head = torch.nn.Identity()
    model.pooling = "cls"  # read position 0 only
    x = torch.randint(0, 6, (1, 32))
    y = x.clone()
    y[0, -1] = (y[0, -1] + 1) % 6
    assert not torch.allclose(model(x), model(y))  # the last token reaches position 0


def test_circular_taps_match_circular_conv1d():
    torch.manual_seed(0)
    h = torch.randn(2, 10, 4)
    weight = torch.randn(5, 4, 3)  # [C_out, C_in, k]
    ref = F.conv1d(F.pad(h.transpose(1, 2), (2 * 3, 2 * 3), mode="circular")[..., 3:-3],
                   weight, dilation=3).transpose(1, 2)
    taps = circular_taps(h, dilation=3, kernel_size=3)  # [B, N, 3*C], tap-major
    ours = taps @ weight.permute(2, 1, 0).reshape(12, 5)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    # variable length: each sequence wraps inside itself
    flat = torch.cat([h[0], h[1, :7]])
    batch = torch.tensor([0] * 10 + [1] * 7)
    var = circular_taps(flat, 3, 3, batch)
    torch.testing.assert_close(var[:10], taps[0])
    torch.testing.assert_close(var[10:], circular_taps(h[1:, :7], 3, 3)[0])


@pytest.mark.parametrize("cls", [TransformerClassifier, CDILClassifier])
@pytest.mark.parametrize("pooling", ["mean", "cls", "flatten"])
def test_shapes_and_continuous_input(cls, pooling):
    kwargs = {} if cls is TransformerClassifier else {}
    model = cls(None, 1, 8, 1, max_len=16, pooling=pooling, input_dim=2, **kwargs)
    assert model(torch.randn(3, 16, 2)).shape == (3, 1)


@pytest.mark.parametrize("index", [0, 1])
def test_a_sequence_with_no_elements_is_refused_as_by_paramixer(index):
    """One rule for batch vectors (sparsemix.nn.sequence_lengths): every sequence 0..B-1 has elements."""
    model = _models()[index]
    with pytest.raises(ValueError, match="sequences with no nodes: \\[1\\]"):
        model(torch.randint(0, 6, (4,)), torch.tensor([0, 0, 2, 2]))
