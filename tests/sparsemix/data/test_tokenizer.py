import pytest
import torch

from sparsemix.data.fasta import FastaError, reverse_complement
from sparsemix.data.tokenizer import DNATokenizer


def test_vocabulary_is_fixed():
    tok = DNATokenizer()
    assert tok.vocab == ("[PAD]", "[CLS]", "[MASK]", "A", "C", "G", "T", "N")
    assert tok.vocab_size == 8 and tok.pad_id == 0 and tok.cls_id == 1
    assert tok.encode("ACGTN").tolist() == [3, 4, 5, 6, 7]


def test_encode_normalises_and_decodes():
    tok = DNATokenizer()
    ids = tok.encode("acgtryu")
    assert ids.dtype == torch.long
    assert tok.decode(ids) == "ACGTNNT"
    assert tok.encode("AC", add_cls=True).tolist() == [1, 3, 4]


def test_encode_rejects_non_iupac():
    with pytest.raises(FastaError, match="position 3: 'X'"):
        DNATokenizer().encode("ACXT")


def test_token_reverse_complement_matches_byte_reverse_complement():
    tok = DNATokenizer()
    seq = b"AACGTTTGNCA"
    assert tok.decode(tok.reverse_complement(tok.encode(seq))) == reverse_complement(seq).decode()
    with_cls = tok.reverse_complement(tok.encode(seq, add_cls=True))
    assert with_cls[0].item() == tok.cls_id
    assert tok.decode(with_cls[1:]) == reverse_complement(seq).decode()
    batch = torch.stack([tok.encode("AACC"), tok.encode("GTGT")])
    assert [tok.decode(r) for r in tok.reverse_complement(batch)] == ["GGTT", "ACAC"]
