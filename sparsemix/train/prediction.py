"""``sparsemix predict``: apply a trained DNA run to new FASTA files, one TSV row per record or window.

Only the run folder is read (``config.json`` and the checkpoint: :func:`load_model` with
``data=False`` takes the task's size and classes from the checkpoint's ``task_spec``), and
nothing is written into it, so a read-only run folder works from any working directory.

Windows (0-based ``start``, ``end`` exclusive):

- no ``window``: one row per record, the whole record. It must fit the model: at most ``max_len``
  bases for a variable-length model, exactly ``max_len`` for a fixed-length one; otherwise an
  error telling to use ``--window``. Sequences are never padded or cropped silently.
- ``window=W`` (``stride=S``, default ``W``): windows ``[s, s + W)`` for ``s = 0, S, 2S, ...`` while
  they fit in the record, and a last window aligned to the record's end, ``[L - W, L)``, when
  those stop short of it, so every window has exactly ``W`` bases and the windows cover the record
  (for ``S <= W``; a stride above ``W`` skips bases between windows). A record shorter than ``W``
  is one window of the whole record for a variable-length model and an error for a fixed-length
  one. ``W`` must not exceed ``max_len``, and a fixed-length model needs ``W = max_len``.

A variable-length model takes any length up to ``max_len``; lengths outside the range it was
trained on (the task's ``min_length`` .. ``length``) are extrapolation, as for any model.
Probabilities are the softmax of the model's logits in float64 (with the run's
reverse-complement-conjoined option, if it has one, applied by the model itself); ``label`` is the
most probable class.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, TextIO

import torch
from torch import nn
from tqdm.auto import tqdm

from .._io import atomic_write_text
from ..data.fasta import read_fasta
from ..data.tokenizer import DNATokenizer
from ..errors import RunError
from ..tasks import TaskData
from .data import collate
from .inference import CHECKPOINTS, eval_device, forward, load_model
from .task_spec import task_alphabet

#: The TSV columns before the per-class probabilities ``p_<class>``.
FIXED_COLUMNS = ("record", "start", "end", "label")


def window_spans(length: int, max_len: int, variable_length: bool, window: Optional[int] = None,
                 stride: Optional[int] = None, name: str = "record") -> list[tuple[int, int]]:
    """The ``(start, end)`` windows of a record of ``length`` bases (see the module docstring).

    Raises ValueError naming the record and ``--window`` when the record cannot be predicted.
    """
    if window is None:
        if length > max_len:
            raise ValueError(f"{name} is {length} bases, longer than the model's max_len "
                             f"{max_len}; use --window (at most {max_len}) to predict windows")
        if not variable_length and length != max_len:
            raise ValueError(f"{name} is {length} bases; this fixed-length model takes exactly "
                             f"{max_len} bases: use --window {max_len}")
        return [(0, length)]
    stride = window if stride is None else stride
    if length <= window:
        if not variable_length and length != window:
            raise ValueError(f"{name} is {length} bases, shorter than --window {window}; this "
                             f"fixed-length model takes exactly {max_len} bases and never pads")
        return [(0, length)]
    spans = [(s, s + window) for s in range(0, length - window + 1, stride)]
    if spans[-1][1] < length:
        spans.append((length - window, length))  # the last window ends at the record's end
    return spans


def check_options(window: Optional[int], stride: Optional[int], batch_size: Optional[int]) -> None:
    """ValueError naming the option for a window, stride or batch size that cannot work."""
    for option, value in (("--window", window), ("--stride", stride),
                          ("--batch-size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{option} must be a positive integer, got {value!r}")
    if stride is not None and window is None:
        raise ValueError("--stride needs --window")


def check_fasta_paths(paths: Sequence["str | os.PathLike[str]"]) -> list[str]:
    """The paths as strings; an error naming ``--fasta`` and the file for one that cannot be read."""
    if not paths:
        raise ValueError("--fasta needs at least one FASTA file")
    checked = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            raise ValueError(f"--fasta {path}: is a folder, not a FASTA file")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--fasta {path}: no such file")
        if not os.access(path, os.R_OK):
            raise PermissionError(f"--fasta {path}: permission denied (not readable)")
        checked.append(path)
    return checked


def check_model_window(task: TaskData, window: Optional[int], out: str, name: str) -> None:
    """ValueError for a run (of task ``name``) that does not classify DNA, or a ``--window`` its
    model cannot take."""
    if task.kind != "classification" or task_alphabet(task) != "dna":
        raise ValueError(f"--out {out}: a run of task {name!r}, which does not classify DNA; "
                         "predict takes runs of the DNA tasks (fasta, dna-species, ...)")
    if window is None:
        return
    if window > task.max_len:
        raise ValueError(f"--window {window} is larger than the model's max_len {task.max_len}")
    if not task.variable_length and window != task.max_len:
        raise ValueError(f"--window {window}: this fixed-length model takes exactly "
                         f"{task.max_len} bases: use --window {task.max_len}")


def prediction_columns(class_names: Sequence[str]) -> list[str]:
    """``record, start, end, label, p_<class>...`` (the TSV header)."""
    return [*FIXED_COLUMNS, *(f"p_{_cell(c)}" for c in class_names)]


def predict_fasta(out: str, paths: Sequence["str | os.PathLike[str]"],
                  window: Optional[int] = None, stride: Optional[int] = None,
                  which: str = "best", device: "str | torch.device" = "cpu",
                  batch_size: Optional[int] = None, progress: bool = False
                  ) -> list[dict[str, Any]]:
    """Predict every record (or window of a record) of the FASTA files ``paths`` with run ``out``.

    Args:
        out: a run folder written by ``sparsemix train`` on a DNA task (only read).
        paths: FASTA files (plain or gzip/xz/bzip2), read with :func:`sparsemix.data.read_fasta`.
        window, stride: window length and step in bases (see the module docstring); default one
            row per whole record.
        which: ``"best"`` or ``"last"`` checkpoint.
        device: ``"cpu"`` or ``"cuda[:i]"``.
        batch_size: windows per forward pass (default: the run's evaluation batch size).
        progress: a tqdm bar on stderr (shown only when stderr is a terminal).

    Returns:
        One dict per row in file, record and window order, with the keys of
        :func:`prediction_columns`: ``record`` (the header's first word), ``start``, ``end``,
        ``label`` (the most probable class) and ``p_<class>`` (floats summing to 1).

    Raises:
        ValueError / RunError / OSError with a one-line message naming the option or file.
    """
    check_options(window, stride, batch_size)
    files = check_fasta_paths(paths)
    dev = eval_device(device)
    model, cfg, task = load_model(out, which, dev, data=False)
    check_model_window(task, window, str(out), cfg.task)
    size = batch_size or cfg.eval_batch_size or cfg.batch_size
    classes = list(task.class_names or [str(c) for c in range(task.num_classes)])
    columns = prediction_columns(classes)
    tokenizer = DNATokenizer()
    rows: list[dict[str, Any]] = []
    pending: list[tuple[str, int, int, torch.Tensor]] = []
    bar = tqdm(total=0, unit="window", desc="predict", dynamic_ncols=True,
               disable=not (progress and sys.stderr.isatty()))

    def flush() -> None:
        probs = _probabilities(model, [t for *_, t in pending], task.variable_length, dev)
        for (name, start, end, _), p in zip(pending, probs.tolist()):
            best = max(range(len(p)), key=p.__getitem__)
            rows.append(dict(zip(columns, (name, start, end, classes[best], *p))))
        bar.update(len(pending))
        pending.clear()

    try:
        for path in files:
            for record, spans in _records_and_spans(path, task, window, stride):
                bar.total += len(spans)
                bar.refresh()
                for start, end in spans:
                    tokens = tokenizer.encode_normalised(record.sequence[start:end])
                    pending.append((record.name, start, end, tokens))
                    if len(pending) == size:
                        flush()
        if pending:
            flush()
    finally:
        bar.close()
    return rows


def _records_and_spans(path: str, task: TaskData, window: Optional[int],
                       stride: Optional[int]) -> Iterator[tuple[Any, list[tuple[int, int]]]]:
    """Each record of ``path`` (streamed) with its windows; errors name the file and record."""
    for record in read_fasta(path):
        where = f"{path}, line {record.line}: record {record.name!r}"
        yield record, window_spans(len(record), task.max_len, task.variable_length, window,
                                   stride, name=where)


@torch.no_grad()
def _probabilities(model: nn.Module, tokens: list[torch.Tensor], variable_length: bool,
                   device: torch.device) -> torch.Tensor:
    """Softmax (float64) of the model's logits for each token tensor, batched as evaluate does."""
    items = [(t, torch.tensor(0)) for t in tokens]  # labels unused
    b = collate(items, range(len(items)), variable_length).to(device)
    return forward(model, b).double().softmax(-1).cpu()


def _cell(value: Any) -> str:
    """A TSV cell: floats with 8 significant digits; tabs and newlines in names become spaces."""
    if isinstance(value, float):
        return f"{value:.8g}"
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def format_tsv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as TSV text with a header line of ``columns``."""
    buf = io.StringIO()
    buf.write("\t".join(columns) + "\n")
    for row in rows:
        buf.write("\t".join(_cell(row[c]) for c in columns) + "\n")
    return buf.getvalue()


def check_output(output: "str | os.PathLike[str] | None", force: bool = False) -> None:
    """ValueError naming ``--output`` when it is a folder, or exists and ``force`` is off."""
    if output is None:
        return
    path = Path(output)
    if path.is_dir():
        raise ValueError(f"--output {output} is a folder; give a file path")
    if path.exists() and not force:
        raise ValueError(f"--output {output} already exists; choose another path or pass --force")


def write_tsv(rows: Sequence[dict[str, Any]], columns: Sequence[str],
              output: "str | os.PathLike[str] | None" = None, force: bool = False,
              stream: Optional[TextIO] = None) -> None:
    """Write ``rows`` as TSV: to ``output`` atomically (the whole file or nothing; an existing file
    only with ``force``), or to ``stream`` (default stdout) when ``output`` is None."""
    text = format_tsv(rows, columns)
    if output is None:
        (stream or sys.stdout).write(text)
        return
    check_output(output, force)
    atomic_write_text(output, text)


def run_predict(out: str, paths: Sequence[str], window: Optional[int] = None,
                stride: Optional[int] = None, output: Optional[str] = None, force: bool = False,
                which: str = "best", device: str = "cpu", batch_size: Optional[int] = None,
                progress: bool = True) -> int:
    """What ``sparsemix predict`` does: check, predict, write; returns the number of rows."""
    check_output(output, force)  # before any work: an existing output is refused at once
    rows = predict_fasta(out, paths, window, stride, which, device, batch_size, progress)
    if not rows:  # pragma: no cover - read_fasta refuses a file without records
        raise RunError("no record to predict")
    write_tsv(rows, list(rows[0]), output, force)
    return len(rows)


def add_predict_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """The ``sparsemix predict`` subcommand (its options; :func:`predict_main` runs it)."""
    pr = sub.add_parser(
        "predict", help="predict new FASTA files with a trained DNA run (TSV)",
        description="Apply a trained run to every record (or every --window of a record) of new "
        "FASTA files and write one TSV row each: record, start (0-based), end (exclusive), "
        "label (the most probable class), p_<class> for every class. Reads only the run folder "
        "(it may be read-only) and writes nothing into it.")
    pr.add_argument("--out", required=True, help="run folder written by `sparsemix train` on a "
                    "DNA task")
    pr.add_argument("--fasta", required=True, nargs="+", action="extend", metavar="FILE",
                    help="FASTA files to predict (plain, .gz, .xz or .bz2)")
    pr.add_argument("--window", type=int, default=None, help="predict windows of this many "
                    "bases (at most the model's max_len; a fixed-length model needs exactly "
                    "max_len); the last window is aligned to the record's end. Default: one row "
                    "per whole record, which must fit the model")
    pr.add_argument("--stride", type=int, default=None, help="step between window starts "
                    "(default: --window, windows side by side)")
    pr.add_argument("--output", default=None, help="TSV file to write (atomically; an existing "
                    "file is an error unless --force). Default: stdout")
    pr.add_argument("--force", action="store_true", help="replace an existing --output file")
    pr.add_argument("--which", default="best", choices=CHECKPOINTS,
                    help="best or last checkpoint (default: best)")
    pr.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default: cpu)")
    pr.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                    help="windows per forward pass (default: the run's evaluation batch size)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar (bars only show on a "
                    "terminal)")
    return pr


def predict_main(args: argparse.Namespace) -> int:
    """Run ``sparsemix predict`` from parsed arguments; errors propagate (the CLI prints one
    line and exits 2)."""
    run_predict(args.out, args.fasta, args.window, args.stride, args.output, args.force,
                args.which, args.device, args.batch_size, progress=not args.quiet)
    return 0
