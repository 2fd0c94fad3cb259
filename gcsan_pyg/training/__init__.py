"""Batching, metrics, evaluation, checkpoints and the training loop."""
from gcsan_pyg.training.checkpoint import load_checkpoint, load_model, save_checkpoint
from gcsan_pyg.training.evaluate import evaluate, popularity_baseline
from gcsan_pyg.training.interrupt import TrainingInterrupted
from gcsan_pyg.training.loader import SessionBatchLoader, SessionSamples
from gcsan_pyg.training.metrics import TopKMetrics
from gcsan_pyg.training.precision import compile_model
from gcsan_pyg.training.trainer import TrainConfig, Trainer, make_adam

__all__ = [
    "SessionSamples",
    "SessionBatchLoader",
    "TopKMetrics",
    "evaluate",
    "popularity_baseline",
    "Trainer",
    "TrainConfig",
    "TrainingInterrupted",
    "compile_model",
    "make_adam",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
]
