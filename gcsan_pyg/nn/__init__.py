"""Layers, losses and the model."""
from gcsan_pyg.nn.blockwise_topk import blockwise_topk
from gcsan_pyg.nn.chunked_softmax import chunked_softmax_cross_entropy
from gcsan_pyg.nn.gcsan import GCSAN
from gcsan_pyg.nn.ranking import rank_items
from gcsan_pyg.nn.sampled_softmax import (
    NegativeSampler,
    SampledSoftmaxCrossEntropy,
    sampled_softmax_cross_entropy,
)
from gcsan_pyg.nn.self_attention import SelfAttentionEncoder, SelfAttentionLayer
from gcsan_pyg.nn.session_gated_conv import SessionGatedConv

__all__ = [
    "GCSAN",
    "SessionGatedConv",
    "SelfAttentionEncoder",
    "SelfAttentionLayer",
    "chunked_softmax_cross_entropy",
    "NegativeSampler",
    "SampledSoftmaxCrossEntropy",
    "sampled_softmax_cross_entropy",
    "blockwise_topk",
    "rank_items",
]
