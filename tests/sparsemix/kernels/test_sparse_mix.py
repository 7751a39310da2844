"""sparse_slot_mix (torch_sparse) equals the naive gather, forward and backward."""
import pytest
import torch

import topologies
from sparsemix import kernels

pytestmark = pytest.mark.skipif(not kernels.HAS_TORCH_SPARSE, reason="torch-sparse not installed")


@pytest.mark.parametrize("protocol", ["chord", "cdil"])
@pytest.mark.parametrize("n", [1, 2, 13, 1000])
@pytest.mark.parametrize("shared", [False, True], ids=["per-example-w", "shared-w"])
def test_matches_naive(protocol, n, shared):
    gen = torch.Generator().manual_seed(n)
    topo = topologies.get(protocol, n)
    src = topo.source_index(topo.num_factors - 1)
    v = torch.randn(3, n, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    w_shape = (n, topo.num_slots) if shared else (3, n, topo.num_slots)
    w = torch.randn(w_shape, generator=gen, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, n, 4, generator=gen, dtype=torch.float64)
    got = kernels.sparse_slot_mix(v, w, src)
    want = (w[..., None] * v[..., src, :]).sum(-2)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(got, (v, w), g), torch.autograd.grad(want, (v, w), g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
