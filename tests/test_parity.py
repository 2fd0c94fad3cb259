"""The PyG model computes what the dense (RecBole) formulation computes."""
import itertools

import pytest
import torch
from dense_gcsan import DenseGCSAN
from torch_geometric.data import Batch

from gcsan_pyg import GCSAN, build_session_batch, session_to_graph
from gcsan_pyg.interop.recbole import to_recbole_state_dict
from gcsan_pyg.nn import self_attention

NUM_ITEMS = 40
MAX_LEN = 7
# Weights of this spread make the attention far from uniform (see
# test_attention_is_not_uniform), so its gradients are not ~0.
INIT_RANGE = 0.6
# Every tensor is compared relative to its own size: |a - b| <= RTOL |b| +
# ATOL_SHARE * max|b|. Measured float32 differences: up to 2e-6 of max|b|.
RTOL = 1e-4
ATOL_SHARE = 1e-5


def assert_close_relative(actual, expected, name="", scale=None):
    scale = expected if scale is None else scale
    atol = ATOL_SHARE * float(scale.abs().max())
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=atol, msg=lambda m: f"{name}: {m}")


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


TARGET = torch.tensor([4, 9, 1, 33, 2, 12, 5, 8])
NEG = torch.tensor([7, 1, 20, 3, 39, 2, 6, 11])


def padded(sessions):
    item_seq = torch.zeros(len(sessions), MAX_LEN, dtype=torch.long)
    for row, session in enumerate(sessions):
        item_seq[row, : len(session)] = torch.tensor(session)
    return item_seq, torch.tensor([len(s) for s in sessions])


def model_kwargs(num_layers, num_heads, step, loss_type="CE", dropout=0.0):
    return dict(
        hidden_channels=16, num_layers=num_layers, num_heads=num_heads, inner_channels=24,
        num_steps=step, hidden_dropout=dropout, attn_dropout=dropout, loss_type=loss_type,
        initializer_range=INIT_RANGE,
    )


def make_pair(num_layers, num_heads, step, loss_type="CE", dropout=0.0, seed=0):
    torch.manual_seed(seed)
    kwargs = model_kwargs(num_layers, num_heads, step, loss_type, dropout)
    model = GCSAN(NUM_ITEMS, **kwargs)
    dense = DenseGCSAN(NUM_ITEMS, **kwargs)
    dense.load_state_dict(to_recbole_state_dict(model))
    return model, dense


def assert_outputs_match(model, dense):
    """Eval-mode session vectors and scores of every item."""
    model.eval()
    dense.eval()
    item_seq, lengths = padded(make_sessions())
    batch = build_session_batch(item_seq, lengths)
    with torch.no_grad():
        assert_close_relative(model.encode(batch), dense(item_seq, lengths), "session vectors")
        assert_close_relative(
            model.full_sort_scores(batch), dense.full_sort_scores(item_seq, lengths), "scores"
        )


def assert_training_matches(model, dense):
    """Train-mode loss and the gradient of every parameter."""
    model.train()
    dense.train()
    item_seq, lengths = padded(make_sessions())
    bpr = model.loss_type == "BPR"
    batch = build_session_batch(item_seq, lengths, target=TARGET)
    loss = model.loss(batch, neg_items=NEG if bpr else None)
    dense_loss = dense.loss(item_seq, lengths, TARGET, NEG if bpr else None)
    assert_close_relative(loss, dense_loss, "loss")
    loss.backward()
    dense_loss.backward()

    ours = {name: p for name, p in model.named_parameters()}
    model_grads = GCSAN(NUM_ITEMS, **model_kwargs(
        model.num_layers, model.num_heads, model.num_steps, model.loss_type
    ))
    # Map our gradients to RecBole's names through the same key mapping as the weights.
    with torch.no_grad():
        for name, param in model_grads.named_parameters():
            param.copy_(ours[name].grad)
    grads = to_recbole_state_dict(model_grads)
    dense_grads = {name: param.grad for name, param in dense.named_parameters()}
    for name, grad in dense_grads.items():
        # A key bias shifts all logits of a query alike, which the softmax
        # cancels: its gradient is 0 up to rounding, on the key weight's scale.
        scale = dense_grads[name.replace("key.bias", "key.weight")]
        assert_close_relative(grads[name], grad, name, scale)


CONFIGS = list(itertools.product([1, 2], [1, 2], [1, 2]))


@pytest.mark.parametrize("num_layers,num_heads,step", CONFIGS)
def test_eval_outputs_match(num_layers, num_heads, step):
    assert_outputs_match(*make_pair(num_layers, num_heads, step, dropout=0.3))


@pytest.mark.parametrize("num_layers,num_heads,step", CONFIGS)
@pytest.mark.parametrize("loss_type", ["CE", "BPR"])
def test_train_losses_and_gradients_match(num_layers, num_heads, step, loss_type):
    assert_training_matches(*make_pair(num_layers, num_heads, step, loss_type=loss_type))


def test_attention_is_not_uniform():
    """The attention weights the parity tests see are far from 1/n, so a
    wrong attention gradient cannot hide below the tolerance."""
    model, _ = make_pair(1, 2, 1)
    model.eval()
    item_seq, lengths = padded(make_sessions())
    batch = build_session_batch(item_seq, lengths)
    seen = []
    original = self_attention.softmax
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(self_attention, "softmax",
                      lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
        model.encode(batch)
    weights = seen[0]  # [clicks, heads]
    lengths_per_click = lengths.repeat_interleave(lengths).unsqueeze(1).float()
    assert (weights - 1 / lengths_per_click).abs().max() > 0.2


def _detach_attention_logits(patch, model):
    original = self_attention.softmax
    patch.setattr(self_attention, "softmax", lambda src, *a, **k: original(src.detach(), *a, **k))


def _swap_in_out_channels(patch, model):
    lin_in, lin_out = model.gnn.lin_in, model.gnn.lin_out
    patch.setattr(model.gnn, "lin_in", lin_out)
    patch.setattr(model.gnn, "lin_out", lin_in)


def _drop_weight_mix(patch, model):
    patch.setattr(model, "attention_weight", 1.0)  # the session vector is the encoder's alone


MUTANTS = {
    "attention logits detached": (_detach_attention_logits, "train"),
    "in/out channels swapped": (_swap_in_out_channels, "eval"),
    "omega mix dropped": (_drop_weight_mix, "eval"),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_parity_check_catches_mutants(mutant):
    """Each mutant of our model must fail the parity check it targets."""
    mutate, check = MUTANTS[mutant]
    model, dense = make_pair(2, 2, 1)
    with pytest.MonkeyPatch.context() as patch:
        mutate(patch, model)
        with pytest.raises(AssertionError):
            if check == "train":
                assert_training_matches(model, dense)
            else:
                assert_outputs_match(model, dense)


def test_dataloader_batch_equals_built_batch_in_model():
    model, _ = make_pair(1, 1, 1)
    model.eval()
    sessions = make_sessions()
    item_seq, lengths = padded(sessions)
    collated = Batch.from_data_list([session_to_graph(s) for s in sessions])
    with torch.no_grad():
        built = build_session_batch(item_seq, lengths)
        torch.testing.assert_close(model.encode(collated), model.encode(built))


def test_single_unbatched_graph():
    model, dense = make_pair(1, 1, 2)
    model.eval()
    dense.eval()
    session = [4, 8, 4, 4]
    item_seq, lengths = padded([session])
    with torch.no_grad():
        assert_close_relative(model.encode(session_to_graph(session)), dense(item_seq, lengths))


def test_padding_length_does_not_change_output():
    # The PyG model pads only to the longest session; the dense one to L.
    model, dense = make_pair(2, 2, 1)
    model.eval()
    dense.eval()
    sessions = [[1, 2], [3]]
    item_seq, lengths = padded(sessions)
    wide = torch.nn.functional.pad(item_seq, (0, 20))
    with torch.no_grad():
        built = build_session_batch(item_seq, lengths)
        assert_close_relative(model.encode(built), dense(wide, lengths))
