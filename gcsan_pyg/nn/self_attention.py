"""The causal post-LayerNorm self-attention encoder of GC-SAN."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax, to_dense_batch

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,  # the exact (erf) form, as in the reference
    "relu": F.relu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


class SelfAttentionLayer(nn.Module):
    r"""One post-LayerNorm transformer layer: multi-head causal
    self-attention, then a point-wise feed-forward network,

    .. math::
        \mathbf{X}' &= \mathrm{LN}(\mathbf{X} + \mathrm{Drop}(
            \mathrm{MHA}(\mathbf{X}) \mathbf{W}_O + \mathbf{b}_O)) \\
        \mathbf{X}'' &= \mathrm{LN}(\mathbf{X}' + \mathrm{Drop}(
            \phi(\mathbf{X}' \mathbf{W}_1 + \mathbf{b}_1) \mathbf{W}_2 + \mathbf{b}_2))

    The queries, keys and values come from one fused projection, and the
    attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`.

    Args:
        channels (int): model width :math:`F`.
        num_heads (int): attention heads; must divide :obj:`channels`.
        inner_channels (int): width of the feed-forward layer.
        hidden_dropout (float): dropout after attention and feed-forward.
        attn_dropout (float): dropout on the attention probabilities.
        activation (str): one of :obj:`"gelu"`, :obj:`"relu"`,
            :obj:`"swish"`, :obj:`"tanh"`, :obj:`"sigmoid"`.
        layer_norm_eps (float): epsilon of both layer norms.

    Shapes:
        - **input:** :math:`(B, L, F)`
        - **output:** :math:`(B, L, F)`
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        inner_channels: int,
        hidden_dropout: float,
        attn_dropout: float,
        activation: str,
        layer_norm_eps: float,
    ) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(
                f"'hidden_channels'={channels} is not a multiple of 'num_heads'={num_heads}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        self.qkv = nn.Linear(channels, 3 * channels)
        self.attn_out = nn.Linear(channels, channels)
        self.attn_norm = nn.LayerNorm(channels, eps=layer_norm_eps)
        self.ffn_in = nn.Linear(channels, inner_channels)
        self.ffn_out = nn.Linear(inner_channels, channels)
        self.ffn_norm = nn.LayerNorm(channels, eps=layer_norm_eps)
        self.dropout = nn.Dropout(hidden_dropout)

    def forward(self, x: Tensor) -> Tensor:
        r"""Every position of right-padded sequences :obj:`x` :math:`(B, L, F)`."""
        batch_size, seq_len, channels = x.shape
        qkv = self.qkv(x).view(batch_size, seq_len, 3, self.num_heads, -1)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, L, F / heads]
        context = F.scaled_dot_product_attention(
            query,
            key,
            value,
            dropout_p=self.attn_dropout if self.training else 0.0,
            is_causal=True,
        )
        context = context.transpose(1, 2).reshape(batch_size, seq_len, channels)
        return self._feed_forward(x, context)

    def forward_last(self, x: Tensor, click_session: Tensor, last_click: Tensor) -> Tensor:
        r"""Only the output at each session's last click, from the flat,
        unpadded click states :obj:`x` :math:`(P, F)`, with
        :obj:`click_session` :math:`(P)` and the index :obj:`last_click`
        :math:`(B)` of every session's last click.

        The last click attends to every click of its session (causality
        excludes nothing before it), so the attention is a softmax over each
        session's clicks: :math:`O(P)` work instead of :math:`O(B L^2)`.
        """
        num_clicks, channels = x.shape
        num_sessions = last_click.numel()
        heads = self.num_heads
        weight, bias = self.qkv.weight, self.qkv.bias
        x_last = x[last_click]
        query = F.linear(x_last, weight[:channels], bias[:channels])
        key_value = F.linear(x, weight[channels:], bias[channels:])
        key, value = key_value.view(num_clicks, 2, heads, -1).unbind(dim=1)
        query = query.view(num_sessions, heads, -1)
        logits = (query[click_session] * key).sum(dim=-1) / math.sqrt(key.size(-1))
        attn = softmax(logits, click_session, num_nodes=num_sessions)  # [P, heads]
        attn = F.dropout(attn, self.attn_dropout, self.training)
        context = scatter(
            attn.unsqueeze(-1) * value, click_session, dim=0, dim_size=num_sessions, reduce="sum"
        )
        return self._feed_forward(x_last, context.view(num_sessions, channels))

    def _feed_forward(self, x: Tensor, context: Tensor) -> Tensor:
        x = self.attn_norm(x + self.dropout(self.attn_out(context)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(self.act(self.ffn_in(x)))))


class SelfAttentionEncoder(nn.Module):
    r"""A stack of :class:`SelfAttentionLayer` over the clicks of a batch of
    sessions, returning the output at each session's last click.

    GC-SAN only reads the last click of the final layer, so that layer runs
    :meth:`SelfAttentionLayer.forward_last` on the flat clicks: no padding
    and one query per session. Earlier layers (if any) need every position
    and run causally on sequences padded to the batch's longest session;
    position :math:`t` of a right-padded session sees positions
    :math:`\leq t`, all real clicks, so a causal mask alone gives the
    outputs of the reference's causal + padding mask.

    Args:
        num_layers (int): number of layers.
        **layer_kwargs: arguments of :class:`SelfAttentionLayer`.

    Shapes:
        - **input:** click states :math:`(P, F)`, click-to-session index
          :math:`(P)` (sorted, clicks in order), last-click index :math:`(B)`
        - **output:** :math:`(B, F)`
    """

    def __init__(self, num_layers: int, **layer_kwargs) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"'num_layers' must be positive, got {num_layers}")
        self.layers = nn.ModuleList(
            [SelfAttentionLayer(**layer_kwargs) for _ in range(num_layers)]
        )

    def forward(self, x: Tensor, click_session: Tensor, last_click: Tensor) -> Tensor:
        if len(self.layers) > 1:
            dense, mask = to_dense_batch(x, click_session, batch_size=last_click.numel())
            for layer in self.layers[:-1]:
                dense = layer(dense)
            x = dense[mask]
        return self.layers[-1].forward_last(x, click_session, last_click)
