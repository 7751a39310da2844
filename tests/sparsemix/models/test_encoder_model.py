"""SequenceClassifier(block="encoder"), the stem and the mixing-off ablation."""
import pytest
import torch

from sparsemix import SequenceClassifier
from sparsemix.nn import Paramixer, ParamixerEncoderLayer


def _model(**kw):
    torch.manual_seed(0)
    opts = dict(block="encoder", positional=True, position_init="sinusoid", stem="conv",
                stem_kernel=5)
    opts.update(kw)
    return SequenceClassifier(5, 3, 8, 2, max_len=24, **opts).double().eval()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_variable_length_batch_equals_each_sequence_alone(pooling):
    model = _model(pooling=pooling)
    lengths = [24, 3, 11]
    seqs = [torch.randint(0, 5, (n,)) for n in lengths]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(lengths))
    together = model(torch.cat(seqs), batch)
    for b, seq in enumerate(seqs):
        alone = model(seq, torch.zeros(len(seq), dtype=torch.long))
        torch.testing.assert_close(together[b:b + 1], alone, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(model(seq[None]), alone, rtol=1e-12, atol=1e-12)


def test_blocks_and_ablation():
    model = _model()
    assert all(isinstance(b, ParamixerEncoderLayer) for b in model.blocks)
    off = _model(mixing=False)
    assert not any(b.mixing for b in off.blocks)
    paper = SequenceClassifier(5, 3, 8, 1, max_len=24)
    assert isinstance(paper.blocks[0], Paramixer) and paper.block == "paper"


def test_mixing_off_output_is_a_sum_of_local_windows():
    model = _model(mixing=False, positional=False, stem_kernel=3)
    x = torch.randint(0, 5, (1, 24))
    y = x.clone()
    y[0, 10] = (x[0, 10] + 1) % 5
    # with mixing, changing one token changes every element's features; without, only its window
    with torch.no_grad():
        h_x, _ = _features(model, x)
        h_y, _ = _features(model, y)
    changed = ((h_x - h_y).abs().sum(-1)[0] > 0).nonzero().flatten().tolist()
    assert changed == [9, 10, 11]
    mixing = _model(positional=False, stem_kernel=3)
    with torch.no_grad():
        m_x, _ = _features(mixing, x)
        m_y, _ = _features(mixing, y)
    assert int(((m_x - m_y).abs().sum(-1)[0] > 0).sum()) > 3


def _features(model, tokens):
    from sparsemix.models._sequence_io import embed_sequences

    h, batch = embed_sequences(model, tokens, None, stem=model.stem)
    for layer in model.blocks:
        h = layer(h, batch=batch)
    return h, batch


@pytest.mark.parametrize("kw, match", [
    ({"block": "fancy"}, "block must be one of"),
    ({"stem": "cnn"}, "stem must be one of"),
    ({"block": "paper", "mixing": False}, "mixing=False"),
    ({"position_init": "zeros"}, "position_init must be one of"),
])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        SequenceClassifier(5, 3, 8, 1, max_len=16, positional=True, **kw)


def test_fragment_weights_report_works_for_the_encoder():
    # the DNA demo's weight figure reads the first layer's mixing; it must equal the layer's own
    from sparsemix.tools import fragment_weights

    model = _model(wrap_gate=True)
    with torch.no_grad():
        model.blocks[0].wrap_gate.normal_()
    tokens = torch.randint(0, 5, (20,))
    weights, matrix, topo = fragment_weights(model, tokens)
    layer = model.blocks[0]
    with torch.no_grad():
        u = layer.norm1(model.stem(model.embed(tokens[None])))[0]
        out = layer.mixer(u, x=u, weight_gates=layer.gates(u))
        torch.testing.assert_close(matrix @ layer.mixer.value(u), out, rtol=1e-10, atol=1e-10)
    assert len(weights) == layer.mixer.num_factors and topo.num_nodes == 20
