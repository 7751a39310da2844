import pytest
import torch

from sparsemix.data.dataset import FragmentDataset
from sparsemix.data.fasta import reverse_complement
from sparsemix.data.sampling import Fragment
from sparsemix.data.tokenizer import DNATokenizer

STORE = {("f", "r"): b"AACCGGTTACGTNACGTTTT"}
TOK = DNATokenizer()


def test_items_follow_the_manifest_strand():
    frags = [Fragment("f", "r", 0, 6, "+", "A"), Fragment("f", "r", 0, 6, "-", "B")]
    ds = FragmentDataset(frags, STORE, ["A", "B"])
    x0, y0 = ds[0]
    x1, y1 = ds[1]
    assert TOK.decode(x0) == "AACCGG" and y0.item() == 0 and y0.dtype == torch.long
    assert TOK.decode(x1) == "CCGGTT" and y1.item() == 1
    assert ds.lengths == [6, 6]


def test_reverse_complement_augmentation_is_applied_as_documented():
    frag = Fragment("f", "r", 2, 11, "+", "A")
    fwd = TOK.encode_normalised(STORE[("f", "r")][2:13])
    rev = TOK.encode_normalised(reverse_complement(STORE[("f", "r")][2:13]))
    plain = FragmentDataset([frag], STORE, ["A"], reverse_complement=False)
    assert all(torch.equal(plain[0][0], fwd) for _ in range(50))

    aug = FragmentDataset([frag], STORE, ["A"], reverse_complement=True)
    torch.manual_seed(0)
    draws = [aug[0][0] for _ in range(400)]
    flipped = [torch.equal(x, rev) for x in draws]
    assert all(f or torch.equal(x, fwd) for f, x in zip(flipped, draws))  # only these two
    assert 0.4 < sum(flipped) / len(flipped) < 0.6  # p = 0.5 per read
    assert torch.equal(aug.tokens(0), fwd)  # .tokens() never augments
    torch.manual_seed(0)  # follows torch's global seed
    assert [torch.equal(aug[0][0], rev) for _ in range(400)] == flipped


def test_bad_fragments_are_rejected():
    with pytest.raises(ValueError, match="runs past the end"):
        FragmentDataset([Fragment("f", "r", 15, 10, "+", "A")], STORE, ["A"])
    with pytest.raises(ValueError, match="label 'Z'"):
        FragmentDataset([Fragment("f", "r", 0, 5, "+", "Z")], STORE, ["A"])
    with pytest.raises(KeyError, match="not loaded"):
        FragmentDataset([Fragment("g", "r", 0, 5, "+", "A")], STORE, ["A"])
