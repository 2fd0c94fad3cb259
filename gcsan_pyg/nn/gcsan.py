"""The GC-SAN model over batched session graphs."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import cumsum, degree

from gcsan_pyg.data.session_batch import build_session_batch
from gcsan_pyg.nn.blockwise_topk import blockwise_topk
from gcsan_pyg.nn.full_softmax import full_softmax_cross_entropy
from gcsan_pyg.nn.self_attention import SelfAttentionEncoder
from gcsan_pyg.nn.session_gated_conv import SessionGatedConv

LOSS_TYPES = ("CE", "BPR")
# recommend() scores at most this many entries (24 MiB of float32) at a time:
# larger buffers come fresh from the OS (mmap, page faults) on every call.
_SCORE_CHUNK_ELEMENTS = 6 * 2**20


class GCSAN(nn.Module):
    r"""GC-SAN, the Graph Contextualized Self-Attention Network of
    `"Graph Contextualized Self-Attention Network for Session-based
    Recommendation" <https://www.ijcai.org/proceedings/2019/547>`_ (Xu et al.,
    IJCAI 2019), computed exactly as RecBole's ``GCSAN``.

    A session's item embeddings run through :class:`SessionGatedConv` on its
    graph; the node states are placed back at the click positions
    :math:`\mathbf{s}_1, \dots, \mathbf{s}_n` and encoded by a causal
    self-attention stack into :math:`\mathbf{e}_1, \dots, \mathbf{e}_n`. The
    session representation mixes the last click of both,

    .. math::
        \mathbf{z} = \omega \, \mathbf{e}_n + (1 - \omega) \, \mathbf{s}_n,

    and item :math:`i` scores :math:`\mathbf{z}^\top \mathbf{v}_i`.

    Args:
        num_items (int): size of the item table, the padding id 0 included
            (so real ids are :obj:`1 .. num_items - 1`).
        hidden_channels (int, optional): embedding and state size.
            (default: :obj:`64`)
        num_layers (int, optional): self-attention layers. (default: :obj:`1`)
        num_heads (int, optional): attention heads. (default: :obj:`1`)
        inner_channels (int, optional): feed-forward width.
            (default: :obj:`256`)
        step (int, optional): gated-cell propagation steps.
            (default: :obj:`1`)
        weight (float, optional): :math:`\omega`, the share of the
            self-attention output. (default: :obj:`0.6`)
        hidden_dropout (float, optional): dropout in the encoder layers.
            (default: :obj:`0.2`)
        attn_dropout (float, optional): dropout on attention probabilities.
            (default: :obj:`0.2`)
        activation (str, optional): feed-forward activation.
            (default: :obj:`"gelu"`)
        layer_norm_eps (float, optional): layer-norm epsilon.
            (default: :obj:`1e-12`)
        initializer_range (float, optional): std of the normal
            initialisation of embeddings and linear layers.
            (default: :obj:`0.02`)
        loss_type (str, optional): :obj:`"CE"` (softmax over all items) or
            :obj:`"BPR"` (against sampled negatives). (default: :obj:`"CE"`)
        reg_weight (float, optional): weight of the embedding regulariser
            :math:`\lVert \mathbf{V} \rVert_2 / |\mathcal{I}|`.
            (default: :obj:`5e-5`)

    The input of :meth:`forward` is a batch of
    :class:`~gcsan_pyg.data.SessionData`, from
    :class:`torch_geometric.loader.DataLoader` or
    :func:`~gcsan_pyg.data.build_session_batch`.
    """

    def __init__(
        self,
        num_items: int,
        hidden_channels: int = 64,
        num_layers: int = 1,
        num_heads: int = 1,
        inner_channels: int = 256,
        step: int = 1,
        weight: float = 0.6,
        hidden_dropout: float = 0.2,
        attn_dropout: float = 0.2,
        activation: str = "gelu",
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
        loss_type: str = "CE",
        reg_weight: float = 5e-5,
    ) -> None:
        super().__init__()
        if num_items < 2:
            raise ValueError(f"'num_items' must be >= 2 (padding id 0 + one item), got {num_items}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"'weight' must lie in [0, 1], got {weight}")
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"'loss_type' must be one of {LOSS_TYPES}, got {loss_type!r}")
        for name, p in (("hidden_dropout", hidden_dropout), ("attn_dropout", attn_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"'{name}' must lie in [0, 1), got {p}")
        self.num_items = num_items
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.inner_channels = inner_channels
        self.step = step
        self.weight = weight
        self.hidden_dropout = hidden_dropout
        self.attn_dropout = attn_dropout
        self.activation = activation
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.loss_type = loss_type
        self.reg_weight = reg_weight

        self.item_embedding = nn.Embedding(num_items, hidden_channels, padding_idx=0)
        self.gnn = SessionGatedConv(hidden_channels, num_steps=step)
        self.encoder = SelfAttentionEncoder(
            num_layers,
            channels=hidden_channels,
            num_heads=num_heads,
            inner_channels=inner_channels,
            hidden_dropout=hidden_dropout,
            attn_dropout=attn_dropout,
            activation=activation,
            layer_norm_eps=layer_norm_eps,
        )
        self.reset_parameters()

    @property
    def hparams(self) -> dict[str, Any]:
        """The constructor arguments, enough to rebuild this model."""
        return {
            "num_items": self.num_items,
            "hidden_channels": self.hidden_channels,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "inner_channels": self.inner_channels,
            "step": self.step,
            "weight": self.weight,
            "hidden_dropout": self.hidden_dropout,
            "attn_dropout": self.attn_dropout,
            "activation": self.activation,
            "layer_norm_eps": self.layer_norm_eps,
            "initializer_range": self.initializer_range,
            "loss_type": self.loss_type,
            "reg_weight": self.reg_weight,
        }

    def reset_parameters(self) -> None:
        r"""The reference's scheme: the cell's own gate parameters
        :math:`U(-1/\sqrt{F}, 1/\sqrt{F})`; every embedding and linear weight
        :math:`\mathcal{N}(0, \text{initializer\_range}^2)` with zero bias
        (the cell's edge projections included); layer norms 1 and 0."""
        self.gnn.reset_parameters()
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, self.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, batch: Data) -> Tensor:
        r"""Session representations, shape :obj:`[B, hidden_channels]`."""
        return self._encode(batch)

    def _encode(self, batch: Data, sparse_lookup: bool = False) -> Tensor:
        # sparse_lookup: the item lookup's gradient as a sparse tensor. Only
        # for a loss that also sends the table a dense gradient: autograd then
        # adds the few looked-up rows into that one in place, where a dense
        # lookup gradient costs a zero-filled table and a full-table add.
        node_session = _node_session(batch)
        num_sessions = _num_sessions(batch)
        click_session = node_session[batch.alias]
        session_len = degree(click_session, num_sessions, dtype=torch.long)
        self._check_batch(batch.x, session_len)
        table = self.item_embedding
        h = F.embedding(batch.x, table.weight, table.padding_idx, sparse=sparse_lookup)
        h = self.gnn(h, batch.edge_index)

        seq_hidden = h[batch.alias]  # node states back at the click positions
        # Clicks are stored session by session, in order, so each session's
        # last click sits just before the next session's first one.
        last_click = cumsum(session_len)[1:] - 1
        attn_last = self.encoder(seq_hidden, click_session, last_click)
        return self.weight * attn_last + (1.0 - self.weight) * seq_hidden[last_click]

    def build_batch(
        self, item_seq: Tensor, item_seq_len: Tensor, target: Tensor | None = None
    ) -> Data:
        r"""The session graph batch of right-padded :obj:`item_seq`
        :obj:`[B, L]` with lengths :obj:`item_seq_len` :obj:`[B]`, checked
        against this model's item table (see
        :func:`~gcsan_pyg.data.build_session_batch`)."""
        return build_session_batch(item_seq, item_seq_len, target, num_items=self.num_items)

    def _check_batch(self, items: Tensor, session_len: Tensor) -> None:
        # For batches not made by build_session_batch: item ids in range and
        # no session without clicks, read back in one sync.
        if items.dtype.is_floating_point or items.dtype == torch.bool:
            raise ValueError(f"item ids 'x' must be integers, got dtype {items.dtype}")
        if items.numel() == 0:
            raise ValueError("the batch holds no click")
        smallest, largest = items.aminmax()
        checks = torch.stack([smallest, largest, session_len.min()]).tolist()
        smallest, largest, shortest = checks
        if smallest < 1 or largest >= self.num_items:
            value = smallest if smallest < 1 else largest
            raise ValueError(
                f"item id {value} in the batch is out of range: ids must lie in "
                f"[1, num_items - 1] = [1, {self.num_items - 1}]"
            )
        if shortest < 1:
            empty = int((session_len < 1).nonzero()[0])
            raise ValueError(f"session {empty} of the batch has no click")

    def full_sort_scores(self, batch: Data) -> Tensor:
        r"""Scores of every item (padding id 0 included), shape
        :obj:`[B, num_items]`."""
        return self(batch) @ self.item_embedding.weight.t()

    def score(self, batch: Data, items: Tensor) -> Tensor:
        r"""Score of one item per session, shape :obj:`[B]`."""
        return (self(batch) * self.item_embedding(items)).sum(dim=-1)

    @torch.no_grad()
    def recommend(self, batch: Data, k: int = 20, exclude_seen: bool = False) -> Tensor:
        r"""Top-:obj:`k` item ids per session, best first, shape :obj:`[B, k]`;
        never the padding id 0, nor (with :obj:`exclude_seen`) an item of the
        session itself (see :meth:`top_items`).

        Raises:
            ValueError: :obj:`k` exceeds the items that are left to a session
                (with :obj:`exclude_seen`: :obj:`num_items - 1` minus its
                distinct items)."""
        seen = (_node_session(batch), batch.x) if exclude_seen else None
        return self.top_items(self(batch), k, seen)

    @torch.no_grad()
    def top_items(
        self, session: Tensor, k: int = 20, seen: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        r"""Top-:obj:`k` item ids for session representations :obj:`session`
        :obj:`[B, hidden_channels]` (as :meth:`forward` returns them), best
        first, never the padding id 0 nor the items :obj:`seen` = (session
        index, item id) pairs, session indices ascending.

        The ranking is exact (:func:`~gcsan_pyg.nn.blockwise_topk`); sessions
        are scored some rows at a time, so that the score matrix of a large
        batch is never held whole.

        Raises:
            ValueError: :obj:`k` is not in :obj:`[1, num_items - 1]`, or
                exceeds the items left to a session once its :obj:`seen` ones
                are excluded (it would otherwise be given seen items or the
                padding id to fill its :obj:`k` places)."""
        available = self.num_items - 1
        if not 1 <= k <= available:
            raise ValueError(f"'k' must lie in [1, {available}] (the number of items), got {k}")
        if session.size(0) == 0:
            return torch.empty(0, k, dtype=torch.long, device=session.device)
        if seen is not None:
            _check_unseen_left(k, *seen, num_sessions=session.size(0), num_items=self.num_items)
        table_t = self.item_embedding.weight.t()
        num_chunks = -(-session.size(0) * self.num_items // _SCORE_CHUNK_ELEMENTS)
        rows = -(-session.size(0) // num_chunks)  # chunks of equal size
        top = []
        for start in range(0, session.size(0), rows):
            scores = session[start : start + rows] @ table_t
            scores[:, 0] = float("-inf")
            if seen is not None:
                seen_session, seen_item = seen
                first, last = torch.searchsorted(
                    seen_session, torch.tensor([start, start + rows], device=scores.device)
                ).tolist()
                scores[seen_session[first:last] - start, seen_item[first:last]] = float("-inf")
            top.append(blockwise_topk(scores, k)[1])
        return torch.cat(top)

    def loss(
        self,
        batch: Data,
        target: Tensor | None = None,
        neg_items: Tensor | None = None,
    ) -> Tensor:
        r"""Training loss: cross-entropy over all items (:obj:`loss_type="CE"`)
        or BPR of :obj:`target` against :obj:`neg_items`
        (:obj:`loss_type="BPR"`), plus :obj:`reg_weight` times the embedding
        regulariser. :obj:`target` defaults to :obj:`batch.y`.

        The item table's gradient is dense either way (with CE, the lookup's
        few rows are added into the full-softmax gradient in place), so any
        optimizer, fused Adam included, can step it."""
        if target is None:
            target = getattr(batch, "y", None)
            if target is None:
                raise ValueError("no 'target' given and the batch has no 'y'")
        if self.loss_type == "CE":
            # The fused CE sends the whole table a dense gradient (scores of
            # every item + regulariser), so the lookup's can be sparse.
            seq_output = self._encode(batch, sparse_lookup=True)
            # CE + regulariser in one fused op (see full_softmax_cross_entropy).
            return full_softmax_cross_entropy(
                seq_output, self.item_embedding.weight, target, self.reg_weight
            )
        if neg_items is None:
            raise ValueError("loss_type='BPR' needs 'neg_items'")
        seq_output = self(batch)
        pos_score = (seq_output * self.item_embedding(target)).sum(-1)
        neg_score = (seq_output * self.item_embedding(neg_items)).sum(-1)
        loss = -torch.log(1e-10 + torch.sigmoid(pos_score - neg_score)).mean()
        return loss + self.reg_weight * self.embedding_regularizer()

    def embedding_regularizer(self) -> Tensor:
        r""":math:`\lVert \mathbf{V} \rVert_2 / |\mathcal{I}|`, the L2 norm of the
        whole item table over its row count (the reference's ``EmbLoss``)."""
        table = self.item_embedding.weight
        return torch.linalg.vector_norm(table) / table.size(0)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_items={self.num_items}, "
            f"hidden_channels={self.hidden_channels}, num_layers={self.num_layers}, "
            f"num_heads={self.num_heads}, step={self.step}, weight={self.weight})"
        )


def _check_unseen_left(
    k: int, seen_session: Tensor, seen_item: Tensor, num_sessions: int, num_items: int
) -> None:
    """Raises the ValueError of :meth:`GCSAN.top_items` when a session has
    fewer than :obj:`k` items left once its (distinct, non-padding) seen
    items are excluded."""
    real = seen_item > 0
    pairs = torch.unique(seen_session[real] * num_items + seen_item[real])
    count = torch.bincount(pairs // num_items, minlength=num_sessions)
    most, session = (int(v) for v in torch.stack([count.max(), count.argmax()]).tolist())
    left = num_items - 1 - most
    if k > left:
        raise ValueError(
            f"'k' = {k} exceeds the {left} items left to session {session} once its {most} "
            f"seen items are excluded (of {num_items - 1}); ask for at most {left}"
        )


def _node_session(batch: Data) -> Tensor:
    node_session = getattr(batch, "batch", None)
    if node_session is None:  # a single, unbatched session graph
        node_session = batch.x.new_zeros(batch.x.size(0))
    return node_session


def _num_sessions(batch: Data) -> int:
    return int(batch.num_graphs) if hasattr(batch, "num_graphs") else 1
