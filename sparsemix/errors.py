"""User-facing errors and their one-line form (the CLI prints ``one_line(err)`` and exits 2).

This module imports nothing of the project, so every layer can raise :class:`RunError`.
"""
from __future__ import annotations


class RunError(RuntimeError):
    """A user-facing problem with a run folder, an input file or a checkpoint (printed as one line)."""


def one_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or its type name when the message is empty.

    ``OSError`` subclasses (PermissionError, NotADirectoryError, ...) name their file:
    ``"permission denied: runs/x/config.json"``.
    """
    if isinstance(err, OSError) and err.filename is not None and not isinstance(err, RunError):
        reason = (err.strerror or type(err).__name__).lower()
        return f"{reason}: {err.filename}"
    text = str(err).strip()
    if isinstance(err, KeyError) and err.args:  # str(KeyError) adds quotes around the key
        text = str(err.args[0])
    return text.splitlines()[0] if text else type(err).__name__
