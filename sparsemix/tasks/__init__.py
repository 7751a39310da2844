"""Tasks the trainer can run: ``sparsemix train --task NAME``. See :mod:`sparsemix.tasks.base`."""
from .base import TASK_MODULES, TASK_OPTIONS, TASKS, TaskData, TaskOptions, build_task, load_all, register_task

__all__ = ["TASKS", "TASK_MODULES", "TASK_OPTIONS", "TaskOptions", "TaskData", "build_task", "register_task", "load_all"]
