"""Batching, metrics, evaluation, checkpoints and the training loop."""
from gcsan_pyg.training.checkpoint import load_checkpoint, load_model, save_checkpoint
from gcsan_pyg.training.evaluate import evaluate, popularity_baseline
from gcsan_pyg.training.loader import SessionBatchLoader, SessionSamples
from gcsan_pyg.training.metrics import TopKMetrics
from gcsan_pyg.training.trainer import TrainConfig, Trainer

__all__ = [
    "SessionSamples",
    "SessionBatchLoader",
    "TopKMetrics",
    "evaluate",
    "popularity_baseline",
    "Trainer",
    "TrainConfig",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
]
