"""A pre-norm encoder layer around the Paramixer mixing: LayerNorm → mixing → residual, LayerNorm →
FFN → residual. The paper block (:class:`~sparsemix.Paramixer`) is the mixing, unchanged."""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

import topologies

from ._checks import check_channels, check_dtype, check_tensor
from .sequences import positions_in_sequence
from .paramixer import Paramixer

MIX_INITS = ("sum", "stable", "paper")
#: ``score_scale=`` of ``mix_mode="average"``: scores as they are, or times ln(n) of their sequence.
SCORE_SCALES = ("none", "log-length")
#: ``mix_mode=``: "sum" (the product applied to g(U), then LN_mix) or "average" (a normalised,
#: attention-like weighted average through the product; see the class docstring).
MIX_MODES = ("sum", "average")

# softplus(_ON) = 1 and softplus(_OFF) ~ 0.0067: the "sum" init of the positive factor values of
# mix_mode="average" (the slot of offset 2^m on, the others nearly off).
_ON, _OFF = math.log(math.e - 1.0), -5.0
# exp(score - max) is floored at exp(-_SCORE_FLOOR): a row whose every source scores far below the
# sequence's best keeps a positive denominator in fp32 (e^-30 * 2^20 sources is still < 1e-6).
_SCORE_FLOOR = 30.0


class ParamixerEncoderLayer(nn.Module):
    r"""Paramixer mixing inside a pre-norm encoder layer (the Transformer layer's layout, with the
    attention replaced by the product of sparse factors):

    .. math::
        \mathbf{U} &= \mathrm{LN}_1(\mathbf{H}), \\
        \mathbf{H} &\leftarrow \mathbf{H} + \mathrm{drop}\Big(\mathrm{LN}_{\mathrm{mix}}\big(
            (\mathbf{I} + \mathbf{W}^{(M)}_{\mathbf{U}}) \cdots (\mathbf{I} + \mathbf{W}^{(1)}_{\mathbf{U}})\,
            g(\mathbf{U})\big)\Big), \\
        \mathbf{H} &\leftarrow \mathbf{H} + \mathrm{drop}\big(\mathrm{FFN}(\mathrm{LN}_2(\mathbf{H}))\big),

    where every factor's values :math:`\mathbf{W}^{(m)}_{\mathbf{U}}[i, \cdot] = f^{(m)}(\mathbf{u}_i)` are
    computed from the layer's *normalised input* :math:`\mathbf{U}` (which carries the learned
    positions of the embedding), and :math:`\mathrm{FFN} = \mathrm{Linear}(C \to F) \to \mathrm{GELU}
    \to \mathrm{Linear}(F \to C)` acts per element. The nonlinearity after the mixing lets a layer
    combine what the mixing gathered (e.g. "a Y comes later") with the element itself, which the
    paper block (linear in :math:`g(\mathbf{V})` for fixed weights) cannot do before the pooling.

    **The mixing's scale.** The product of factors can sum over up to :math:`N` elements, so its
    output's scale depends on :math:`N` and on what it learned; :math:`\mathrm{LN}_{\mathrm{mix}}`
    (``mix_norm=True``) normalises it per element before the residual, so a few informative elements
    (two markers among thousands) are not diluted by :math:`1/N`.

    **Wrap gate** (``wrap_gate=True``). CHORD and CDIL wrap around the sequence's end, so with
    uniform values the product is circulant and cannot tell "X before Y" from "Y before X" unless
    the weight MLPs learn to switch the wrapped edges off from the positions (slow to learn). The
    gate multiplies the values of wrapped edges by a learned :math:`\gamma_{m,k}`, initialised to 0:
    with the ``"sum"`` init the product then starts as the exact suffix sum
    :math:`\sum_{j \ge i}` (information flows from later elements to earlier ones, every pair
    through one path of weight 1), and learning :math:`\gamma \ne 0` brings the circular links
    back wherever they help. The gate depends only on positions, so it is variable-length safe.

    **Average mode** (``mix_mode="average"``). The product above *sums* over up to :math:`N`
    elements, so what two marked elements among :math:`N` contribute is a :math:`1/N` share of the
    branch, and its gradient shrinks with :math:`N`. In average mode the mixing is a normalised,
    attention-like average over the same factor graphs instead: every element scores itself,
    :math:`s_j = \mathbf{a}^\top \mathbf{u}_j` (one score per head, :math:`H` heads of
    :math:`C/H` channels), the factor values are made positive (:math:`\mathrm{softplus}`), and

    .. math::
        \mathbf{A} = (\mathbf{I} + \mathbf{W}^{(M)}_+) \cdots (\mathbf{I} + \mathbf{W}^{(1)}_+), \qquad
        \mathbf{o}_i = \frac{\sum_j A_{ij}\, e^{s_j}\, g(\mathbf{u}_j)}{\sum_j A_{ij}\, e^{s_j}},

    both sums computed by one pass of the factors over :math:`[e^{s} \odot g(\mathbf{U}),\, e^{s}]`
    (:math:`C + H` channels). With the ``"sum"`` init (:math:`\mathbf{A}` = all ones) every element
    starts as a softmax-weighted average over the whole sequence, as one attention query would: two
    marked elements can take all the weight whatever :math:`N` is, and the output's scale does not
    depend on :math:`N` (so no :math:`\mathrm{LN}_{\mathrm{mix}}`). Learned factor values then shape
    *where* each element looks (the routing), the scores *what* it looks for. Exact: scores are
    shifted by their sequence's maximum (a per-sequence constant cancels) and floored 30 below it.

    **Initialisation** (``mix_init``). ``"sum"`` (default): factor :math:`m` starts as
    :math:`\mathbf{I} + \mathbf{P}^{2^{m-1}}` (weight 1 on the slot of offset :math:`2^{m-1}`, 0 on the
    others, plus small noise :math:`\mathcal{N}(0, 0.1^2)`), so for :math:`N = 2^M` the product is
    the all-ones matrix: every element receives every other through exactly one path of weight 1,
    and gradients reach every factor at every distance from the first step. Learning then only has
    to gate edges (e.g. drop the wrapped ones to get a suffix sum, which gives order). ``"stable"``
    is :class:`~sparsemix.Paramixer`'s (product near the identity: paths of :math:`p` hops carry
    :math:`\sim (KM)^{-p/2}`, so long-range signal starts vanishingly small); ``"paper"`` the official
    PyTorch-default init.

    LayerNorm and the FFN act per element, and the mixing keeps every sequence on its own topology,
    so in variable-length mode (``[T, C]`` with ``batch``) nothing crosses sequences and there is no
    padding anywhere.

    Args:
        channels (int): Width :math:`C`.
        max_len (int, optional): Longest sequence (sets :math:`M`); see :class:`~sparsemix.Paramixer`.
        protocol (str, optional): ``"chord"`` or ``"cdil"``. (default: ``"chord"``)
        hidden_channels (int, optional): Hidden width of ``g`` and the weight MLPs. (default: ``C``)
        ffn_channels (int, optional): Hidden width :math:`F` of the FFN. (default: ``2 C``)
        dropout (float, optional): Dropout on both residual branches. (default: ``0.0``)
        mix_norm (bool, optional): LayerNorm on the mixing's output (see above). (default: ``True``)
        mix_init (str, optional): ``"sum"``, ``"stable"`` or ``"paper"`` (see above).
            (default: ``"sum"``)
        mix_gain (float, optional): Initial gain of :math:`\mathrm{LN}_{\mathrm{mix}}`. With the
            ``"sum"`` init the mixing branch starts as the same per-sequence vector at every
            element; at gain 1 it drowns the per-element features (two markers among :math:`N`
            elements); a smaller gain starts the layer closer to its per-element path and the
            mixing grows where it helps (Temporal Order at :math:`N = 2^7` solved in 200 steps
            at 0.3, not in 400 at 1; docs/learning.md). (default: ``0.3``)
        wrap_gate (bool, optional): Multiply every factor value whose edge wraps around the end of
            its sequence (source :math:`i + o_k \notin [0, n)`) by a learned per-(factor, slot) scalar
            :math:`\gamma_{m,k}` that starts at 0 (see above; used as :math:`\max(\gamma, 0)` with
            ``mix_mode="average"``, so values stay positive). ``False``: the circular factors
            as they are. (default: ``False``)
        mix_mode (str, optional): ``"sum"`` or ``"average"`` (see above). (default: ``"sum"``)
        score_scale (str, optional): ``"log-length"`` multiplies every score by :math:`\ln n` of
            its sequence, so a score gap :math:`\Delta` weighs an element against another by
            :math:`n^{\Delta}`: the share of :math:`n` unwanted elements, :math:`n^{1 - \Delta}`,
            then *shrinks* with :math:`n` once :math:`\Delta > 1` (what lets a model trained on
            short sequences pick out the same few elements among many more). ``"none"``: the
            scores as they are. (default: ``"none"``)
        num_heads (int, optional): Score heads :math:`H` of ``mix_mode="average"`` (:math:`C/H`
            channels each, one routing :math:`\mathbf{A}` for all). (default: ``1``)
        mixing (bool, optional): ``False`` replaces the mixing by the identity (the branch is then
            ``g(U)`` alone, per element): an ablation with the same parameters minus the factors.
            (default: ``True``)
        **mixer_kwargs: Passed to :class:`~sparsemix.Paramixer` (``num_factors``, ``backend``,
            ``init``, ``radius``, ...).

    Shapes:
        - **input:** :math:`(B, N, C)` or :math:`(N, C)`, or :math:`(T, C)` with a sorted ``batch``
          vector :math:`(T,)`.
        - **output:** the input's shape.
    """

    def __init__(self, channels: int, max_len: Optional[int] = None, protocol: str = "chord",
                 hidden_channels: Optional[int] = None, ffn_channels: Optional[int] = None,
                 dropout: float = 0.0, mix_norm: bool = True, mix_init: str = "sum",
                 wrap_gate: bool = False, mix_gain: float = 0.3, mixing: bool = True,
                 mix_mode: str = "sum", num_heads: int = 1, score_scale: str = "none",
                 **mixer_kwargs) -> None:
        super().__init__()
        check_channels(channels, "channels")
        check_channels(ffn_channels, "ffn_channels", optional=True)
        if "init" in mixer_kwargs:
            raise ValueError("ParamixerEncoderLayer sets its factors' init with mix_init, not init")
        if isinstance(mix_gain, bool) or not isinstance(mix_gain, (int, float)) \
                or not 0.0 < mix_gain < math.inf:
            raise ValueError(f"mix_gain must be a positive number, got {mix_gain!r}")
        if mix_init not in MIX_INITS:
            raise ValueError(f"mix_init must be one of {MIX_INITS}, got {mix_init!r}")
        if mix_mode not in MIX_MODES:
            raise ValueError(f"mix_mode must be one of {MIX_MODES}, got {mix_mode!r}")
        if score_scale not in SCORE_SCALES:
            raise ValueError(f"score_scale must be one of {SCORE_SCALES}, got {score_scale!r}")
        check_channels(num_heads, "num_heads")
        if channels % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide channels ({channels})")
        self.channels = channels
        self.ffn_channels = ffn_channels or 2 * channels
        self.mixing, self.mix_init, self.mix_gain = mixing, mix_init, mix_gain
        self.mix_mode, self.num_heads, self.score_scale = mix_mode, num_heads, score_scale
        self.norm1 = nn.LayerNorm(channels)
        self.mixer = Paramixer(channels, protocol=protocol, max_len=max_len,
                               hidden_channels=hidden_channels,
                               init="paper" if mix_init == "paper" else "stable", **mixer_kwargs)
        self.mix_norm = (nn.LayerNorm(channels) if mix_norm and mix_mode == "sum"
                         else nn.Identity())  # an average needs no rescaling
        # no bias: a per-head constant cancels in the average (it would get no gradient and drift)
        self.score = nn.Linear(channels, num_heads, bias=False) if mix_mode == "average" else None
        m, k = self.mixer.num_factors, self.mixer.num_slots
        self.wrap_gate = nn.Parameter(torch.zeros(m, k)) if wrap_gate else None  # [M, K] gamma
        offsets = topologies.get(protocol, max(2, 2 ** m), num_factors=m,
                                 radius=self.mixer.radius).offsets  # [M, K], before any wrap
        self.register_buffer("offsets", offsets, persistent=False)
        self.backward_offsets = bool((offsets < 0).any())  # CDIL's; CHORD only looks ahead
        self.same_offsets = bool((offsets == offsets[:1]).all())  # CHORD's
        self.norm2 = nn.LayerNorm(channels)
        self.ffn = nn.Sequential(nn.Linear(channels, self.ffn_channels), nn.GELU(),
                                 nn.Linear(self.ffn_channels, channels))
        self.drop = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.norm1.reset_parameters()
        self.norm2.reset_parameters()
        self.mixer.reset_parameters()
        if self.mix_init == "sum":
            self._sum_init()
        if isinstance(self.mix_norm, nn.LayerNorm):
            self.mix_norm.reset_parameters()
            nn.init.constant_(self.mix_norm.weight, self.mix_gain)
        if self.wrap_gate is not None:
            nn.init.zeros_(self.wrap_gate)
        if self.score is not None:  # start from a plain average: scores grow where they help
            nn.init.zeros_(self.score.weight)
        for layer in (self.ffn[0], self.ffn[2]):
            layer.reset_parameters()

    @torch.no_grad()
    def _sum_init(self, noise: float = 0.1) -> None:
        """Factor m's values start at 1 on the slot whose offset is 2^m (0-based m), ~0 elsewhere."""
        on, off = (_ON, _OFF) if self.mix_mode == "average" else (1.0, 0.0)
        jumps = 2 ** torch.arange(self.offsets.size(0), device=self.offsets.device)  # [M]
        like = self.mixer.factors[0].weight_layers[1].bias  # the values' dtype: _ON exact in fp64
        bias = torch.full(self.offsets.shape, off, dtype=like.dtype, device=like.device)  # [M, K]
        bias[self.offsets == jumps[:, None]] = on
        self.mixer.init_factor_values(bias, noise)

    def gates(self, h: Tensor, batch: Optional[Tensor] = None) -> Optional[list[Tensor]]:
        r"""The M wrap-gate tensors [N, K] (or [T, K] with ``batch``): 1 for edges inside the
        sequence, :math:`\gamma_{m,k}` for edges that wrap."""
        if self.wrap_gate is None:
            return None
        if batch is None:
            n = h.size(-2)
            pos = torch.arange(n, device=h.device)  # [N]
            room = n - pos  # [N]: positions from each element to its sequence's end
        else:
            pos, length = positions_in_sequence(batch)  # [T], [B]
            room = length[batch] - pos  # [T]
        # int32 and one [N, K] factor at a time: an [M, T, K] int64 table cost 154 ms a layer at
        # T = 40k, these masks 37 ms
        pos, room = pos.int().unsqueeze(-1), room.int().unsqueeze(-1)  # [N, 1]
        offsets = self.offsets.int()  # [M, K]
        gamma = self.wrap_gate.to(h.dtype)  # [M, K]
        if self.mix_mode == "average":  # values stay >= 0: a closed gate is exactly 0
            gamma = gamma.clamp(min=0.0)
        one = torch.ones((), dtype=h.dtype, device=h.device)
        gates, wrapped = [], None
        for off, g in zip(offsets, gamma):  # the source pos + off wraps when it leaves [0, n)
            if wrapped is None or not self.same_offsets:  # CHORD's factors share one mask
                wrapped = off >= room  # [N, K]
                if self.backward_offsets:
                    wrapped |= off < -pos
            gates.append(torch.where(wrapped, g, one))  # [N, K]
        return gates

    def forward(self, h: Tensor, batch: Optional[Tensor] = None,
                return_weights: bool = False) -> Union[Tensor, tuple[Tensor, list[Tensor]]]:
        check_tensor(h, "h")
        check_dtype(h, "h", self.norm1.weight)
        u = self.norm1(h)
        weights: list[Tensor] = []
        if not self.mixing:
            mixed = self.mixer.value(u)  # the same g, no factors
        elif self.mix_mode == "average":
            mixed, weights = self._average(u, batch)
        else:
            mixed = self.mixer(u, x=u, batch=batch, return_weights=return_weights,
                               weight_gates=self.gates(h, batch))
            if return_weights:
                mixed, weights = mixed
        h = h + self.drop(self.mix_norm(mixed))
        h = h + self.drop(self.ffn(self.norm2(h)))
        return (h, weights) if return_weights else h

    def _average(self, u: Tensor, batch: Optional[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """``mix_mode="average"``: the score-weighted average through the positive factors (see the
        class docstring); returns it and the factor values used."""
        mixer, heads = self.mixer, self.num_heads
        topo = mixer.topology_of(u, batch)
        weights = [F.softplus(w) for w in mixer.factor_weights(u)]
        gates = self.gates(u, batch)
        if gates is not None:
            weights = [w * g for w, g in zip(weights, gates)]
        s = self.score(u)  # [*, N, H]
        if self.score_scale == "log-length":
            s = s * self._log_length(u, batch)
        if batch is None:
            top = s.detach().amax(dim=-2, keepdim=True)  # [*, 1, H]: per sequence and head
        else:
            top = scatter(s.detach(), batch, dim=0, reduce="max")[batch]  # [T, H]
        e = torch.exp((s - top).clamp(min=-_SCORE_FLOOR))  # [*, N, H], in (0, 1]
        v = mixer.value(u)
        v = v.unflatten(-1, (heads, -1)) * e.unsqueeze(-1)  # [*, N, C] -> [*, N, H, C/H]
        both = mixer.mix(torch.cat([v.flatten(-2), e], dim=-1), weights, topo)  # [*, N, C + H]
        num, den = both.split([self.channels, heads], dim=-1)
        out = num.unflatten(-1, (heads, -1)) / den.unsqueeze(-1)  # [*, N, H, C/H]
        return mixer.dropout(out.flatten(-2)), weights

    @staticmethod
    def _log_length(u: Tensor, batch: Optional[Tensor]) -> Tensor:
        """ln n of every element's sequence: a number, or [T, 1] with ``batch``."""
        if batch is None:
            return torch.tensor(math.log(max(2, u.size(-2))), dtype=u.dtype, device=u.device)
        _, lengths = positions_in_sequence(batch)  # [B]
        return lengths[batch].clamp(min=2).to(u.dtype).log().unsqueeze(-1)  # [T, 1]

    def extra_repr(self) -> str:
        return (f"{self.channels}, ffn_channels={self.ffn_channels}, mix_init={self.mix_init!r}, "
                f"wrap_gate={self.wrap_gate is not None}, mixing={self.mixing}, "
                f"mix_mode={self.mix_mode!r}, num_heads={self.num_heads}, "
                f"score_scale={self.score_scale!r}")
