import pytest
import torch
from torch_geometric.data import Batch

from gcsan_pyg import GCSAN, SessionGatedConv, build_session_batch, session_to_graph
from gcsan_pyg.data import check_padded_sessions
from gcsan_pyg.interop.recbole import gcsan_from_recbole_state_dict, to_recbole_state_dict
from gcsan_pyg.nn import rank_items

NUM_ITEMS = 30


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GCSAN(NUM_ITEMS, hidden_channels=8, inner_channels=16).eval()


def batch_of(sessions, max_len=5):
    item_seq = torch.zeros(len(sessions), max_len, dtype=torch.long)
    for row, s in enumerate(sessions):
        item_seq[row, : len(s)] = torch.tensor(s)
    return item_seq, torch.tensor([len(s) for s in sessions])


# Bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "item_seq,item_seq_len,match",
    [
        (torch.tensor([[1, 2, 0]]), torch.tensor([0]), r"item_seq_len\[0\] = 0"),
        (torch.tensor([[1, 2, 0]]), torch.tensor([4]), r"item_seq_len\[0\] = 4 .*L=3"),
        (torch.tensor([[1, 0, 2]]), torch.tensor([3]), r"item_seq\[0, 1\] = 0 .*padding id 0"),
        (torch.tensor([[1, -4, 2]]), torch.tensor([3]), r"item_seq\[0, 1\] = -4 .*negative"),
        (torch.tensor([[1, 30, 2]]), torch.tensor([3]), r"item_seq\[0, 1\] = 30 .*num_items=30"),
        (torch.tensor([[1.0, 2.0]]), torch.tensor([2]), r"'item_seq' .*integer dtype.*float32"),
        (torch.tensor([[1, 2]]), torch.tensor([2.0]), r"'item_seq_len' .*integer.*float32"),
        (torch.tensor([[1, 2]]), torch.tensor([2, 1]), r"shape \[B\]=\[1\].*\(2,\)"),
        (torch.tensor([1, 2]), torch.tensor([2]), r"shape \[B, L\], got \(2,\)"),
        (torch.tensor([[1, 2, 7]]), torch.tensor([2]), r"item_seq\[0, 2\] = 7 lies past"),
    ],
)
def test_build_session_batch_rejects_bad_input(item_seq, item_seq_len, match):
    with pytest.raises(ValueError, match=match):
        check_padded_sessions(item_seq, item_seq_len, num_items=NUM_ITEMS)
    with pytest.raises(ValueError, match=match):
        build_session_batch(item_seq, item_seq_len, num_items=NUM_ITEMS)


@pytest.mark.parametrize(
    "items,match",
    [
        ([], "empty session"),
        ([1, 0, 2], r"session's item id 0 \(entry 1\)"),
        ([3, -1], r"session's item id -1 \(entry 1\)"),
        ([1.5, 2.0], "integer item ids"),
        ([[1, 2]], "1-D"),
    ],
)
def test_session_to_graph_rejects_bad_input(items, match):
    with pytest.raises(ValueError, match=match):
        session_to_graph(torch.tensor(items) if items else items)


def test_session_to_graph_checks_upper_bound():
    with pytest.raises(ValueError, match=r"session's item id 30 \(entry 1\) is outside "
                                         r"\[1, num_items - 1\] = \[1, 29\]"):
        session_to_graph([1, 30], num_items=NUM_ITEMS)


def test_model_rejects_out_of_range_items(model):
    with pytest.raises(ValueError, match=r"item id 31 .*\[1, 29\]"):
        model.encode(session_to_graph([2, 31]))
    with pytest.raises(ValueError, match=r"item_seq\[0, 1\] = 99"):
        model.build_batch(*batch_of([[2, 99]]))
    # A batch made some other way is checked by the model itself.
    batch = model.build_batch(*batch_of([[2, 5], [7]]))
    batch.x[1] = 0
    with pytest.raises(ValueError, match=r"item id 0 .*\[1, 29\]"):
        model.encode(batch)
    batch.x[1] = 40
    with pytest.raises(ValueError, match=r"item id 40 .*\[1, 29\]"):
        model.encode(batch)


@pytest.mark.parametrize("bad_target", [NUM_ITEMS, -1, 0, NUM_ITEMS + 7])
def test_out_of_range_targets_are_refused(model, bad_target):
    # Issue 19.1: the max-id off-by-one (target == num_items) or -1 used to be
    # clamped into a plausible loss; F.cross_entropy raises for the same input.
    sessions = batch_of([[2, 5], [7]])
    target = torch.tensor([3, bad_target])
    match = rf"target {bad_target} is out of range: .*\[1, {NUM_ITEMS - 1}\]"
    with pytest.raises(ValueError, match=match):
        model.build_batch(*sessions, target=target)
    with pytest.raises(ValueError, match=match):
        build_session_batch(*sessions, target, num_items=NUM_ITEMS)
    # A batch built without the table size is checked by the loss itself.
    batch = build_session_batch(*sessions, target.clamp(min=1))
    batch.y = target
    for loss_type in ("CE", "sampled", "BPR"):
        torch.manual_seed(0)
        m = GCSAN(NUM_ITEMS, hidden_channels=8, loss_type=loss_type)
        sampled_loss = m.sampled_softmax() if loss_type == "sampled" else None
        with pytest.raises(ValueError, match=match):
            m.loss(batch, neg_items=torch.tensor([1, 2]), sampled_loss=sampled_loss)


def test_targets_need_one_integer_per_session(model):
    sessions = batch_of([[2, 5], [7]])
    with pytest.raises(ValueError, match=r"'target' must have shape \[B\]=\[2\], got \(3,\)"):
        model.build_batch(*sessions, target=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="'target' must have an integer dtype"):
        model.build_batch(*sessions, target=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="target 0 is out of range: targets must be item ids"):
        build_session_batch(*sessions, torch.tensor([0, 2]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_items": 1}, "'num_items' must be >= 2"),
        ({"attention_weight": 1.5}, r"'attention_weight' must lie in \[0, 1\], got 1.5"),
        ({"loss_type": "MSE"}, "'loss_type' must be one of"),
        ({"hidden_channels": 10, "num_heads": 3}, "not a multiple of 'num_heads'=3"),
        ({"activation": "elu"}, "unknown activation 'elu'"),
        ({"hidden_dropout": 1.0}, "'hidden_dropout' must lie in"),
        ({"num_layers": 0}, "'num_layers' must be positive"),
        ({"num_steps": 0}, "'num_steps' must be positive"),
        ({"loss_type": "sampled", "negative_sampler": "zipf"}, "'negative_sampler' must be"),
    ],
)
def test_model_rejects_bad_hyperparameters(kwargs, match):
    kwargs = {"num_items": NUM_ITEMS, **kwargs}
    with pytest.raises(ValueError, match=match):
        GCSAN(**kwargs)


def test_recommend_rejects_bad_k(model):
    batch = model.build_batch(*batch_of([[1, 2]]))
    with pytest.raises(ValueError, match=r"'k' must lie in \[1, 29\] \(the items ranked\)"):
        model.recommend(batch, k=30)


def test_bpr_needs_negatives():
    model = GCSAN(NUM_ITEMS, hidden_channels=8, loss_type="BPR")
    batch = model.build_batch(*batch_of([[1, 2]]), target=torch.tensor([3]))
    with pytest.raises(ValueError, match="needs 'neg_items'"):
        model.loss(batch)


# Behaviour -------------------------------------------------------------------


def test_recommend_never_returns_padding_or_seen(model):
    with torch.no_grad():
        model.item_embedding.weight[0] = 100.0  # padding would top one end if not masked
    batch = model.build_batch(*batch_of([[5, 6], [7]]))
    top = model.recommend(batch, k=NUM_ITEMS - 1)
    assert top.shape == (2, NUM_ITEMS - 1)
    assert (top != 0).all()
    assert sorted(top[0].tolist()) == list(range(1, NUM_ITEMS))
    unseen = model.recommend(batch, k=5, exclude_seen=True)
    assert 5 not in unseen[0].tolist() and 6 not in unseen[0].tolist()
    assert 7 not in unseen[1].tolist()
    with torch.no_grad():
        scores = model.full_sort_scores(batch)
    scores[:, 0] = scores[0, [5, 6]] = scores[1, 7] = float("-inf")
    assert torch.equal(unseen, scores.argsort(dim=1, descending=True)[:, :5])



def test_recommend_exclude_seen_refuses_k_beyond_the_unseen_items(model):
    # Session 0 leaves 29 - 3 = 26 items, session 1 leaves 28 (its 7 twice).
    batch = model.build_batch(*batch_of([[5, 6, 5, 9], [7, 7]]))
    top = model.recommend(batch, k=26, exclude_seen=True)
    assert sorted(top[0].tolist()) == [i for i in range(1, NUM_ITEMS) if i not in (5, 6, 9)]
    assert 7 not in top[1].tolist() and (top != 0).all()
    with pytest.raises(ValueError, match=r"'k' = 27 exceeds the 26 items left to session 0"):
        model.recommend(batch, k=27, exclude_seen=True)
    session = model.encode(batch)
    seen = (torch.tensor([1, 1, 1]), torch.tensor([2, 3, 2]))  # pairs may repeat
    assert model.top_items(session, k=27, seen=seen).shape == (2, 27)
    with pytest.raises(ValueError, match="exceeds the 27 items left to session 1"):
        model.top_items(session, k=28, seen=seen)

def test_score_matches_full_sort(model):
    batch = model.build_batch(*batch_of([[5, 6, 5], [7]]))
    items = torch.tensor([3, 12])
    with torch.no_grad():
        full = model.full_sort_scores(batch)
        torch.testing.assert_close(model.score(batch, items), full[torch.arange(2), items])


def test_initialisation_scheme():
    torch.manual_seed(1)
    model = GCSAN(2000, hidden_channels=64, initializer_range=0.02)
    std = model.item_embedding.weight.std().item()
    assert 0.018 < std < 0.022
    bound = 1 / 8
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        p = getattr(model.gnn, name)
        assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound
    assert model.gnn.lin_in.weight.std().item() < 0.03  # re-initialised normally
    assert (model.gnn.lin_in.bias == 0).all()
    layer = model.encoder.layers[0]
    assert (layer.attn_norm.weight == 1).all() and (layer.attn_norm.bias == 0).all()


def test_ce_loss_table_gradient_is_dense_and_exact():
    # loss() looks items up with a sparse gradient, which autograd adds into
    # the dense one of the softmax CE over all items: the table's .grad must
    # come out dense (fused Adam steps it) and equal to a plain dense lookup's.
    torch.manual_seed(0)
    model = GCSAN(NUM_ITEMS, hidden_channels=8, inner_channels=16).eval()
    batch = model.build_batch(*batch_of([[5, 6, 5], [7], [3, 9, 12, 3]]), torch.tensor([1, 2, 3]))
    model.loss(batch).backward()
    grad = model.item_embedding.weight.grad
    assert grad.layout == torch.strided
    model.zero_grad()
    scores = model.encode(batch) @ model.item_embedding.weight.t()
    loss = torch.nn.functional.cross_entropy(scores, batch.y) + (
        model.reg_weight * model.embedding_regularizer())
    loss.backward()
    torch.testing.assert_close(grad, model.item_embedding.weight.grad, rtol=1e-5, atol=1e-7)
    assert grad[[5, 6, 7, 3, 9, 12]].abs().sum() > 0


def test_ce_loss_backward_allocates_one_table_sized_gradient():
    # The table's gradient is the one table-sized buffer of a CE backward:
    # the lookup's sparse gradient is added into it in place, not into a
    # second table-sized sum (1.2 GiB more at 5M items, hidden 64).
    num_items, hidden = 100_000, 16  # table 6.4 MB; the logits 4 x 100k x 4 B = 1.6 MB
    torch.manual_seed(0)
    model = GCSAN(num_items, hidden_channels=hidden, inner_channels=16)
    batch = model.build_batch(*batch_of([[5, 6, 5], [7], [3, 9, 12, 3], [8, 8]]),
                              torch.tensor([1, 2, 3, 99_999]))
    loss = model.loss(batch)
    table_bytes = num_items * hidden * 4
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        loss.backward()
    big = [e.self_cpu_memory_usage for e in prof.events()
           if e.self_cpu_memory_usage >= table_bytes]
    assert big == [table_bytes]
    assert model.item_embedding.weight.grad[[5, 6, 7, 3, 9, 12, 8]].abs().min() > 0


def test_sampled_loss_touches_only_the_rows_it_uses():
    """loss_type='sampled': the table's gradient is sparse and covers only the
    clicked, target and sampled items, drawn by the loss object's counts."""
    torch.manual_seed(0)
    model = GCSAN(NUM_ITEMS, hidden_channels=8, inner_channels=16, loss_type="sampled",
                  num_negatives=4, negative_sampler="popularity")
    counts = torch.zeros(NUM_ITEMS)
    counts[[20, 21]] = 5.0  # only these two can be drawn
    sampled_loss = model.sampled_softmax(counts)
    batch = model.build_batch(*batch_of([[5, 6, 5], [7]]), torch.tensor([1, 2]))
    model.loss(batch, sampled_loss=sampled_loss).backward()
    grad = model.item_embedding.weight.grad
    assert grad.is_sparse
    touched = set(grad.coalesce().indices()[0].tolist())
    assert touched <= {5, 6, 7, 1, 2, 20, 21} and {1, 2, 5, 6, 7} <= touched
    with pytest.raises(ValueError, match="loss_type='sampled' needs 'sampled_loss'"):
        model.loss(batch)
    with pytest.raises(ValueError, match=r"'counts' must have shape \[30\]"):
        model.sampled_softmax(torch.ones(3))


def test_the_model_holds_no_loss_state():
    # Issue 19.7: the sampler's counts lived in the model's state_dict, so a
    # model trained with sampled softmax did not load into a CE model.
    torch.manual_seed(0)
    sampled = GCSAN(NUM_ITEMS, hidden_channels=8, inner_channels=16, loss_type="sampled")
    assert not list(sampled.buffers())
    state = sampled.state_dict()
    assert all(key.split(".")[0] in ("item_embedding", "gnn", "encoder") for key in state)
    ce = GCSAN(NUM_ITEMS, hidden_channels=8, inner_channels=16)
    ce.load_state_dict(state)  # strict
    # A state dict of older versions, with the sampler inside, still loads.
    legacy = {**state, "sampled_loss.sampler.counts": torch.ones(NUM_ITEMS, dtype=torch.float64),
              "sampled_loss.sampler._extra_state": {"kind": "popularity", "alpha": 0.75}}
    ce.load_state_dict(legacy)
    for name, value in ce.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_recommend_ranks_only_the_candidates(model):
    batch = model.build_batch(*batch_of([[5, 6], [7]]))
    candidates = torch.tensor([12, 3, 7, 3, 25])  # in any order, repeats ignored
    top = model.recommend(batch, k=4, candidates=candidates)
    with torch.no_grad():
        scores = model.full_sort_scores(batch)[:, [3, 7, 12, 25]]
    expected = torch.tensor([3, 7, 12, 25])[scores.argsort(dim=1, descending=True)]
    assert torch.equal(top, expected)
    unseen = model.recommend(batch, k=3, candidates=candidates, exclude_seen=True)
    assert sorted(unseen[1].tolist()) == [3, 12, 25]  # session 1 has seen candidate 7
    with pytest.raises(ValueError, match="exceeds the 3 items left to session 1"):
        model.recommend(batch, k=4, candidates=candidates, exclude_seen=True)
    with pytest.raises(ValueError, match=r"candidate item id 30 \(entry 1\) is outside"):
        model.recommend(batch, k=1, candidates=torch.tensor([2, 30]))


def test_ranking_in_chunks_is_exact():
    """Small score chunks (many merges of partial top-k lists) give the exact
    top-k of the whole score matrix, with seen items and the padding masked."""
    torch.manual_seed(3)
    query, table = torch.randn(6, 8), torch.randn(5000, 8)
    table[0] = 100.0  # the padding would win if not masked
    seen = (torch.tensor([0, 0, 4]), torch.tensor([int((query[0] @ table.t())[1:].argmax()) + 1,
                                                    17, 4999]))
    scores = query @ table.t()
    scores[:, 0] = float("-inf")
    scores[seen] = float("-inf")
    expected = scores.topk(25, dim=1).indices
    for chunk in (6 * 50, 6 * 333, 6 * 5000):
        top = rank_items(query, table, 25, seen, chunk_elements=chunk)
        assert torch.equal(scores.gather(1, top), scores.gather(1, expected)), chunk


def test_training_reduces_loss():
    torch.manual_seed(0)
    model = GCSAN(NUM_ITEMS, hidden_channels=16, inner_channels=32)
    # A deterministic successor rule: next item = last item + 1.
    item_seq = torch.randint(1, NUM_ITEMS - 1, (64, 4))
    lengths = torch.full((64,), 4)
    batch = model.build_batch(item_seq, lengths, target=item_seq[:, -1] + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.5 * first


def test_layer_repr_and_shapes():
    conv = SessionGatedConv(8, num_steps=2)
    assert repr(conv) == "SessionGatedConv(8, num_steps=2)"
    graph = session_to_graph([1, 2, 2, 3])
    out = conv(torch.randn(3, 8), graph.edge_index)
    assert out.shape == (3, 8)
    assert "GCSAN(num_items=30" in repr(GCSAN(NUM_ITEMS, hidden_channels=8))


def test_conv_on_isolated_node_uses_no_bias_message():
    # A node without edges aggregates nothing: a = 0 (the edge biases are
    # weighted by the edges, as in the dense adjacency product).
    conv = SessionGatedConv(4)
    h = torch.randn(1, 4)
    empty = torch.empty(2, 0, dtype=torch.long)
    out = conv(h, empty)
    expected = conv.gru_update(torch.zeros(1, 8), h)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="aggregates by mean"):
        SessionGatedConv(4, aggr="add")


def test_conv_aggregates_with_srgnn_weights_by_hand():
    # 3 -> 5 -> 5 -> 3 -> 9: nodes [3, 5, 9], edges 3->5, 3->9, 5->3, 5->5.
    # In-degrees 1, 2, 1 and out-degrees 2, 2, 0: SR-GNN's weights are
    # 1 / in-degree of the target and 1 / out-degree of the source.
    torch.manual_seed(0)
    conv = SessionGatedConv(4)
    for param in (conv.lin_in.bias, conv.lin_out.bias):
        torch.nn.init.uniform_(param, -1, 1)  # non-zero, so the biases are weighted too
    graph = session_to_graph([3, 5, 5, 3, 9])
    h = torch.randn(3, 4)
    m_in, m_out = conv.lin_in(h), conv.lin_out(h)
    a_in = torch.stack([m_in[1], (m_in[0] + m_in[1]) / 2, m_in[0]])
    a_out = torch.stack([(m_out[1] + m_out[2]) / 2, (m_out[0] + m_out[1]) / 2, torch.zeros(4)])
    expected = conv.gru_update(torch.cat([a_in, a_out], dim=1), h)
    torch.testing.assert_close(conv(h, graph.edge_index), expected)


# RecBole state dict -------------------------------------------------------------

# What the weights cannot tell: GCSAN's defaults, which these models use.
OUTPUT_ARGUMENTS = {"num_heads": 1, "num_steps": 1, "attention_weight": 0.6, "activation": "gelu",
                    "layer_norm_eps": 1e-12}


def test_recbole_state_dict_round_trip():
    torch.manual_seed(0)
    model = GCSAN(NUM_ITEMS, hidden_channels=8, num_layers=2, num_heads=2, inner_channels=12)
    state = to_recbole_state_dict(model)
    assert "self_attention.layer.1.multi_head_attention.query.weight" in state
    assert "gnn.linear_edge_out.bias" in state and "gnn.w_ih" in state
    clone = gcsan_from_recbole_state_dict(state, **{**OUTPUT_ARGUMENTS, "num_heads": 2})
    assert (clone.num_layers, clone.inner_channels, clone.hidden_channels) == (2, 12, 8)
    for (name, a), (_, b) in zip(model.state_dict().items(), clone.state_dict().items()):
        assert torch.equal(a, b), name


def test_from_recbole_reports_bad_keys_and_shapes():
    state = to_recbole_state_dict(GCSAN(NUM_ITEMS, hidden_channels=8))
    missing = dict(state)
    del missing["gnn.b_hh"]
    with pytest.raises(ValueError, match=r"missing keys \['gnn.b_hh'\]"):
        gcsan_from_recbole_state_dict(missing, **OUTPUT_ARGUMENTS)
    extra = dict(state, **{"position_embedding.weight": torch.zeros(3, 8)})
    with pytest.raises(ValueError, match=r"unexpected keys \['position_embedding.weight'\]"):
        gcsan_from_recbole_state_dict(extra, **OUTPUT_ARGUMENTS)
    wrong = dict(state, **{"gnn.w_hh": torch.zeros(5, 8)})
    with pytest.raises(ValueError, match=r"'gnn.w_hh' has shape \(5, 8\).*\(24, 8\)"):
        gcsan_from_recbole_state_dict(wrong, **OUTPUT_ARGUMENTS)
    with pytest.raises(ValueError, match="num_items=12 does not match"):
        gcsan_from_recbole_state_dict(state, num_items=12, **OUTPUT_ARGUMENTS)


def test_conv_refuses_a_flow_that_would_swap_its_channels():
    with pytest.raises(ValueError, match="flow='target_to_source'"):
        SessionGatedConv(4, flow="target_to_source")


def test_model_refuses_a_session_without_clicks(model):
    # A hand-built batch whose second session has no node and no click: its
    # "last click" would be the first session's.
    batch = Batch(x=torch.tensor([3, 4, 7]), edge_index=torch.tensor([[0], [1]]),
                  alias=torch.tensor([0, 1, 2]), batch=torch.tensor([0, 0, 2]),
                  ptr=torch.tensor([0, 2, 2, 3]))
    with pytest.raises(ValueError, match="session 1 of the batch has no click"):
        model.encode(batch)
