"""compiled_slot_mix (torch.compile kernels) equals the eager fused kernel; one compile, so marked slow."""
import pytest
import torch

import topologies
from sparsemix.kernels import compiled_slot_mix, fused_slot_mix


@pytest.mark.slow
def test_compiled_matches_eager_fp64():
    gen = torch.Generator().manual_seed(0)
    for n in (13, 200):  # dynamic N: the second length reuses the compiled kernels
        topo = topologies.cdil(n, num_factors=4)  # K = 9 for both lengths
        src, inv = topo.source_index(3), topo.inverse_index(3)
        v = torch.randn(2, n, 5, generator=gen, dtype=torch.float64, requires_grad=True)
        w = torch.randn(2, n, 9, generator=gen, dtype=torch.float64, requires_grad=True)
        g = torch.randn(2, n, 5, generator=gen, dtype=torch.float64)
        results = []
        for out in (fused_slot_mix(v, w, src, inv, topo.shifts(3)), compiled_slot_mix(v, w, src, inv)):
            results.append([out, *torch.autograd.grad(out, (v, w), g)])
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_compiled_checks_its_input_like_fused():
    topo = topologies.chord(4)
    with pytest.raises(ValueError, match="src must be"):
        compiled_slot_mix(torch.randn(5, 2), torch.randn(5, 3), topo.source_index(0), topo.inverse_index(0))
