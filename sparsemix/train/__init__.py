"""Training, evaluation and prediction for sparsemix models (``sparsemix train`` / ``evaluate``).

>>> from sparsemix.train import TrainConfig, train, evaluate
>>> results = train(TrainConfig(task="order", out="runs/order", length=128, epochs=5))  # doctest: +SKIP
"""
from .config import RunError, TrainConfig
from .trainer import (TrainingInterrupted, build_model, evaluate, load_model, predict,
                      seed_everything, train)

__all__ = ["TrainConfig", "train", "evaluate", "predict", "load_model", "build_model",
           "seed_everything", "RunError", "TrainingInterrupted"]
