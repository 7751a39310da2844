"""Tasks the trainer can run: ``sparsemix train --task NAME``. See :mod:`sparsemix.tasks.base`."""
from .base import (TASK_MODULES, TASK_OPTIONS, TASKS, Extra, TaskData, TaskOptions, build_task,
                   check_extras, load_all, register_task)

__all__ = ["TASKS", "TASK_MODULES", "TASK_OPTIONS", "TaskOptions", "TaskData", "Extra", "build_task",
           "register_task", "check_extras", "load_all"]
