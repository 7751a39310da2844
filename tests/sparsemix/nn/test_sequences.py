"""sequence_lengths: the lengths of a sorted PyG batch vector, with one-line errors for bad vectors."""
import pytest
import torch

from sparsemix.nn import sequence_lengths


def test_lengths_of_a_sorted_batch():
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor([3, 1, 5, 2]))
    assert sequence_lengths(batch).tolist() == [3, 1, 5, 2]
    assert sequence_lengths(batch.int(), num_nodes=11).tolist() == [3, 1, 5, 2]


@pytest.mark.parametrize("batch, num_nodes, error, match", [
    (torch.tensor([0, 1, 0]), None, ValueError, "sorted"),
    (torch.tensor([-1, 0, 0]), None, ValueError, "non-negative"),
    (torch.tensor([0, 0, 2]), None, ValueError, r"no nodes: \[1\]"),
    (torch.tensor([0, 0]), 3, ValueError, "T = 3"),
    (torch.zeros(2, 2, dtype=torch.long), None, ValueError, r"\[T\] vector"),
    (torch.tensor([0.0, 1.0]), None, TypeError, "integer"),
    (torch.zeros(0, dtype=torch.long), None, ValueError, "no nodes"),
    ([0, 0, 1], None, TypeError, "expected a torch.Tensor"),
])
def test_bad_batch_vectors(batch, num_nodes, error, match):
    with pytest.raises(error, match=match):
        sequence_lengths(batch, num_nodes)
