"""The GC-SAN model over batched session graphs."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import cumsum, degree

from gcsan_pyg.data.session_batch import SessionBatch, build_session_batch, check_targets
from gcsan_pyg.nn.chunked_softmax import chunked_softmax_cross_entropy
from gcsan_pyg.nn.memory import check_item_table_fits
from gcsan_pyg.nn.ranking import rank_items
from gcsan_pyg.nn.sampled_softmax import SAMPLER_KINDS, NegativeSampler, SampledSoftmaxCrossEntropy
from gcsan_pyg.nn.self_attention import SelfAttentionEncoder
from gcsan_pyg.nn.session_gated_conv import SessionGatedConv

LOSS_TYPES = ("CE", "BPR", "sampled")


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
        hidden_channels (int, optional): embedding and state size
            (RecBole: ``hidden_size``). (default: :obj:`64`)
        num_layers (int, optional): self-attention layers (``n_layers``).
            (default: :obj:`1`)
        num_heads (int, optional): attention heads (``n_heads``).
            (default: :obj:`1`)
        inner_channels (int, optional): feed-forward width (``inner_size``).
            (default: :obj:`256`)
        num_steps (int, optional): gated-cell propagation steps (``step``).
            (default: :obj:`1`)
        attention_weight (float, optional): :math:`\omega`, the share of the
            self-attention output in the session vector (``weight``).
            (default: :obj:`0.6`)
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
        loss_type (str, optional): :obj:`"CE"` (exact softmax over all
            items), :obj:`"BPR"` (against one negative per session) or
            :obj:`"sampled"` (sampled softmax, see :meth:`loss`).
            (default: :obj:`"CE"`)
        reg_weight (float, optional): weight of the embedding regulariser
            :math:`\lVert \mathbf{V} \rVert_2 / |\mathcal{I}|` (CE and BPR).
            (default: :obj:`5e-5`)
        num_negatives (int, optional): sampled softmax: negatives per batch
            :math:`S`. (default: :obj:`1024`)
        negative_sampler (str, optional): sampled softmax:
            :obj:`"uniform"` or :obj:`"popularity"` (see
            :class:`~gcsan_pyg.nn.NegativeSampler`). (default:
            :obj:`"popularity"`)
        popularity_exponent (float, optional): sampled softmax: :math:`\alpha`
            of the popularity sampler. (default: :obj:`0.75`)
        in_batch_negatives (bool, optional): sampled softmax: the other
            sessions' targets are negatives too. (default: :obj:`False`)

    Shapes:
        - **input:**
          node item ids :math:`(|\mathcal{V}|)`,
          edge indices :math:`(2, |\mathcal{E}|)`,
          node of every click :math:`(P)` (sessions one after the other,
          clicks in order),
          session of every node :math:`(|\mathcal{V}|)` (ascending)
        - **output:** session vectors :math:`(B, F)`
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
        num_negatives: int = 1024,
        negative_sampler: str = "popularity",
        popularity_exponent: float = 0.75,
        in_batch_negatives: bool = False,
    ) -> None:
        super().__init__()
        if num_items < 2:
            raise ValueError(f"'num_items' must be >= 2 (padding id 0 + one item), got {num_items}")
        if not 0.0 <= attention_weight <= 1.0:
            raise ValueError(f"'attention_weight' must lie in [0, 1], got {attention_weight}")
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"'loss_type' must be one of {LOSS_TYPES}, got {loss_type!r}")
        if negative_sampler not in SAMPLER_KINDS:
            raise ValueError(f"'negative_sampler' must be one of {SAMPLER_KINDS}, got "
                             f"{negative_sampler!r}")
        for name, p in (("hidden_dropout", hidden_dropout), ("attn_dropout", attn_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"'{name}' must lie in [0, 1), got {p}")
        self.num_items = num_items
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.inner_channels = inner_channels
        self.num_steps = num_steps
        self.attention_weight = attention_weight
        self.hidden_dropout = hidden_dropout
        self.attn_dropout = attn_dropout
        self.activation = activation
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.loss_type = loss_type
        self.reg_weight = reg_weight
        self.num_negatives = num_negatives
        self.negative_sampler = negative_sampler
        self.popularity_exponent = popularity_exponent
        self.in_batch_negatives = in_batch_negatives

        check_item_table_fits(num_items, hidden_channels)
        # Sampled softmax: the table's gradient is sparse, which the module says
        # (DistributedDataParallel reads it to reduce sparse gradients).
        self.item_embedding = nn.Embedding(num_items, hidden_channels, padding_idx=0,
                                           sparse=loss_type == "sampled")
        self.gnn = SessionGatedConv(hidden_channels, num_steps=num_steps)
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
        names = ("num_items", "hidden_channels", "num_layers", "num_heads", "inner_channels",
                 "num_steps", "attention_weight", "hidden_dropout", "attn_dropout",
                 "activation", "layer_norm_eps", "initializer_range", "loss_type",
                 "reg_weight", "num_negatives", "negative_sampler", "popularity_exponent",
                 "in_batch_negatives")
        return {name: getattr(self, name) for name in names}

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

    def sampled_softmax(self, counts: Tensor | None = None) -> SampledSoftmaxCrossEntropy:
        r"""A sampled-softmax loss with this model's settings
        (:obj:`num_negatives`, :obj:`negative_sampler`,
        :obj:`popularity_exponent`, :obj:`in_batch_negatives`), for
        :meth:`loss` with :obj:`loss_type="sampled"`. Its sampler draws by
        :obj:`counts`, the training count of every item :obj:`[num_items]`
        (all ones when :obj:`None`). The loss object holds that state, not
        the model: a checkpoint's weights load into any loss type, and
        data-parallel steps broadcast nothing of size :obj:`num_items`."""
        if counts is None:
            counts = torch.ones(self.num_items)
        if counts.shape != (self.num_items,):
            raise ValueError(f"'counts' must have shape [{self.num_items}], got "
                             f"{tuple(counts.shape)}")
        sampler = NegativeSampler(counts, self.negative_sampler, self.popularity_exponent)
        return SampledSoftmaxCrossEntropy(sampler, self.num_negatives, self.in_batch_negatives)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        # Checkpoints written before the loss left the model hold the sampled
        # softmax's sampler under 'sampled_loss.': loss state, not weights.
        for key in [k for k in state_dict if k.startswith(prefix + "sampled_loss.")]:
            del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        alias: Tensor,
        batch: Tensor | None = None,
        num_sessions: int | None = None,
    ) -> Tensor:
        r"""Session vectors.

        Args:
            x (LongTensor): item id of every node.
            edge_index (LongTensor): the deduplicated transitions.
            alias (LongTensor): node of every click; a session's clicks are
                consecutive and in order, sessions ascending.
            batch (LongTensor, optional): session of every node; one session
                when :obj:`None`.
            num_sessions (int, optional): the number of sessions; read off
                :obj:`batch` (a device sync) when :obj:`None`.
        """
        return self._encode(x, edge_index, alias, batch, num_sessions)

    def encode(self, data: Data) -> Tensor:
        r""":meth:`forward` of a batch of :class:`~gcsan_pyg.data.SessionData`
        (from :func:`~gcsan_pyg.data.build_session_batch` or PyG's
        :class:`~torch_geometric.loader.DataLoader`) or of one such graph."""
        return self._encode(*_graph_tensors(data))

    def _encode(self, x: Tensor, edge_index: Tensor, alias: Tensor, batch: Tensor | None,
                num_sessions: int | None, sparse_lookup: bool = False,
                target: Tensor | None = None) -> Tensor:
        # sparse_lookup: the item lookup's gradient as a sparse tensor, for a
        # loss that sends the table a dense gradient anyway (autograd adds the
        # few looked-up rows into it in place; a dense lookup gradient costs a
        # zero-filled table and a full-table add) or none but sparse ones.
        # target: a loss's targets, range-checked in the clicks' sync.
        if batch is None:
            batch = x.new_zeros(x.size(0))
            num_sessions = 1
        elif num_sessions is None:
            num_sessions = int(batch.max()) + 1 if batch.numel() else 0
        click_session = batch[alias]
        session_len = degree(click_session, num_sessions, dtype=torch.long)
        self._check_batch(x, session_len, target)
        table = self.item_embedding
        h = F.embedding(x, table.weight, table.padding_idx, sparse=sparse_lookup)
        h = self.gnn(h, edge_index)

        seq_hidden = h[alias]  # node states back at the click positions
        # Clicks are stored session by session, in order, so each session's
        # last click sits just before the next session's first one.
        last_click = cumsum(session_len)[1:] - 1
        attn_last = self.encoder(seq_hidden, click_session, last_click)
        omega = self.attention_weight
        return omega * attn_last + (1.0 - omega) * seq_hidden[last_click]

    def _check_batch(self, items: Tensor, session_len: Tensor,
                     target: Tensor | None = None) -> None:
        # For batches not made by build_session_batch: item ids (and targets)
        # in range and no session without clicks, read back in one sync.
        if items.dtype.is_floating_point or items.dtype == torch.bool:
            raise ValueError(f"item ids 'x' must be integers, got dtype {items.dtype}")
        if items.numel() == 0:
            raise ValueError("the batch holds no click")
        values = [*items.aminmax(), session_len.min()]
        if target is not None:
            if target.dtype.is_floating_point or target.dtype == torch.bool:
                raise ValueError(f"'target' must hold integer item ids, got dtype {target.dtype}")
            if target.shape != session_len.shape:
                raise ValueError(f"'target' must have shape [B]=[{session_len.numel()}], got "
                                 f"{tuple(target.shape)}")
            values.extend(target.long().aminmax())
        smallest, largest, shortest, *target_range = torch.stack(values).tolist()
        if target_range:
            check_targets(*target_range, self.num_items)
        if smallest < 1 or largest >= self.num_items:
            value = smallest if smallest < 1 else largest
            raise ValueError(
                f"item id {value} in the batch is out of range: ids must lie in "
                f"[1, num_items - 1] = [1, {self.num_items - 1}]"
            )
        if shortest < 1:
            empty = int((session_len < 1).nonzero()[0])
            raise ValueError(f"session {empty} of the batch has no click")

    def build_batch(
        self, item_seq: Tensor, item_seq_len: Tensor, target: Tensor | None = None
    ) -> SessionBatch:
        r"""The session graph batch of right-padded :obj:`item_seq`
        :obj:`[B, L]` with lengths :obj:`item_seq_len` :obj:`[B]`, checked
        against this model's item table (see
        :func:`~gcsan_pyg.data.build_session_batch`)."""
        return build_session_batch(item_seq, item_seq_len, target, num_items=self.num_items)

    def full_sort_scores(self, data: Data) -> Tensor:
        r"""Scores of every item (padding id 0 included), shape
        :obj:`[B, num_items]`."""
        return self.encode(data) @ self.item_embedding.weight.t()

    def score(self, data: Data, items: Tensor) -> Tensor:
        r"""Score of one item per session, shape :obj:`[B]`."""
        return (self.encode(data) * self.item_embedding(items)).sum(dim=-1)

    @torch.no_grad()
    def recommend(self, data: Data, k: int = 20, exclude_seen: bool = False,
                  candidates: Tensor | None = None) -> Tensor:
        r"""Top-:obj:`k` item ids per session, best first, shape :obj:`[B, k]`;
        never the padding id 0, nor (with :obj:`exclude_seen`) an item of the
        session itself; only :obj:`candidates` where given (see
        :meth:`top_items`)."""
        x, _, _, batch, _ = _graph_tensors(data)
        seen = (batch if batch is not None else x.new_zeros(x.size(0)), x)
        return self.top_items(self.encode(data), k, seen if exclude_seen else None, candidates)

    @torch.no_grad()
    def top_items(self, session: Tensor, k: int = 20, seen: tuple[Tensor, Tensor] | None = None,
                  candidates: Tensor | None = None) -> Tensor:
        r"""Top-:obj:`k` item ids for session vectors :obj:`session`
        :obj:`[B, hidden_channels]` (as :meth:`forward` returns them), best
        first: exact, over an item table of any size in bounded memory (see
        :func:`~gcsan_pyg.nn.rank_items`), never the padding id 0 nor the
        :obj:`seen` (session index, item id) pairs, only :obj:`candidates`
        (item ids) where given.

        Raises:
            ValueError: :obj:`k` exceeds the items a session may get (the
                candidates, or all items, minus its seen ones)."""
        return rank_items(session, self.item_embedding.weight, k, seen, candidates)

    def loss(self, data: Data, target: Tensor | None = None,
             neg_items: Tensor | None = None,
             sampled_loss: SampledSoftmaxCrossEntropy | None = None) -> Tensor:
        r"""The training loss of a batch, :obj:`target` defaulting to
        :obj:`data.y`:

        * :obj:`"CE"`: cross-entropy over all items plus :obj:`reg_weight`
          times the embedding regulariser, exactly, in bounded memory
          (:func:`~gcsan_pyg.nn.chunked_softmax_cross_entropy`). The table's
          gradient is dense.
        * :obj:`"BPR"`: BPR of :obj:`target` against :obj:`neg_items` plus the
          regulariser.
        * :obj:`"sampled"`: sampled softmax over :obj:`num_negatives` shared
          negatives with the logQ correction, computed by
          :obj:`sampled_loss` (from :meth:`sampled_softmax`, which holds the
          sampler's item counts). Only the rows
          of the looked-up, target and negative items get a (sparse)
          gradient, so a step costs :math:`O(\text{rows touched})`, not
          :math:`O(N)`: step it with :class:`~gcsan_pyg.training.LazyAdam`.
          The regulariser, whose gradient touches every row, is not applied;
          weight decay of :class:`~gcsan_pyg.training.LazyAdam` acts on the
          touched rows only.
        """
        if target is None:
            target = getattr(data, "y", None)
            if target is None:
                raise ValueError("no 'target' given and the batch has no 'y'")
        table = self.item_embedding.weight
        if self.loss_type == "CE":
            # The CE sends the whole table a dense gradient: the lookup's can be
            # sparse, and reaches the table first (see _TableGradientLast).
            table = _TableGradientLast.apply(table)
            session = self._encode(*_graph_tensors(data), sparse_lookup=True, target=target)
            return chunked_softmax_cross_entropy(session, table, target, self.reg_weight)
        if self.loss_type == "sampled":
            if sampled_loss is None:
                raise ValueError("loss_type='sampled' needs 'sampled_loss', e.g. "
                                 "model.sampled_softmax(item_counts)")
            session = self._encode(*_graph_tensors(data), sparse_lookup=True, target=target)
            return sampled_loss(session, table, target)
        if neg_items is None:
            raise ValueError("loss_type='BPR' needs 'neg_items'")
        session = self._encode(*_graph_tensors(data), target=target)
        pos_score = (session * self.item_embedding(target)).sum(-1)
        neg_score = (session * self.item_embedding(neg_items)).sum(-1)
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
            f"num_heads={self.num_heads}, num_steps={self.num_steps}, "
            f"attention_weight={self.attention_weight}, loss_type={self.loss_type!r})"
        )


class _TableGradientLast(torch.autograd.Function):
    # The identity on the item table, applied before the item lookup: autograd
    # runs the nodes made later first, so the loss's dense table gradient now
    # reaches the table after the lookup's sparse one and absorbs it in place.
    # In the other order autograd adds the two out of place: a second
    # table-sized buffer in every step (1.2 GiB at 5M items, hidden 64).
    @staticmethod
    def forward(ctx: Any, table: Tensor) -> Tensor:
        return table.view_as(table)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


def _graph_tensors(data: Data) -> tuple[Tensor, Tensor, Tensor, Tensor | None, int | None]:
    """The arguments of :meth:`GCSAN.forward` held by a batch or one graph."""
    batch = getattr(data, "batch", None)
    num_sessions = int(data.num_graphs) if batch is not None else None
    return data.x, data.edge_index, data.alias, batch, num_sessions
