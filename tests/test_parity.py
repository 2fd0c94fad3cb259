"""The PyG model computes what the dense (RecBole) formulation computes."""
import itertools

import pytest
import torch
from torch_geometric.data import Batch

from gcsan_pyg import GCSAN, build_session_batch, session_to_graph
from gcsan_pyg.reference import DenseGCSAN

NUM_ITEMS = 40
MAX_LEN = 7
TOL = 1e-5


def make_sessions():
    # Repeats, a self-loop run, a revisit, length 1 and full length L.
    return [
        [3, 3, 3],
        [5],
        [1, 2, 3, 4, 5, 6, 7],
        [9, 4, 9, 4, 2],
        [39, 38],
        [12, 12, 30, 12, 12, 30, 1],
        [20],
        [6, 7, 6],
    ]


def padded(sessions):
    item_seq = torch.zeros(len(sessions), MAX_LEN, dtype=torch.long)
    for row, session in enumerate(sessions):
        item_seq[row, : len(session)] = torch.tensor(session)
    return item_seq, torch.tensor([len(s) for s in sessions])


def make_pair(num_layers, num_heads, step, loss_type="CE", dropout=0.0, seed=0):
    torch.manual_seed(seed)
    kwargs = dict(
        hidden_channels=16, num_layers=num_layers, num_heads=num_heads, inner_channels=24,
        step=step, hidden_dropout=dropout, attn_dropout=dropout, loss_type=loss_type,
    )
    model = GCSAN(NUM_ITEMS, **kwargs)
    dense = DenseGCSAN(NUM_ITEMS, **kwargs)
    dense.load_state_dict(model.to_recbole_state_dict())
    return model, dense


CONFIGS = list(itertools.product([1, 2], [1, 2], [1, 2]))


@pytest.mark.parametrize("num_layers,num_heads,step", CONFIGS)
def test_eval_outputs_match(num_layers, num_heads, step):
    model, dense = make_pair(num_layers, num_heads, step, dropout=0.3)
    model.eval()
    dense.eval()
    item_seq, lengths = padded(make_sessions())
    batch = build_session_batch(item_seq, lengths)
    with torch.no_grad():
        torch.testing.assert_close(model(batch), dense(item_seq, lengths), atol=TOL, rtol=0)
        torch.testing.assert_close(
            model.full_sort_scores(batch), dense.full_sort_scores(item_seq, lengths),
            atol=TOL, rtol=0,
        )


@pytest.mark.parametrize("num_layers,num_heads,step", CONFIGS)
@pytest.mark.parametrize("loss_type", ["CE", "BPR"])
def test_train_losses_and_gradients_match(num_layers, num_heads, step, loss_type):
    model, dense = make_pair(num_layers, num_heads, step, loss_type=loss_type)
    model.train()
    dense.train()
    sessions = make_sessions()
    item_seq, lengths = padded(sessions)
    target = torch.tensor([4, 9, 1, 33, 2, 12, 5, 8])
    neg = torch.tensor([7, 1, 20, 3, 39, 2, 6, 11])
    batch = build_session_batch(item_seq, lengths, target=target)

    loss = model.loss(batch, neg_items=neg if loss_type == "BPR" else None)
    dense_loss = dense.loss(item_seq, lengths, target, neg if loss_type == "BPR" else None)
    torch.testing.assert_close(loss, dense_loss, atol=TOL, rtol=0)
    loss.backward()
    dense_loss.backward()

    ours = {name: p for name, p in model.named_parameters()}
    model_grads = GCSAN(NUM_ITEMS, hidden_channels=16, num_layers=num_layers,
                        num_heads=num_heads, inner_channels=24, step=step)
    # Map our gradients to RecBole's names through the same key mapping as the weights.
    with torch.no_grad():
        for name, param in model_grads.named_parameters():
            param.copy_(ours[name].grad)
    grads = model_grads.to_recbole_state_dict()
    for name, param in dense.named_parameters():
        torch.testing.assert_close(grads[name], param.grad, atol=TOL, rtol=0, msg=name)


def test_dataloader_batch_equals_built_batch_in_model():
    model, _ = make_pair(1, 1, 1)
    model.eval()
    sessions = make_sessions()
    item_seq, lengths = padded(sessions)
    collated = Batch.from_data_list([session_to_graph(s) for s in sessions])
    with torch.no_grad():
        torch.testing.assert_close(model(collated), model(build_session_batch(item_seq, lengths)))


def test_single_unbatched_graph():
    model, dense = make_pair(1, 1, 2)
    model.eval()
    dense.eval()
    session = [4, 8, 4, 4]
    item_seq, lengths = padded([session])
    with torch.no_grad():
        torch.testing.assert_close(
            model(session_to_graph(session)), dense(item_seq, lengths), atol=TOL, rtol=0
        )


def test_padding_length_does_not_change_output():
    # The PyG model pads only to the longest session; the dense one to L.
    model, dense = make_pair(2, 2, 1)
    model.eval()
    dense.eval()
    sessions = [[1, 2], [3]]
    item_seq, lengths = padded(sessions)
    wide = torch.nn.functional.pad(item_seq, (0, 20))
    with torch.no_grad():
        torch.testing.assert_close(
            model(build_session_batch(item_seq, lengths)), dense(wide, lengths),
            atol=TOL, rtol=0,
        )
