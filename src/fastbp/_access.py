"""Who may use a network's arrays at once: inference from any number of threads, a training
call alone.

The kernels release the GIL, so two Python threads can be inside one network's kernels at
the same time. Inference (``forward``, ``predict``, ``predict_proba``, ``evaluate``) only
reads the parameters and buffers and writes into a workspace of its thread's own, so any
number of inference calls run at once. A training call (``train_step``, ``loss_and_grad``,
``fit``, ``Optimizer.step``, assigning ``params`` or ``buffers``) writes them, so it runs
alone: it waits for the inference calls under way, and inference calls that arrive while
it runs wait for it. Inference therefore sees the parameters from before or after a
training call, never a mix. ``fit`` is one training call from start to end; inference from
its own thread (a callback, validation) runs inside it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager


class SharedAccess:
    """A readers-writer lock whose writer is reentrant and may also read.

    Writers (training calls) hold ``lock``, an RLock, for as long as they write; readers
    (inference calls) hold it only to count themselves in and out. A waiting writer keeps
    new readers out, so a steady stream of inference cannot starve training.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._idle = threading.Condition(self.lock)
        self.readers = 0
        self._writers_waiting = 0
        self._writer: int | None = None  # the thread inside exclusive(), which may read

    def begin_write(self) -> None:
        """Hold the lock, once no reader is left (the hot path of ``train_step``)."""
        self.lock.acquire()
        if self.readers:
            self.wait_for_readers()

    def wait_for_readers(self) -> None:
        """(Holding the lock) wait until no reader is left, keeping new ones out."""
        self._writers_waiting += 1
        try:
            while self.readers:
                self._idle.wait()
        finally:
            self._writers_waiting -= 1
            if not self._writers_waiting:
                # readers that arrived meanwhile wait on _idle: wake them, so that they
                # queue on the lock until this writer releases it
                self._idle.notify_all()

    @contextmanager
    def exclusive(self):
        """Write, and let this thread read meanwhile (``fit``: its callbacks may predict)."""
        self.begin_write()
        outer = self._writer
        self._writer = threading.get_ident()
        try:
            yield
        finally:
            self._writer = outer
            self.lock.release()

    def begin_read(self) -> bool:
        """Count a reader in (waiting for a writer); False for the writing thread itself,
        which needs no counting."""
        if self._writer == threading.get_ident():
            return False
        with self.lock:
            while self._writers_waiting:
                self._idle.wait()
            self.readers += 1
        return True

    def end_read(self, counted: bool) -> None:
        if counted:
            with self.lock:
                self.readers -= 1
                # only a waiting writer waits for the last reader (readers wait only while
                # a writer does): a notification costs a single row's call a tenth of a
                # microsecond for nobody
                if not self.readers and self._writers_waiting:
                    self._idle.notify_all()

    def reading(self) -> _Reading:
        """A context in which this thread reads (a class, not a generator: this is every
        inference call's path, and a single row's latency)."""
        return _Reading(self)

    def __getstate__(self):  # locks are per process: a copy starts free
        raise TypeError("SharedAccess is not copied; networks rebuild theirs")


class _Reading:
    __slots__ = ("access", "counted")

    def __init__(self, access: SharedAccess) -> None:
        self.access = access

    def __enter__(self) -> None:
        self.counted = self.access.begin_read()

    def __exit__(self, *exc) -> None:
        self.access.end_read(self.counted)
