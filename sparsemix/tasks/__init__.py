"""Tasks the trainer can run: ``sparsemix train --task NAME``. See :mod:`sparsemix.tasks.base`."""
from __future__ import annotations

import importlib

from .base import TASKS, TaskData, build_task, register_task

# Modules that register tasks; imported lazily so `import sparsemix` stays light.
_TASK_MODULES = ("sparsemix.tasks.synthetic", "sparsemix.tasks.dna")


def load_all() -> None:
    for module in _TASK_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # a real missing dependency, not a task module not written yet
                raise


__all__ = ["TASKS", "TaskData", "build_task", "register_task", "load_all"]
