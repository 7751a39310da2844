"""Ctrl-C as a graceful stop: the loop finishes its step, saves ``last.pt`` and exits with 130.

Under ``torchrun`` one Ctrl-C of the terminal reaches every worker twice: once from the terminal
(the whole foreground process group) and once forwarded by torchrun. A second SIGINT within
:data:`SAME_CTRL_C_S` of the first is therefore the same Ctrl-C, not a request to stop at once.
A later one (the user pressing Ctrl-C again) interrupts immediately. SIGTERM (what torchrun sends
when it shuts its workers down) is a graceful stop too.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Any

#: Seconds within which a repeated SIGINT counts as the same Ctrl-C (torchrun's forwarded copy).
SAME_CTRL_C_S = 2.0


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after SIGINT once a resumable ``last.pt`` has been written."""

    def __init__(self, checkpoint: str) -> None:
        super().__init__(f"interrupted; resumable checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint


class StopFlag:
    """Context manager: while active, SIGINT/SIGTERM set :attr:`set` instead of raising."""

    def __init__(self, window_s: float = SAME_CTRL_C_S) -> None:
        self.set = False
        self.window_s = window_s
        self._first_at = 0.0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():  # signals only reach main
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not self.set:
            self.set, self._first_at = True, now
        elif signum == signal.SIGINT and now - self._first_at > self.window_s:
            raise KeyboardInterrupt  # a deliberate second Ctrl-C: stop at once

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
