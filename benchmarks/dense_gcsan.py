"""GC-SAN with a dense per-session adjacency, as RecBole computes it.

This is the baseline of the parity tests and of the benchmarks: every
forward pass loops over the sessions in Python/NumPy to build a
``[B, L, 2L]`` adjacency, runs the gated cell with dense matmuls, and runs
the encoder on sequences padded to the full length ``L`` with an additive
causal + padding mask. Its module names equal RecBole's, so
``DenseGCSAN.load_state_dict(to_recbole_state_dict(gcsan))`` (see
:func:`gcsan_pyg.interop.recbole.to_recbole_state_dict`) holds the same
weights as the PyG model.

It lives in ``benchmarks/``, outside the package, as PyG keeps its
baselines apart from ``torch_geometric``: it is a yardstick (of speed in the
benchmarks, of correctness in the parity tests, which import it from here),
not a model anyone should train or install.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gcsan_pyg.nn.self_attention import ACTIVATIONS

STACKINGS = ("reference", "numpy")


def dense_session_adjacency(
    item_seq: np.ndarray, stacking: str = "reference"
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Per-session loop building, for right-padded :obj:`item_seq` of shape
    :obj:`[B, L]`, the node items :obj:`[B, L]` (distinct ids, ascending,
    0-padded), the alias :obj:`[B, L]` (node of each position) and the
    adjacency :obj:`[B, L, 2L]` whose first half holds
    :math:`A^{in}_{vu} = 1/\deg_{in}(v)` and second half
    :math:`A^{out}_{uv} = 1/\deg_{out}(u)` for every distinct edge
    :math:`u \to v`.

    It follows the reference step by step, cost included: a node lookup
    (:func:`numpy.where`) per transition and per position, a float64
    :math:`L \times L` matrix per session, Python lists of the per-session
    results.

    Args:
        item_seq (numpy.ndarray): the padded sessions.
        stacking (str, optional): how the lists become tensors:
            :obj:`"reference"` hands them to the legacy
            :class:`torch.LongTensor` / :class:`torch.FloatTensor`
            constructors as the reference does, which read the list of
            float64 matrices number by number (most of this function's time
            at :math:`L = 50`); :obj:`"numpy"` stacks them with NumPy first,
            a faster variant the reference does not have.
            (default: :obj:`"reference"`)

    Returns:
        :obj:`(nodes, alias, adjacency)` as CPU tensors (int64, int64,
        float32).
    """
    if stacking not in STACKINGS:
        raise ValueError(f"'stacking' must be one of {STACKINGS}, got {stacking!r}")
    max_len = item_seq.shape[1]
    nodes, alias, adjacency = [], [], []
    for session in item_seq:
        distinct = np.unique(session)  # includes 0 when the session is padded
        nodes.append(distinct.tolist() + [0] * (max_len - len(distinct)))
        edges = np.zeros((max_len, max_len))
        for t in range(max_len - 1):
            if session[t + 1] == 0:
                break
            u = np.where(distinct == session[t])[0][0]
            v = np.where(distinct == session[t + 1])[0][0]
            edges[u][v] = 1
        in_degree = edges.sum(axis=0)
        in_degree[in_degree == 0] = 1
        out_degree = edges.sum(axis=1)
        out_degree[out_degree == 0] = 1
        incoming = edges / in_degree  # column v scaled by 1 / deg_in(v)
        outgoing = edges.T / out_degree  # column u scaled by 1 / deg_out(u)
        adjacency.append(np.concatenate([incoming, outgoing]).T)
        alias.append([np.where(distinct == item)[0][0] for item in session])
    if stacking == "numpy":
        return (
            torch.from_numpy(np.asarray(nodes, dtype=np.int64)),
            torch.from_numpy(np.asarray(alias, dtype=np.int64)),
            torch.from_numpy(np.asarray(adjacency, dtype=np.float32)),
        )
    with warnings.catch_warnings():
        # torch warns that a list of arrays converts slowly: the reference's cost.
        warnings.simplefilter("ignore", UserWarning)
        return torch.LongTensor(nodes), torch.LongTensor(alias), torch.FloatTensor(adjacency)


class DenseGNN(nn.Module):
    """The gated cell with dense matmuls over ``[B, L, 2L]`` adjacencies."""

    def __init__(self, hidden_size: int, step: int = 1) -> None:
        super().__init__()
        self.step = step
        self.w_ih = nn.Parameter(torch.empty(3 * hidden_size, 2 * hidden_size))
        self.w_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.b_ih = nn.Parameter(torch.empty(3 * hidden_size))
        self.b_hh = nn.Parameter(torch.empty(3 * hidden_size))
        self.linear_edge_in = nn.Linear(hidden_size, hidden_size)
        self.linear_edge_out = nn.Linear(hidden_size, hidden_size)
        bound = 1.0 / math.sqrt(hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def forward(self, adjacency: Tensor, hidden: Tensor) -> Tensor:
        max_len = adjacency.size(1)
        for _ in range(self.step):
            incoming = adjacency[:, :, :max_len] @ self.linear_edge_in(hidden)
            outgoing = adjacency[:, :, max_len:] @ self.linear_edge_out(hidden)
            gates_a = F.linear(torch.cat([incoming, outgoing], -1), self.w_ih, self.b_ih)
            gates_h = F.linear(hidden, self.w_hh, self.b_hh)
            a_r, a_z, a_n = gates_a.chunk(3, -1)
            h_r, h_z, h_n = gates_h.chunk(3, -1)
            reset = torch.sigmoid(a_r + h_r)
            update = torch.sigmoid(a_z + h_z)
            new = torch.tanh(a_n + reset * h_n)
            hidden = (1 - update) * hidden + update * new
        return hidden


class _MultiHeadAttention(nn.Module):
    def __init__(self, heads: int, hidden: int, hidden_dropout: float, attn_dropout: float,
                 eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.out_dropout = nn.Dropout(hidden_dropout)

    def _split(self, x: Tensor) -> Tensor:
        batch_size, length, hidden = x.shape
        return x.view(batch_size, length, self.heads, hidden // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, additive_mask: Tensor) -> Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1)) + additive_mask
        probs = self.attn_dropout(torch.softmax(logits, dim=-1))
        context = (probs @ v).transpose(1, 2).reshape(x.shape)
        return self.LayerNorm(self.out_dropout(self.dense(context)) + x)


class _FeedForward(nn.Module):
    def __init__(self, hidden: int, inner: int, dropout: float, act: str, eps: float) -> None:
        super().__init__()
        self.dense_1 = nn.Linear(hidden, inner)
        self.dense_2 = nn.Linear(inner, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.act = ACTIVATIONS[act]

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense_2(self.act(self.dense_1(x)))) + x)


class _TransformerLayer(nn.Module):
    def __init__(self, heads: int, hidden: int, inner: int, hidden_dropout: float,
                 attn_dropout: float, act: str, eps: float) -> None:
        super().__init__()
        self.multi_head_attention = _MultiHeadAttention(heads, hidden, hidden_dropout,
                                                        attn_dropout, eps)
        self.feed_forward = _FeedForward(hidden, inner, hidden_dropout, act, eps)

    def forward(self, x: Tensor, additive_mask: Tensor) -> Tensor:
        return self.feed_forward(self.multi_head_attention(x, additive_mask))


class _TransformerEncoder(nn.Module):
    def __init__(self, n_layers: int, **kwargs) -> None:
        super().__init__()
        self.layer = nn.ModuleList([_TransformerLayer(**kwargs) for _ in range(n_layers)])

    def forward(self, x: Tensor, additive_mask: Tensor) -> Tensor:
        for layer in self.layer:
            x = layer(x, additive_mask)
        return x


class DenseGCSAN(nn.Module):
    r"""GC-SAN over dense padded adjacencies (the RecBole formulation).

    Takes the same arguments as :class:`gcsan_pyg.GCSAN`, plus
    :obj:`stacking` (see :func:`dense_session_adjacency`), and RecBole-style
    inputs: right-padded :obj:`item_seq` :obj:`[B, L]` and
    :obj:`item_seq_len` :obj:`[B]`.
    """

    def __init__(
        self,
        num_items: int,
        hidden_channels: int = 64,
        num_layers: int = 1,
        num_heads: int = 1,
        inner_channels: int = 256,
        num_steps: int = 1,
        attention_weight: float = 0.6,
        hidden_dropout: float = 0.2,
        attn_dropout: float = 0.2,
        activation: str = "gelu",
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
        loss_type: str = "CE",
        reg_weight: float = 5e-5,
        stacking: str = "reference",
    ) -> None:
        super().__init__()
        if stacking not in STACKINGS:
            raise ValueError(f"'stacking' must be one of {STACKINGS}, got {stacking!r}")
        self.stacking = stacking
        self.num_items = num_items
        self.attention_weight = attention_weight
        self.loss_type = loss_type
        self.reg_weight = reg_weight
        self.item_embedding = nn.Embedding(num_items, hidden_channels, padding_idx=0)
        self.gnn = DenseGNN(hidden_channels, num_steps)
        self.self_attention = _TransformerEncoder(
            num_layers, heads=num_heads, hidden=hidden_channels, inner=inner_channels,
            hidden_dropout=hidden_dropout, attn_dropout=attn_dropout, act=activation,
            eps=layer_norm_eps,
        )
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, initializer_range)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        device = item_seq.device
        nodes, alias, adjacency = (
            t.to(device) for t in dense_session_adjacency(item_seq.cpu().numpy(), self.stacking)
        )

        hidden = self.gnn(adjacency, self.item_embedding(nodes))
        index = alias.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
        seq_hidden = hidden.gather(1, index)

        max_len = item_seq.size(1)
        keep = (item_seq > 0).unsqueeze(1).unsqueeze(2)
        keep = keep & torch.ones(max_len, max_len, dtype=torch.bool, device=device).tril()
        additive_mask = (1.0 - keep.to(seq_hidden.dtype)) * -10000.0
        encoded = self.self_attention(seq_hidden, additive_mask)

        last = (item_seq_len - 1).view(-1, 1, 1).expand(-1, 1, hidden.size(-1))
        attn_last = encoded.gather(1, last).squeeze(1)
        gnn_last = seq_hidden.gather(1, last).squeeze(1)
        omega = self.attention_weight
        return omega * attn_last + (1 - omega) * gnn_last

    def full_sort_scores(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        return self(item_seq, item_seq_len) @ self.item_embedding.weight.t()

    def loss(self, item_seq: Tensor, item_seq_len: Tensor, target: Tensor,
             neg_items: Tensor | None = None) -> Tensor:
        seq_output = self(item_seq, item_seq_len)
        if self.loss_type == "BPR":
            pos = (seq_output * self.item_embedding(target)).sum(-1)
            neg = (seq_output * self.item_embedding(neg_items)).sum(-1)
            loss = -torch.log(1e-10 + torch.sigmoid(pos - neg)).mean()
        else:
            loss = F.cross_entropy(seq_output @ self.item_embedding.weight.t(), target)
        table = self.item_embedding.weight
        return loss + self.reg_weight * torch.norm(table, p=2) / table.size(0)
