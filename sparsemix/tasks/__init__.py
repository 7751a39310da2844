"""Tasks the trainer can run: ``sparsemix train --task NAME``. See :mod:`sparsemix.tasks.base`."""
from .base import TASK_MODULES, TASKS, TaskData, build_task, load_all, register_task

__all__ = ["TASKS", "TASK_MODULES", "TaskData", "build_task", "register_task", "load_all"]
