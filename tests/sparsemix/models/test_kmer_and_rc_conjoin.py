"""The k-mer stem of SequenceClassifier (it contains the k-mer logistic regression exactly) and
reverse-complement-conjoined prediction (a sequence and its reverse complement agree)."""
import pytest
import torch

from sparsemix import reference
from sparsemix.models import (CDILClassifier, ReverseComplementConjoined, SequenceClassifier,
                              TransformerClassifier)

BASES = (3, 4, 5, 6)  # DNATokenizer: [PAD] [CLS] [MASK] A C G T N
VOCAB, N_ID = 8, 7
COMPLEMENT = [0, 1, 2, 6, 5, 4, 3, 7]  # A<->T, C<->G; N and the specials stay


def dna(gen, n, n_fraction=0.05):
    tokens = torch.tensor(BASES)[torch.randint(0, 4, (n,), generator=gen)]
    tokens[torch.rand(n, generator=gen) < n_fraction] = N_ID
    return tokens


def kmer_frequencies(seq, k):
    """[4^k]: counts of the complete k-mers / their number (0 for none): the slow way."""
    f = torch.zeros(4 ** k, dtype=torch.float64)
    for i in reference.kmer_ids(seq.tolist(), k, BASES):
        if i >= 0:
            f[i] += 1
    return f / max(1.0, float(f.sum()))


def set_to_kmer_lr(model, weight, bias):
    """Make ``model`` compute ``weight @ f + bias`` (f: k-mer frequencies), everything else off."""
    classes, rows = weight.shape
    with torch.no_grad():
        if model.norm is not None:  # encoder: the final LayerNorm's output becomes 0
            model.norm.weight.zero_()
            model.norm.bias.zero_()
        else:  # paper block: the last block's value MLP ends in zeros, so its output is 0
            model.blocks[-1].value[-1].weight.zero_()
            model.blocks[-1].value[-1].bias.zero_()
        table = model.embed.kmer.table.weight
        table.zero_()
        # the profile is R (E^T g - mean_u E_u): rows W / R give W g - mean_u W_u, the constant
        # goes into the bias; rank <= C: W = head.W @ E^T
        table[:rows, :classes] = (weight.T / rows).to(table.dtype)
        model.head.weight.zero_()
        model.head.weight[:, :classes] = torch.eye(classes)
        model.head.bias.copy_(bias + weight.mean(dim=1))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("block", ["encoder", "paper"])
def test_the_model_contains_the_kmer_logistic_regression(dtype, tol, block):
    gen = torch.Generator().manual_seed(0)
    k, classes = 3, 4
    model = SequenceClassifier(VOCAB, classes, channels=8, num_layers=2, max_len=64, block=block,
                               stem="conv" if block == "encoder" else "none", positional=True,
                               kmer=k, kmer_base_ids=BASES).to(dtype).eval()
    weight = torch.randn(classes, 4 ** k, generator=gen, dtype=torch.float64)
    bias = torch.randn(classes, generator=gen, dtype=torch.float64)
    set_to_kmer_lr(model, weight, bias)
    lengths = [5, 40, 2, 64]
    seqs = [dna(gen, n) for n in lengths]
    want = torch.stack([weight @ kmer_frequencies(s, k) + bias for s in seqs])
    batch = torch.repeat_interleave(torch.arange(len(seqs)), torch.tensor(lengths))
    got = model(torch.cat(seqs), batch)
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)
    fixed = torch.stack([dna(gen, 30) for _ in range(3)])
    want = torch.stack([weight @ kmer_frequencies(s, k) + bias for s in fixed])
    torch.testing.assert_close(model(fixed).double(), want, rtol=tol, atol=tol)


def test_kmer_model_fixed_and_varlen_agree_and_a_batch_changes_nothing():
    gen = torch.Generator().manual_seed(1)
    model = SequenceClassifier(VOCAB, 3, channels=8, num_layers=2, max_len=32, block="encoder",
                               pooling="cls", kmer=4, kmer_base_ids=BASES).eval()
    seqs = [dna(gen, n) for n in (32, 7, 19)]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([32, 7, 19]))
    together = model(torch.cat(seqs), batch)
    for b, s in enumerate(seqs):
        torch.testing.assert_close(together[b], model(s[None])[0], rtol=1e-5, atol=1e-6)


def test_kmer_off_by_default_and_changes_the_output_when_on():
    torch.manual_seed(0)
    off = SequenceClassifier(VOCAB, 2, channels=8, num_layers=1, max_len=16)
    assert off.embed.kmer is None
    torch.manual_seed(0)
    on = SequenceClassifier(VOCAB, 2, channels=8, num_layers=1, max_len=16, kmer=2,
                            kmer_base_ids=BASES)
    assert "embed.kmer.table.weight" in on.state_dict()
    assert not any(k.startswith("embed.kmer") for k in off.state_dict())
    x = torch.tensor([[3, 4, 5, 6, 3, 4, 5, 6]])
    assert not torch.allclose(off.eval()(x), on.eval()(x))


@pytest.mark.parametrize("kwargs, match", [
    (dict(kmer=3), "kmer_base_ids"),
    (dict(kmer=3, kmer_base_ids=BASES, pooling="flatten"), "pooling"),
    (dict(kmer=3, kmer_base_ids=(3, 4, 5, 9)), "vocab_size"),
    (dict(kmer=-1), "kmer must be"),
    (dict(kmer=13, kmer_base_ids=BASES), "k must be"),
])
def test_kmer_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceClassifier(VOCAB, 2, channels=8, num_layers=1, max_len=16, **kwargs)


def test_kmer_needs_token_input():
    with pytest.raises(ValueError, match="token input"):
        SequenceClassifier(None, 2, channels=8, num_layers=1, max_len=16, input_dim=2, kmer=3,
                           kmer_base_ids=BASES)


# -- reverse-complement conjoining -----------------------------------------------------------

def rc_slow(seq):
    return torch.tensor([COMPLEMENT[t] for t in reversed(seq.tolist())])


def models_to_conjoin():
    torch.manual_seed(0)
    return {
        "paramixer": SequenceClassifier(VOCAB, 3, channels=8, num_layers=2, max_len=32,
                                        block="encoder", stem="conv", positional=True, kmer=3,
                                        kmer_base_ids=BASES),
        "transformer": TransformerClassifier(VOCAB, 3, channels=8, num_layers=1, max_len=32,
                                             positional=True),
        "cdil-cnn": CDILClassifier(VOCAB, 3, channels=8, num_layers=2, max_len=32),
    }


@pytest.mark.parametrize("name", ["paramixer", "transformer", "cdil-cnn"])
def test_a_sequence_and_its_reverse_complement_get_the_same_prediction(name):
    gen = torch.Generator().manual_seed(2)
    model = ReverseComplementConjoined(models_to_conjoin()[name], COMPLEMENT).eval()
    # fixed length, several sequences in one batch
    fixed = torch.stack([dna(gen, 32) for _ in range(4)])
    rc = torch.stack([rc_slow(s) for s in fixed])
    assert torch.equal(model.reverse_complement(fixed), rc)
    assert torch.equal(model(fixed), model(rc))
    plain = model.model(fixed)
    assert not torch.allclose(plain, model.model(rc))  # the model alone is not symmetric
    torch.testing.assert_close(model(fixed), (plain + model.model(rc)) / 2)
    if name == "transformer":
        return  # its variable-length mode is covered by the two others
    lengths = [11, 32, 3, 20]
    seqs = [dna(gen, n) for n in lengths]
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor(lengths))
    rcs = torch.cat([rc_slow(s) for s in seqs])
    assert torch.equal(model.reverse_complement(torch.cat(seqs), batch), rcs)
    assert torch.equal(model(torch.cat(seqs), batch), model(rcs, batch))


def test_conjoining_is_eval_only_and_reads_through():
    gen = torch.Generator().manual_seed(3)
    inner = models_to_conjoin()["paramixer"]
    model = ReverseComplementConjoined(inner, COMPLEMENT).train()
    x = torch.stack([dna(gen, 16) for _ in range(2)])
    assert torch.equal(model(x), inner(x))  # training: f(x) alone
    assert model.blocks is inner.blocks and model.embed is inner.embed
    assert set(model.state_dict()) == {"model." + k for k in inner.state_dict()}


@pytest.mark.parametrize("complement, match", [
    ([0, 1, 2, 6, 5, 4, 3, 8], "involution"), ([1, 1, 2], "involution"), ([], "non-empty"),
])
def test_bad_complement(complement, match):
    with pytest.raises(ValueError, match=match):
        ReverseComplementConjoined(torch.nn.Identity(), complement)


def test_tokens_outside_the_complement_table():
    model = ReverseComplementConjoined(models_to_conjoin()["cdil-cnn"], COMPLEMENT).eval()
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        model.reverse_complement(torch.tensor([[3, 9]]))


def test_with_rc_conjoin_the_model_is_the_fitted_kmer_baseline_exactly():
    """The data layer's fitted k-mer LR (strand-symmetric, standardised frequencies) put into the
    model's table and head: the conjoined model's logits are the baseline's, at every length."""
    from sparsemix.data.baselines import fit_logistic, kmer_features

    gen = torch.Generator().manual_seed(4)
    k, classes = 3, 3
    seqs = [dna(gen, int(n)) for n in torch.randint(8, 60, (30,), generator=gen)]
    labels = torch.randint(0, classes, (len(seqs),), generator=gen)
    feats = kmer_features(seqs, k).double()
    lr = fit_logistic(feats, labels, classes, l2=1e-2)
    # logits = ((f - mean) / std) @ W + b = f @ (W / std) + (b - (mean / std) @ W)
    w = lr.weight.double() / lr.std.double()[:, None]  # [4^k, classes]
    b = lr.bias.double() - (lr.mean.double() / lr.std.double()) @ lr.weight.double()
    model = SequenceClassifier(VOCAB, classes, channels=8, num_layers=1, max_len=64,
                               block="encoder", kmer=k, kmer_base_ids=BASES).double()
    set_to_kmer_lr(model, w.T, b)
    conjoined = ReverseComplementConjoined(model, COMPLEMENT).eval()
    lengths = torch.tensor([s.numel() for s in seqs])
    batch = torch.repeat_interleave(torch.arange(len(seqs)), lengths)
    got = conjoined(torch.cat(seqs), batch)
    want = ((feats - lr.mean.double()) / lr.std.double()) @ lr.weight.double() + lr.bias.double()
    # LogisticRegression.logits in fp64; kmer_features' frequencies are fp32, hence 1e-6
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert (got.argmax(1) == lr.predict(feats.float())).all()
