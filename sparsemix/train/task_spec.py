"""What a trained model needs to know about its task, without the task's data.

Rebuilding a task reads its data: the user's training FASTA files for ``fasta``, the packaged
genomes for the DNA tasks. Applying a trained model to new sequences (``sparsemix predict``)
needs none of it: only the model's size and input (classes, ``max_len``, vocabulary, fixed or
variable length) and how text becomes tokens. :func:`task_spec` records exactly that as plain
JSON-able data; the trainer stores it in every checkpoint (key ``"task_spec"``), and
:func:`task_from_spec` turns it back into a :class:`~sparsemix.tasks.TaskData` with empty splits,
enough for :func:`sparsemix.train.build_model`. Checkpoints written before this existed have no
``"task_spec"``: their task is rebuilt from the config as before.
"""
from __future__ import annotations

from typing import Any, Optional

from ..data.tokenizer import DNATokenizer
from ..errors import RunError
from ..tasks import TaskData

#: Layout of the stored spec; a newer one is refused rather than misread.
SPEC_VERSION = 1
#: ``TaskData`` fields that size the model (everything but the splits and ``meta``).
MODEL_FIELDS = ("kind", "num_classes", "input", "max_len", "variable_length", "vocab_size",
                "input_dim", "pad_id", "class_names")
#: ``meta`` entries worth keeping (plain values that describe the inputs, never data or paths).
META_KEYS = ("task", "min_length", "length", "reverse_complement", "tolerance")


def task_alphabet(task: TaskData) -> Optional[str]:
    """``"dna"`` when the task's inputs are DNA tokens of :class:`DNATokenizer` (found on its
    test split, which every DNA task serves as fragments; or as a spec recorded it), else None."""
    if "alphabet" in task.meta:  # built by task_from_spec: no splits to look at
        return task.meta["alphabet"]
    tokenizer = getattr(task.test, "tokenizer", None)
    if task.input == "tokens" and isinstance(tokenizer, DNATokenizer):
        return "dna"
    return None


def task_spec(task: TaskData) -> dict[str, Any]:
    """The plain-data description of ``task`` that :func:`task_from_spec` reads back."""
    spec: dict[str, Any] = {"version": SPEC_VERSION}
    for name in MODEL_FIELDS:
        value = getattr(task, name)
        spec[name] = list(value) if name == "class_names" and value is not None else value
    spec["alphabet"] = task_alphabet(task)
    spec["meta"] = {k: task.meta[k] for k in META_KEYS if k in task.meta}
    return spec


def task_from_spec(spec: Any, source: str = "checkpoint") -> TaskData:
    """A :class:`TaskData` with empty splits, sized as the task ``spec`` describes.

    ``spec["alphabet"]`` is kept in ``meta["alphabet"]``. Raises RunError naming ``source`` for
    a spec this version cannot read.
    """
    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        version = spec.get("version") if isinstance(spec, dict) else None
        raise RunError(f"{source}: task_spec version {version!r} is not readable by this version "
                       f"(expected {SPEC_VERSION})")
    missing = [name for name in MODEL_FIELDS if name not in spec]
    if missing:
        raise RunError(f"{source}: task_spec is missing {missing}")
    fields = {name: spec[name] for name in MODEL_FIELDS}
    meta = dict(spec.get("meta") or {})
    meta["alphabet"] = spec.get("alphabet")
    return TaskData(train=[], val=[], test=[], meta=meta, **fields)  # type: ignore[arg-type]
