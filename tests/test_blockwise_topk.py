import pytest
import torch

import gcsan_pyg.nn.ranking as ranking_module
from gcsan_pyg import GCSAN, build_session_batch
from gcsan_pyg.nn import blockwise_topk


@pytest.mark.parametrize("num_cols", [4000, 4096, 4001, 43098 // 8])
@pytest.mark.parametrize("k", [1, 20, 50])
def test_equals_topk_on_random_scores(num_cols, k):
    gen = torch.Generator().manual_seed(num_cols + k)
    scores = torch.randn(37, num_cols, generator=gen)
    scores[3, :] = float("-inf")  # a row with nothing allowed
    scores[3, 7] = 1.0
    scores[5, -3:] = torch.tensor([50.0, 52.0, 51.0])  # the best, at the end of the row
    values, indices = blockwise_topk(scores, k)
    expected = scores.topk(k, dim=1)
    assert torch.equal(values, expected.values)
    # Continuous random values have no ties: the very same columns.
    finite = torch.isfinite(expected.values).all(dim=1)
    assert torch.equal(indices[finite], expected.indices[finite])
    assert torch.equal(scores.gather(1, indices), values)


def test_ties_give_the_same_values():
    # Few distinct values: many ties, the chosen columns may differ but must
    # hold the same values.
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (16, 3000), generator=gen).float()
    values, indices = blockwise_topk(scores, 40, block_size=16)
    assert torch.equal(values, scores.topk(40, dim=1).values)
    assert torch.equal(scores.gather(1, indices), values)
    assert all(len(set(row)) == 40 for row in indices.tolist())  # distinct columns


def test_all_top_entries_in_one_block():
    # 2000 columns in blocks of 32: 62 interleaved blocks, block b holding
    # columns b, b + 62, ..., b + 31 * 62, and a last block of 16 columns.
    scores = torch.zeros(2, 2000)
    block_2 = torch.arange(2, 1984, 62)
    scores[:, block_2] = torch.arange(32.0)  # the 20 best lie in block 2
    values, indices = blockwise_topk(scores, 20)
    assert torch.equal(indices, block_2.flip(0)[:20].expand(2, -1))
    assert torch.equal(values, torch.arange(31.0, 11.0, -1).expand(2, -1))
    scores[1, 1984:] = 100.0 + torch.arange(16.0)  # now the 16 best lie in the last block
    values, indices = blockwise_topk(scores, 20)
    assert torch.equal(indices[1], torch.cat([torch.arange(1999, 1983, -1), block_2[-4:].flip(0)]))
    assert torch.equal(values[1, :16], 100.0 + torch.arange(15.0, -1.0, -1))


def test_non_contiguous_scores():
    scores = torch.randn(3000, 9).t()  # [9, 3000], columns strided
    values, indices = blockwise_topk(scores, 20)
    assert torch.equal(values, scores.topk(20, dim=1).values)
    assert torch.equal(indices, scores.topk(20, dim=1).indices)


def test_narrow_matrices_fall_back_and_bad_k_raises():
    scores = torch.randn(3, 50)
    assert torch.equal(blockwise_topk(scores, 5)[0], scores.topk(5, dim=1).values)
    with pytest.raises(ValueError, match=r"'k' must lie in \[1, 50\]"):
        blockwise_topk(scores, 51)
    with pytest.raises(ValueError, match="got 0"):
        blockwise_topk(scores, 0)


def test_recommend_in_chunks_equals_full_ranking(monkeypatch):
    num_items = 3001
    torch.manual_seed(0)
    model = GCSAN(num_items, hidden_channels=8, inner_channels=16).eval()
    gen = torch.Generator().manual_seed(1)
    lengths = torch.randint(1, 6, (23,), generator=gen)
    item_seq = torch.randint(1, num_items, (23, 5), generator=gen)
    item_seq[torch.arange(5) >= lengths.unsqueeze(1)] = 0
    batch = build_session_batch(item_seq, lengths, num_items=num_items)
    with torch.no_grad():
        scores = model.full_sort_scores(batch)
    scores[:, 0] = float("-inf")
    expected = scores.topk(20, dim=1).indices
    for row in range(23):
        scores[row, item_seq[row, : lengths[row]]] = float("-inf")
    expected_unseen = scores.topk(20, dim=1).indices
    # Chunks of a fifth of the table per call: several partial top-k lists merge.
    monkeypatch.setattr(ranking_module, "SCORE_CHUNK_ELEMENTS", 23 * num_items // 5)
    assert torch.equal(model.recommend(batch, k=20), expected)
    assert torch.equal(model.recommend(batch, k=20, exclude_seen=True), expected_unseen)


def test_top_items_of_no_session():
    model = GCSAN(50, hidden_channels=8, inner_channels=16)
    assert model.top_items(torch.empty(0, 8), k=5).shape == (0, 5)
