"""A local convolution stem: k-mer features for every element, never across a sequence boundary."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_channels
from .sequences import positions_in_sequence


class LocalConvStem(nn.Module):
    r"""A residual 1-d convolution over each sequence's own elements (zero beyond its ends):

    .. math::
        \mathbf{h}_i \leftarrow \mathbf{h}_i + \mathrm{GELU}\Big(\mathbf{b} + \sum_{o=-\lfloor k/2 \rfloor}^{k - 1 - \lfloor k/2 \rfloor}
            \mathbf{A}_o\, \mathbf{h}_{i + o}\, [0 \le i + o < n]\Big),

    where :math:`n` is the length of the element's own sequence. For DNA this turns embedded bases
    into local k-mer features before the mixing. In variable-length mode (``[T, C]`` with ``batch``)
    taps that fall outside the element's sequence read zero, exactly as for a sequence alone, so a
    sequence's output never depends on its batch (no wrap, no neighbour, no padding).

    Args:
        channels (int): Width :math:`C` (input and output).
        kernel_size (int, optional): Taps :math:`k`. (default: ``7``)

    Shapes:
        - **input:** :math:`(B, N, C)`, or :math:`(T, C)` with a sorted ``batch`` vector :math:`(T,)`.
        - **output:** the input's shape.
    """

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        check_channels(channels, "channels")
        check_channels(kernel_size, "kernel_size")
        self.channels, self.kernel_size = channels, kernel_size
        self.left = kernel_size // 2  # taps before the element; kernel_size - 1 - left after it
        self.conv = nn.Linear(kernel_size * channels, channels)  # [k·C] taps -> C
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def offsets(self) -> range:
        return range(-self.left, self.kernel_size - self.left)

    def taps(self, h: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        """The :math:`k` shifted copies, zero outside each sequence: [B, N, k·C] or [T, k·C]."""
        k, left = self.kernel_size, self.left
        if batch is None:
            padded = F.pad(h, (0, 0, left, k - 1 - left))  # [B, N + k - 1, C]
            n = h.size(-2)
            return torch.cat([padded[..., j:j + n, :] for j in range(k)], dim=-1)
        # the fixed-length taps of the concatenation (slices, no gathers), then the taps that fall
        # outside the element's own sequence set to zero
        t = h.size(0)
        pos, lengths = positions_in_sequence(batch)  # [T] position inside its sequence, [B]
        offsets = torch.arange(-left, k - left, device=h.device)  # [k]
        src = pos[:, None] + offsets[None, :]  # [T, k] position each tap reads
        inside = (src >= 0) & (src < lengths[batch][:, None])  # [T, k]
        padded = F.pad(h, (0, 0, left, k - 1 - left))  # [T + k - 1, C]
        taps = torch.stack([padded[j:j + t] for j in range(k)], dim=1)  # [T, k, C]
        taps = torch.where(inside[:, :, None], taps, taps.new_zeros(()))
        return taps.reshape(t, k * h.size(-1))  # [T, k, C] -> [T, k*C]

    def forward(self, h: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        return h + F.gelu(self.conv(self.taps(h, batch)))

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}"
