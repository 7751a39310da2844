"""Reverse-complement-conjoined prediction: average a DNA model's logits over both strands."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..nn import positions_in_sequence


class ReverseComplementConjoined(nn.Module):
    r"""Wraps a sequence model :math:`f` so that, in eval mode, it predicts from both strands
    (post-hoc conjoining, as Caduceus; Schiff et al., 2024):

    .. math::
        \hat{\mathbf{y}}(\mathbf{x})
        = \tfrac{1}{2}\big(f(\mathbf{x}) + f(\mathrm{rc}(\mathbf{x}))\big),
        \qquad \mathrm{rc}(\mathbf{x})_i = \kappa(x_{n-1-i}),

    where :math:`\kappa` is the token complement (A <-> T, C <-> G; N and the specials map to
    themselves) and :math:`n` the length of the element's own sequence: in variable-length mode
    each sequence is reversed within its own rows of ``[T]``, so nothing moves between sequences.
    Because :math:`\mathrm{rc}` is an involution, a sequence and its reverse complement get the
    same output (bit for bit: the two terms are the same numbers, added in the other order).

    In training mode the wrapper is the identity (:math:`f(\mathbf{x})` alone): conjoining is
    post hoc, so training costs one forward pass, and with ``--reverse-complement`` augmentation
    the model sees both strands while it learns, which is Caduceus' recipe. Validation runs in
    eval mode, so model selection sees the conjoined prediction it will be judged on.

    The wrapper has no parameters or persistent buffers of its own (its state dict is the
    model's, under ``model.``), and attributes it does not have are read from the wrapped model
    (``embed``, ``blocks``, ...), so code that inspects a model works on either.

    Args:
        model (nn.Module): A model called as ``model(tokens)`` ([B, N]) or ``model(tokens, batch)``
            ([T] with a sorted ``batch``) that returns one output row per sequence.
        complement (sequence of int or LongTensor): Token id -> the id of its complement, for
            every id of the vocabulary (e.g. from :class:`sparsemix.data.DNATokenizer`); must be
            an involution.

    Shapes:
        - **input:** tokens :math:`(B, N)`, or :math:`(T,)` with a sorted ``batch`` :math:`(T,)`.
        - **output:** the model's, e.g. :math:`(B, \text{classes})`.
    """

    def __init__(self, model: nn.Module, complement: Union[Sequence[int], Tensor]) -> None:
        super().__init__()
        lut = torch.as_tensor(complement)
        if lut.dim() != 1 or lut.numel() == 0 or lut.dtype not in (torch.int32, torch.int64):
            raise ValueError("complement must be a non-empty 1-d list of token ids, "
                             f"got {complement!r}")
        lut = lut.long()
        ids = torch.arange(lut.numel())
        if bool(((lut < 0) | (lut >= lut.numel())).any()) or not torch.equal(lut[lut], ids):
            raise ValueError("complement must map every token id to a token id and be an "
                             f"involution (its own inverse), got {lut.tolist()}")
        self.model = model
        self.register_buffer("complement", lut, persistent=False)  # given, not learned

    def reverse_complement(self, tokens: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        """Every sequence reversed within its own rows and complemented (shape of ``tokens``)."""
        size = self.complement.numel()
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= size):
            raise ValueError(f"token ids must be in [0, {size}) to be "
                             f"complemented, got range [{int(tokens.min())}, {int(tokens.max())}]")
        if batch is None:
            if tokens.dim() != 2:
                raise ValueError("tokens must be [B, N] (or [T] with batch), got "
                                 f"{list(tokens.shape)}")
            return self.complement[tokens].flip(-1)
        if tokens.dim() != 1 or batch.numel() != tokens.numel():
            raise ValueError(f"tokens must be [T] with a batch vector of T entries, got tokens "
                             f"{list(tokens.shape)} and batch {list(batch.shape)}")
        pos, lengths = positions_in_sequence(batch)  # [T], [B]
        start = torch.arange(tokens.numel(), device=tokens.device) - pos  # its sequence's first row
        return self.complement[tokens[start + lengths[batch] - 1 - pos]]

    def forward(self, tokens: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        out = self.model(tokens) if batch is None else self.model(tokens, batch)
        if self.training:
            return out
        rc = self.reverse_complement(tokens, batch)
        out_rc = self.model(rc) if batch is None else self.model(rc, batch)
        return (out + out_rc) / 2

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            # read-through to the wrapped model (plots and tools look at embed/blocks/stem)
            return getattr(super().__getattr__("model"), name)
