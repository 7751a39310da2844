"""Training, evaluation and prediction for sparsemix models (``sparsemix train`` / ``evaluate``).

>>> from sparsemix.train import TrainConfig, train, evaluate
>>> results = train(TrainConfig(task="order", out="runs/order", length=128, epochs=5))  # doctest: +SKIP

Modules, in the order they depend on each other: :mod:`.config` (the run's options),
:mod:`.checkpoint`, :mod:`.seeding`, :mod:`.metrics`, :mod:`.data` / :mod:`.samplers` (batches),
:mod:`.distributed`, :mod:`.recipe` (optimiser, schedule), :mod:`.task_spec` (a model's task
without its data), :mod:`.inference` (evaluate, predict), :mod:`.prediction` (``sparsemix predict``
on FASTA files),
:mod:`.run_folder` (what a run folder holds), :mod:`.interrupt` (Ctrl-C), :mod:`.allocator`
(memory kept between steps), :mod:`.loop` (train).
"""
from ..errors import RunError
from .allocator import keep_freed_memory
from .config import TrainConfig
from .inference import build_model, evaluate, load_model, predict
from .interrupt import TrainingInterrupted
from .loop import train
from .metrics import throughput
from .prediction import predict_fasta
from .seeding import seed_everything

__all__ = ["TrainConfig", "train", "evaluate", "predict", "load_model", "build_model",
           "seed_everything", "RunError", "TrainingInterrupted", "throughput",
           "predict_fasta", "keep_freed_memory"]
