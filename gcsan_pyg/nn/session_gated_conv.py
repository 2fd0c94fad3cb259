"""The gated graph cell of SR-GNN / GC-SAN as a PyG ``MessagePassing`` layer."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Parameter
from torch_geometric.nn import MessagePassing


class SessionGatedConv(MessagePassing):
    r"""The gated session-graph cell of `"Session-based Recommendation with
    Graph Neural Networks" <https://arxiv.org/abs/1811.00855>`_ (SR-GNN), used
    by GC-SAN, over a sparse (block-diagonal) batch of session graphs.

    Each step aggregates an incoming and an outgoing channel

    .. math::
        \mathbf{a}^{in}_v &= \frac{1}{\deg_{in}(v)} \sum_{(u \to v)}
        \left(\mathbf{\Theta}_{in} \mathbf{h}_u + \mathbf{c}_{in}\right),
        \qquad
        \mathbf{a}^{out}_u = \frac{1}{\deg_{out}(u)} \sum_{(u \to v)}
        \left(\mathbf{\Theta}_{out} \mathbf{h}_v + \mathbf{c}_{out}\right)

    (SR-GNN's degree-normalised in/out adjacency: a mean over the in- and
    the out-neighbours, zero for a node without any), then, with
    :math:`\mathbf{a} = [\mathbf{a}^{in} \,\Vert\, \mathbf{a}^{out}]`,

    .. math::
        \mathbf{r} &= \sigma(\mathbf{W}_{ar} \mathbf{a} + \mathbf{b}_{ar} +
                     \mathbf{W}_{hr} \mathbf{h} + \mathbf{b}_{hr}) \\
        \mathbf{z} &= \sigma(\mathbf{W}_{az} \mathbf{a} + \mathbf{b}_{az} +
                     \mathbf{W}_{hz} \mathbf{h} + \mathbf{b}_{hz}) \\
        \mathbf{n} &= \tanh(\mathbf{W}_{an} \mathbf{a} + \mathbf{b}_{an} +
                     \mathbf{r} \odot (\mathbf{W}_{hn} \mathbf{h} + \mathbf{b}_{hn})) \\
        \mathbf{h}' &= (1 - \mathbf{z}) \odot \mathbf{h} + \mathbf{z} \odot \mathbf{n}

    (note the update keeps :math:`1 - \mathbf{z}` of the old state, the
    reverse of :class:`torch.nn.GRUCell`), repeated :obj:`num_steps` times
    with shared weights.

    Both channels run in one :meth:`propagate` over a stacked edge set: the
    node table holds :math:`[\mathbf{\Theta}_{in}\mathbf{h} + \mathbf{c}_{in}
    \,\Vert\, \mathbf{\Theta}_{out}\mathbf{h} + \mathbf{c}_{out}]` viewed as
    :math:`2N` rows, every edge :math:`u \to v` sends row :math:`2u` to row
    :math:`2v` (incoming channel) and row :math:`2v + 1` to row :math:`2u + 1`
    (outgoing channel), and the mean aggregation's :math:`2N \times F` result
    viewed as :math:`N \times 2F` is :math:`\mathbf{a}`: row :math:`2v`
    receives exactly the in-edges of :math:`v`, row :math:`2u + 1` the
    out-edges of :math:`u`, so its mean is the normalised sum above and the
    graph needs to store no edge weights. The edges must be deduplicated, as
    :func:`~gcsan_pyg.data.session_to_graph` and
    :func:`~gcsan_pyg.data.build_session_batch` give them: SR-GNN counts a
    transition clicked twice once.

    Args:
        channels (int): size of each node state.
        num_steps (int, optional): number of propagation steps.
            (default: :obj:`1`)
        **kwargs (optional): additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing` (the aggregation
            is always :obj:`"mean"`, the flow :obj:`"source_to_target"`).

    Shapes:
        - **input:**
          node states :math:`(|\mathcal{V}|, F)`,
          edge indices :math:`(2, |\mathcal{E}|)`
        - **output:** node states :math:`(|\mathcal{V}|, F)`
    """

    def __init__(self, channels: int, num_steps: int = 1, **kwargs) -> None:
        if kwargs.get("aggr", "mean") != "mean":
            raise ValueError(f"SessionGatedConv aggregates by mean, got aggr={kwargs['aggr']!r}")
        if kwargs.get("flow", "source_to_target") != "source_to_target":
            # The stacked edge set fixes which row is the in- and which the
            # out-channel; the other flow would silently swap them.
            raise ValueError(f"SessionGatedConv runs source_to_target, got flow={kwargs['flow']!r}")
        kwargs["aggr"] = "mean"
        super().__init__(**kwargs)
        if channels < 1:
            raise ValueError(f"'channels' must be positive, got {channels}")
        if num_steps < 1:
            raise ValueError(f"'num_steps' must be positive, got {num_steps}")
        self.channels = channels
        self.num_steps = num_steps
        self.lin_in = Linear(channels, channels)
        self.lin_out = Linear(channels, channels)
        self.weight_ih = Parameter(torch.empty(3 * channels, 2 * channels))
        self.weight_hh = Parameter(torch.empty(3 * channels, channels))
        self.bias_ih = Parameter(torch.empty(3 * channels))
        self.bias_hh = Parameter(torch.empty(3 * channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Draws every parameter from :math:`U(-1/\sqrt{F}, 1/\sqrt{F})`, as
        SR-GNN does."""
        super().reset_parameters()
        bound = 1.0 / math.sqrt(self.channels)
        for param in self.parameters():
            torch.nn.init.uniform_(param, -bound, bound)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        num_nodes = x.size(0)
        src, dst = edge_index
        # The stacked edge set does not change across steps.
        stacked_index = torch.stack([
            torch.cat([2 * src, 2 * dst + 1]),
            torch.cat([2 * dst, 2 * src + 1]),
        ])
        edge_lin_weight = torch.cat([self.lin_in.weight, self.lin_out.weight])
        edge_lin_bias = torch.cat([self.lin_in.bias, self.lin_out.bias])

        h = x
        for _ in range(self.num_steps):
            table = F.linear(h, edge_lin_weight, edge_lin_bias).view(2 * num_nodes, -1)
            a = self.propagate(
                stacked_index, x=table, size=(2 * num_nodes, 2 * num_nodes)
            ).view(num_nodes, 2 * self.channels)
            h = self.gru_update(a, h)
        return h

    def gru_update(self, a: Tensor, h: Tensor) -> Tensor:
        r"""One gated update :math:`\mathbf{h}' = (1 - \mathbf{z}) \odot
        \mathbf{h} + \mathbf{z} \odot \mathbf{n}` from the aggregated
        neighbourhood :obj:`a` :math:`(N, 2F)` and the state :obj:`h`."""
        i_r, i_z, i_n = F.linear(a, self.weight_ih, self.bias_ih).chunk(3, dim=-1)
        h_r, h_z, h_n = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        reset = torch.sigmoid(i_r + h_r)
        update = torch.sigmoid(i_z + h_z)
        new = torch.tanh(i_n + reset * h_n)
        return (1 - update) * h + update * new

    def message(self, x_j: Tensor) -> Tensor:
        return x_j

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, num_steps={self.num_steps})"
