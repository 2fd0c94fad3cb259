"""Batching, metrics, evaluation, checkpoints and the training loop."""
from gcsan_pyg.training.checkpoint import load_checkpoint, load_model, save_checkpoint
from gcsan_pyg.training.config import TrainConfig
from gcsan_pyg.training.evaluate import evaluate, popularity_baseline
from gcsan_pyg.training.interrupt import TrainingInterrupted
from gcsan_pyg.training.lazy_adam import LazyAdam
from gcsan_pyg.training.loader import SessionBatchLoader
from gcsan_pyg.training.metrics import TopKMetrics
from gcsan_pyg.training.negatives import uniform_negatives
from gcsan_pyg.training.precision import compile_model
from gcsan_pyg.training.resume import TrainState
from gcsan_pyg.training.trainer import Trainer

__all__ = [
    "SessionBatchLoader",
    "TopKMetrics",
    "uniform_negatives",
    "evaluate",
    "popularity_baseline",
    "Trainer",
    "TrainConfig",
    "TrainState",
    "TrainingInterrupted",
    "LazyAdam",
    "compile_model",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
]
