import pickle

import pytest
import torch
from dense_gcsan import dense_session_adjacency
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from gcsan_pyg import build_session_batch, session_to_graph

GRAPH_KEYS = ("x", "edge_index", "alias", "batch", "ptr")


def pad(sessions, max_len):
    item_seq = torch.zeros(len(sessions), max_len, dtype=torch.long)
    for row, session in enumerate(sessions):
        item_seq[row, : len(session)] = torch.tensor(session)
    return item_seq, torch.tensor([len(s) for s in sessions])


def test_session_to_graph_by_hand():
    # 3 -> 5 -> 5 -> 3 -> 9: nodes [3, 5, 9]; edges 3->5, 5->5, 5->3, 3->9.
    graph = session_to_graph([3, 5, 5, 3, 9], target=2)
    assert graph.x.tolist() == [3, 5, 9]
    assert graph.alias.tolist() == [0, 1, 1, 0, 2]
    edges = list(zip(*graph.edge_index.tolist()))
    assert edges == [(0, 1), (0, 2), (1, 0), (1, 1)]
    assert set(graph.keys()) == {"x", "edge_index", "alias", "y"}
    assert graph.y.tolist() == [2]
    assert graph.num_nodes == 3


def test_single_click_session_has_no_edge():
    graph = session_to_graph([7])
    assert graph.x.tolist() == [7]
    assert graph.edge_index.shape == (2, 0)
    assert graph.alias.tolist() == [0]


def test_repeated_transition_is_deduplicated():
    graph = session_to_graph([1, 2, 1, 2])
    assert list(zip(*graph.edge_index.tolist())) == [(0, 1), (1, 0)]


def test_dataloader_offsets_alias_and_maps_positions_to_sessions():
    graphs = [session_to_graph(s, target=1) for s in ([4, 4, 6], [2], [6, 2, 9, 2])]
    batch = next(iter(DataLoader(graphs, batch_size=3)))
    assert batch.num_graphs == 3
    assert batch.x[batch.alias].tolist() == [4, 4, 6, 2, 6, 2, 9, 2]
    assert batch.batch[batch.alias].tolist() == [0, 0, 0, 1, 2, 2, 2, 2]
    assert batch.y.tolist() == [1, 1, 1]


def test_graph_matches_dense_adjacency():
    # The reference's normalised adjacency holds, for every edge u -> v of
    # ours and nothing else, 1 / in-degree of v and 1 / out-degree of u counted
    # on our edges: the weights of SessionGatedConv's mean aggregation.
    sessions = [[3, 5, 5, 3, 9], [4], [8, 8], [2, 7, 2, 7, 1, 7]]
    item_seq, lengths = pad(sessions, 6)
    batch = build_session_batch(item_seq, lengths)
    nodes, _, adjacency = dense_session_adjacency(item_seq.numpy())
    src, dst = batch.edge_index
    in_deg = torch.bincount(dst, minlength=batch.num_nodes)
    out_deg = torch.bincount(src, minlength=batch.num_nodes)
    for b in range(len(sessions)):
        lo, hi = batch.ptr[b].item(), batch.ptr[b + 1].item()
        assert batch.x[lo:hi].tolist() == nodes[b][nodes[b] > 0].tolist()
        shift = int(len(sessions[b]) < 6)  # a padded session's first dense node is item 0
        mask = (src >= lo) & (src < hi)
        for u, v in batch.edge_index[:, mask].t().tolist():
            assert adjacency[b, v - lo + shift, u - lo + shift] == pytest.approx(1 / in_deg[v])
            assert adjacency[b, u - lo + shift, 6 + v - lo + shift] == pytest.approx(
                1 / out_deg[u])
        assert (adjacency[b] > 0).sum() == 2 * int(mask.sum())


sessions_strategy = st.lists(
    # Few distinct ids make repeats, self-loops and revisits common.
    st.lists(st.integers(1, 6), min_size=1, max_size=9),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(sessions=sessions_strategy, extra_len=st.integers(0, 3))
def test_build_session_batch_equals_collated_graphs(sessions, extra_len):
    max_len = max(len(s) for s in sessions) + extra_len
    item_seq, lengths = pad(sessions, max_len)
    targets = torch.arange(1, len(sessions) + 1)
    built = build_session_batch(item_seq, lengths, target=targets)
    collated = Batch.from_data_list(
        [session_to_graph(s, target=int(t)) for s, t in zip(sessions, targets)]
    )
    assert built.num_graphs == collated.num_graphs == len(sessions)
    for key in GRAPH_KEYS + ("y",):
        assert torch.equal(built[key], collated[key]), key
    # The positions read back the sessions.
    flat = [item for s in sessions for item in s]
    assert built.x[built.alias].tolist() == flat
    assert_same_batch_methods(built, collated)


def assert_same_graph(a, b):
    assert type(a) is type(b) and sorted(a.keys()) == sorted(b.keys())
    for key in a.keys():
        assert torch.equal(a[key], b[key]), key


def assert_same_batch_methods(built, collated):
    """Every public way to take a Batch apart gives the same graphs."""
    num = collated.num_graphs
    assert len(built) == len(collated) and built.batch_size == collated.batch_size
    for a, b in zip(built.to_data_list(), collated.to_data_list(), strict=True):
        assert_same_graph(a, b)
    for i in (0, num - 1):
        assert_same_graph(built[i], collated[i])
        assert_same_graph(built.get_example(i), collated.get_example(i))
    assert_same_graph(built[-1], collated[num - 1])  # (PyG's own Batch fails on -1)
    with pytest.raises(IndexError):
        built[num]
    picks = [slice(None, None, 2), [num - 1, 0], torch.arange(num).flip(0),
             torch.arange(num) % 2 == 0]
    for pick in picks:
        for a, b in zip(built.index_select(pick), collated.index_select(pick), strict=True):
            assert_same_graph(a, b)
        for a, b in zip(built[pick], collated[pick], strict=True):
            assert_same_graph(a, b)
    restored = pickle.loads(pickle.dumps(built))
    for a, b in zip(restored.to_data_list(), collated.to_data_list(), strict=True):
        assert_same_graph(a, b)


def test_build_session_batch_keeps_device_and_dtype():
    item_seq, lengths = pad([[1, 2], [3]], 3)
    batch = build_session_batch(item_seq.int(), lengths.int())
    assert batch.x.dtype == torch.long and batch.alias.dtype == torch.long
    assert batch.edge_index.dtype == torch.long
    assert batch.x.device == item_seq.device


def test_dense_stackings_agree():
    item_seq, _ = pad([[3, 5, 5, 3, 9], [4], [8, 8, 2]], 6)
    reference = dense_session_adjacency(item_seq.numpy())
    numpy_stacked = dense_session_adjacency(item_seq.numpy(), stacking="numpy")
    for a, b in zip(reference, numpy_stacked):
        assert a.dtype == b.dtype and torch.equal(a, b)
    with pytest.raises(ValueError, match="'stacking' must be one of"):
        dense_session_adjacency(item_seq.numpy(), stacking="fast")


def test_built_batch_behaves_like_a_pyg_batch():
    # build_session_batch fills a fresh Batch's store directly (no per-attribute setattr):
    # the result must still act as any PyG Batch.
    item_seq, lengths = pad([[3, 5, 5, 3, 9], [4], [8, 8, 2]], 6)
    batch = build_session_batch(item_seq, lengths, target=torch.tensor([1, 2, 3]))
    assert isinstance(batch, Batch) and batch.num_graphs == 3 and batch.num_nodes == 6
    assert set(batch.keys()) == {"x", "edge_index", "alias", "batch", "ptr", "y"}
    copy = pickle.loads(pickle.dumps(batch))
    for b in (batch.clone(), batch.to("cpu"), copy):
        assert b.num_graphs == 3
        for key in batch.keys():
            assert torch.equal(b[key], batch[key]), key
    batch.extra = torch.ones(3)  # attributes can still be set the usual way
    assert "extra" in batch.keys()
