"""Layers and models."""
from gcsan_pyg.nn.gcsan import GCSAN
from gcsan_pyg.nn.self_attention import SelfAttentionEncoder, SelfAttentionLayer
from gcsan_pyg.nn.session_gated_conv import SessionGatedConv

__all__ = ["GCSAN", "SessionGatedConv", "SelfAttentionEncoder", "SelfAttentionLayer"]
