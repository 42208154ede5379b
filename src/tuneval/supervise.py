"""Child processes that never outlive their run: the supervision shared by data-parallel evaluation
(scoring/parallel.py) and the training launcher (train/launch.py).

`Supervisor` starts the children and watches them from a thread while the main thread does its own work:

- a child that fails (a non-zero status or a signal) ends the run at once: the main thread is interrupted where it
  is (in the middle of its own share of the work) and the `with` block raises `ChildFailed`, naming the child;
- `timeout_s` bounds the whole run: past it the block raises `SupervisionTimeout`;
- SIGTERM (Slurm, DVC, `kill`) and SIGINT (Ctrl-C) to this process raise SystemExit(143) / KeyboardInterrupt in the
  main thread, so the block's cleanup runs;
- whatever way the block ends, every child and every process a child started is stopped (SIGTERM, a grace period,
  then SIGKILL) and reaped before the block is left. Grandchildren are remembered while they run, so the orphans
  of a dying child (torchrun puts its ranks in their own sessions) are stopped too.

Signals can only be handled, and the main thread only interrupted, when the supervisor runs in the main thread;
elsewhere failures and the timeout are seen by `wait()`, and cleanup still happens. POSIX only (like the rest of
the launcher): psutil finds the process tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from tuneval.errors import LaunchError

DEFAULT_GRACE_S = 10.0  # SIGTERM -> SIGKILL
POLL_S = 0.25  # how often the watcher looks for exits and at the clock
TREE_EVERY_S = 1.0  # how often it reads the process table for grandchildren


class ChildFailed(LaunchError):
    """A supervised child exited with a non-zero status or was killed by a signal."""

    def __init__(self, name: str, returncode: int):
        self.name, self.returncode = name, returncode
        super().__init__(f"{name} {describe_status(returncode)}")


class SupervisionTimeout(LaunchError):
    """The supervised run did not end within its `timeout_s`; every child was stopped."""

    def __init__(self, what: str, timeout_s: float):
        self.what, self.timeout_s = what, timeout_s
        super().__init__(f"{what} did not finish within {timeout_s:g} s; every process was stopped")


class _Interrupt(BaseException):
    """Raised in the main thread by the watcher (through a signal); __exit__ turns it into `error`. A
    BaseException, so that no `except Exception` in the interrupted code can swallow it."""

    def __init__(self, error: LaunchError):
        super().__init__(str(error))
        self.error = error


def describe_status(returncode: int) -> str:
    """`exited with status 3` / `was killed by SIGKILL` (Popen's negative return codes are signals)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def descendants(*pids: int) -> list[psutil.Process]:
    """Every live process below `pids` (one pass over the process table, however many `pids`)."""
    children_of: dict[int, list[psutil.Process]] = {}
    for proc in psutil.process_iter(["ppid"]):
        children_of.setdefault(proc.info["ppid"], []).append(proc)
    found, stack, seen = [], list(pids), set(pids)
    while stack:
        for child in children_of.get(stack.pop(), []):
            if child.pid not in seen:
                seen.add(child.pid)
                found.append(child)
                stack.append(child.pid)
    return found


def stop_all(procs: Sequence[subprocess.Popen], known: dict[int, psutil.Process] | None = None,
             grace_s: float = DEFAULT_GRACE_S) -> None:
    """End `procs`, every process they started, and the `known` processes (pid -> psutil.Process, remembered
    earlier: the orphans of a child already gone). SIGTERM, up to `grace_s`, then SIGKILL; all reaped."""
    known = dict(known or {})
    for child in descendants(*(proc.pid for proc in procs)):
        known.setdefault(child.pid, child)
    targets = [p for p in known.values() if p.is_running()]
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                targets.append(psutil.Process(proc.pid))
    for p in targets:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(targets, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    for proc in procs:  # reaped: no zombie left behind, and Popen knows its status
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class Supervisor:
    """Children started together (`start`), supervised until the `with` block ends; see the module docstring.

        with Supervisor("evaluation", timeout_s=3600) as group:
            group.start("evaluation process 1 of 2", [sys.executable, "-m", ...])
            ...                      # this process's own work; a failing child interrupts it
            group.wait()             # every child exited 0 (else ChildFailed / SupervisionTimeout)

    `check=False`: a child's exit status is the caller's to judge (the launcher reads accelerate's), so exits do
    not interrupt; the timeout and the signals still do."""

    def __init__(self, what: str, timeout_s: float | None = None, check: bool = True,
                 grace_s: float = DEFAULT_GRACE_S, poll_s: float = POLL_S):
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be a number of seconds > 0 or None, not {timeout_s!r}")
        self.what, self.timeout_s, self.check, self.grace_s, self.poll_s = what, timeout_s, check, grace_s, poll_s
        self._children: list[tuple[str, subprocess.Popen]] = []
        self._known: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._failure: LaunchError | None = None
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None
        self._deadline: float | None = None
        self._in_main = False
        self._previous: dict[int, object] = {}
        self._stopping = False  # in __exit__: signals are noted, not raised
        self._deferred: int | None = None  # a signal that arrived while stopping
        self._poked = False  # the watcher sent the main thread a SIGINT to interrupt it
        self._holding = False  # in start(): an interruption waits until the new child is registered
        self._held: int | str | None = None
        self._next_tree = 0.0

    # ----------------------------------------------------------------------------------------- public API
    def start(self, name: str, command: Sequence[str], **popen_kwargs) -> subprocess.Popen:
        """Start `command` as a supervised child called `name` (in messages); Popen's keyword arguments."""
        if self._watcher is None:
            raise RuntimeError("Supervisor.start() outside its `with` block")
        self._holding = True  # never interrupted between the fork and the registration: no unknown child
        try:
            proc = subprocess.Popen(list(command), **popen_kwargs)
            with self._lock:
                self._children.append((name, proc))
        finally:
            self._holding = False
            held, self._held = self._held, None
        if held is not None:
            self._act(held)
        return proc

    @property
    def children(self) -> list[subprocess.Popen]:
        with self._lock:
            return [proc for _, proc in self._children]

    def failure(self) -> LaunchError | None:
        """The failure the watcher saw (a child's, or the timeout), if any."""
        with self._lock:
            return self._failure

    def wait(self) -> None:
        """Wait until every child has exited: ChildFailed for the first to fail (with `check`), or
        SupervisionTimeout past `timeout_s`."""
        while True:
            if (error := self.failure()) is not None:
                raise error
            if all(proc.poll() is not None for proc in self.children):
                self._scan()  # a child that failed just now
                if (error := self.failure()) is not None:
                    raise error
                return
            time.sleep(self.poll_s)

    # ------------------------------------------------------------------------------------------ the block
    def __enter__(self) -> Supervisor:
        self._deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        self._in_main = threading.current_thread() is threading.main_thread()
        if self._in_main:
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        self._watcher = threading.Thread(target=self._watch, name=f"supervise {self.what}", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stopping = True
        self._closing.set()
        self._watcher.join()
        try:
            stop_all(self.children, self._known, self.grace_s)
        finally:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
        if isinstance(exc, _Interrupt):
            raise exc.error from None
        if exc is None and self._deferred is not None:  # a signal during the cleanup: honoured after it
            _raise_for(self._deferred)

    # ------------------------------------------------------------------------------------------- internals
    def _on_signal(self, signum, frame) -> None:
        if signum == signal.SIGINT and self._poked:
            self._poked = False
            kind: int | str = "poke"
        elif self._previous.get(signum) is signal.SIG_IGN:  # e.g. SIGINT in a background job: still ignored
            return
        else:
            kind = signum
        if self._stopping:  # the cleanup is under way: a real signal is honoured after it, a poke is moot
            if kind != "poke":
                self._deferred = self._deferred or signum
            return
        if self._holding:
            self._held = self._held or kind
            return
        self._act(kind)

    def _act(self, kind: int | str) -> None:
        if kind != "poke":
            _raise_for(kind)
        if (error := self.failure()) is not None:
            raise _Interrupt(error)

    def _watch(self) -> None:
        while not self._closing.wait(self.poll_s):
            if self._scan():
                self._interrupt_main()
                return

    def _scan(self) -> bool:
        """Record the first failure (or the timeout), True if it is new; now and then, remember the children's
        descendants (the orphans of a dying child are ours to stop too)."""
        children = list(self._children)
        if time.monotonic() >= self._next_tree:
            self._next_tree = time.monotonic() + TREE_EVERY_S
            for child in descendants(*(proc.pid for _, proc in children)):
                self._known.setdefault(child.pid, child)
        failed = None
        for name, proc in children:
            returncode = proc.poll()
            if self.check and returncode not in (None, 0) and failed is None:
                failed = ChildFailed(name, returncode)
        if failed is None and self._deadline is not None and time.monotonic() > self._deadline:
            failed = SupervisionTimeout(self.what, self.timeout_s)
        with self._lock:
            if failed is None or self._failure is not None:
                return False
            self._failure = failed
            return True

    def _interrupt_main(self) -> None:
        """Interrupt the main thread where it is (a real signal, so a blocking call returns too)."""
        if self._in_main and not self._stopping:
            self._poked = True
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise SystemExit(128 + signal.SIGTERM)
    raise KeyboardInterrupt


def exit_with_parent(poll_s: float = 1.0) -> None:
    """In a supervised child: exit as soon as the parent is gone (SIGKILLed, OOM-killed: it had no chance to stop
    us), instead of computing for nobody. A daemon thread watching the parent pid."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit with parent", daemon=True).start()


def error_summary(path: Path, limit: int = 1000) -> str | None:
    """What a child wrote to `path` about its failure, as one line (shortened past `limit` characters); None if
    it wrote nothing (killed before it could)."""
    try:
        text = " ".join(path.read_text(errors="replace").split())
    except OSError:
        return None
    return (text if len(text) <= limit else text[: limit - 3] + "...") or None
