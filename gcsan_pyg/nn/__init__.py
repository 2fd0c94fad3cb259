"""Layers and models."""
from gcsan_pyg.nn.blockwise_topk import blockwise_topk
from gcsan_pyg.nn.full_softmax import full_softmax_cross_entropy
from gcsan_pyg.nn.gcsan import GCSAN
from gcsan_pyg.nn.self_attention import SelfAttentionEncoder, SelfAttentionLayer
from gcsan_pyg.nn.session_gated_conv import SessionGatedConv

__all__ = [
    "GCSAN",
    "SessionGatedConv",
    "SelfAttentionEncoder",
    "SelfAttentionLayer",
    "full_softmax_cross_entropy",
    "blockwise_topk",
]
