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

    Writers (training calls) hold ``lock``, an RLock, for as long as they write, counted in
    ``writing``. A reader (an inference call) counts itself into ``inside`` without the
    lock (a list: an append or a pop is atomic under the GIL, and a single row's latency is
    mostly this Python), then looks at ``writing``: if a writer holds the lock, the reader
    steps out again and queues on the lock. A writer counts itself in before it looks at
    ``inside``, so either it sees the reader or the reader sees it. A writer waits for the
    readers inside; a waiting writer keeps new readers out, so a steady stream of inference
    cannot starve training.
    """

    # A writer waiting for readers looks again this often even if no reader woke it: a
    # last reader that finds the lock held by a queueing reader does not wait to wake it.
    RECHECK_SECONDS = 0.002

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._idle = threading.Condition(self.lock)
        self.inside: list[None] = []  # an entry per reader counted in
        self.writing = 0  # holds of the lock by writers (one thread: the lock is reentrant)
        self._writers_waiting = 0
        self._writer: int | None = None  # the thread inside exclusive(), which may read

    def begin_write(self) -> None:
        """Hold the lock, once no reader is left (``train_step`` does the same, written out
        on its hot path)."""
        self.lock.acquire()
        self.writing += 1
        try:
            if self.inside:
                self.wait_for_readers()
        except BaseException:
            self.end_write()
            raise

    def end_write(self) -> None:
        self.writing -= 1
        self.lock.release()

    def wait_for_readers(self) -> None:
        """(Holding the lock, counted in ``writing``) wait until no reader is inside,
        keeping new ones out. A write nested in this thread's ``exclusive()`` (a callback's
        ``train_step``, EarlyStopping's restore) does not wait: its outer write already
        did, so what ``inside`` holds are readers stepping out, and waiting would release
        the lock to another writer in the middle of ``fit``."""
        if self._writer == threading.get_ident():
            return
        self._writers_waiting += 1
        try:
            while self.inside:
                self._idle.wait(self.RECHECK_SECONDS)
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
            self.end_write()

    def begin_read(self) -> bool:
        """Count a reader in (waiting for a writer); False for the writing thread itself,
        which needs no counting."""
        if self._writer == threading.get_ident():
            return False
        inside = self.inside
        inside.append(None)
        if self.writing:  # a writer holds the lock: step out, and queue on the lock
            self._leave()
            with self.lock:
                while self._writers_waiting:
                    self._idle.wait()
                inside.append(None)  # (holding the lock: no writer is writing)
        return True

    def end_read(self, counted: bool) -> None:
        if counted:
            self._leave()

    def _leave(self) -> None:
        self.inside.pop()
        if self.writing:
            # a writer may wait for this reader; if the lock is held, its holder is a
            # writer yet to look at ``inside`` or already writing (no wake-up needed), or
            # a reader queueing (the writer's RECHECK_SECONDS covers that)
            taken = False
            try:
                taken = self.lock.acquire(blocking=False)
                if taken:
                    self._idle.notify_all()
            finally:
                if taken:
                    self.lock.release()

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
