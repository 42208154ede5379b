"""tuneval.supervise: the process supervision shared by data-parallel evaluation and the training launcher. A
failing child interrupts the parent's own work at once, a timeout ends the run, SIGTERM/SIGINT to the parent stop
every child, and nothing (children, grandchildren in their own sessions) is left running. Tiny `python -c`
children only: no model, a few seconds in all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from repo_helpers import PROMPT_S, REPO, env, gone, running, signal_exit

from tuneval.supervise import ChildFailed, SupervisionTimeout, Supervisor, describe_status, error_summary

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)"]


def wait_for(condition, timeout: float = 30, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("work", ["blocking", "busy"])
def test_a_failing_child_interrupts_the_parent_at_once_with_its_status(work):
    """The parent's own share (a blocking call, or pure computation) is interrupted as soon as a child fails;
    the other child is stopped."""
    crasher = [sys.executable, "-c", "import sys, time\ntime.sleep(0.3)\nsys.exit(3)"]
    start = time.monotonic()
    with pytest.raises(ChildFailed, match=r"^crasher exited with status 3$") as excinfo, \
            Supervisor("test run") as group:
        sleeper = group.start("sleeper", SLEEPER)
        group.start("crasher", crasher)
        if work == "blocking":
            time.sleep(120)
        else:
            while time.monotonic() - start < 120:
                sum(range(1000))
    assert time.monotonic() - start < PROMPT_S
    assert (excinfo.value.name, excinfo.value.returncode) == ("crasher", 3)
    assert sleeper.returncode is not None, "the healthy child must be stopped too"


def test_a_child_killed_by_a_signal_is_named_with_the_signal():
    start = time.monotonic()
    with pytest.raises(ChildFailed, match=r"^rank 1 was killed by SIGKILL$"), Supervisor("test run") as group:
        victim = group.start("rank 1", SLEEPER)
        other = group.start("rank 2", SLEEPER)
        time.sleep(0.3)
        os.kill(victim.pid, signal.SIGKILL)
        time.sleep(120)
    assert time.monotonic() - start < PROMPT_S
    assert other.returncode is not None


def test_wait_returns_when_every_child_succeeds_and_reports_a_late_failure():
    with Supervisor("test run") as group:
        group.start("quick", [sys.executable, "-c", "pass"])
        group.wait()
    with pytest.raises(ChildFailed, match="late exited with status 2"), Supervisor("test run") as group:
        group.start("late", [sys.executable, "-c", "import sys, time\ntime.sleep(0.5)\nsys.exit(2)"])
        group.wait()


def test_the_timeout_stops_the_run_and_every_child():
    start = time.monotonic()
    with pytest.raises(SupervisionTimeout, match=r"^test run did not finish within 1 s; every process was stopped"), \
            Supervisor("test run", timeout_s=1) as group:
        sleeper = group.start("sleeper", SLEEPER)
        time.sleep(120)
    assert 1 <= time.monotonic() - start < PROMPT_S
    assert sleeper.returncode is not None


def test_check_false_leaves_the_exit_status_to_the_caller():
    with Supervisor("launcher", check=False) as group:
        proc = group.start("launcher", [sys.executable, "-c", "import sys; sys.exit(5)"])
        assert proc.wait(timeout=30) == 5
        time.sleep(0.6)  # the watcher has seen the exit: no interruption
    assert group.failure() is None


def test_grandchildren_in_their_own_session_are_stopped_even_once_orphaned(tmp_path):
    """A child that starts a process in a new session (as torchrun starts its ranks) and exits: the orphan was
    remembered while its parent lived, and is stopped with the rest."""
    pid_file = tmp_path / "grandchild.pid"
    middle = textwrap.dedent(f"""
        import subprocess, sys, time
        from pathlib import Path
        child = subprocess.Popen({SLEEPER!r}, start_new_session=True)
        Path({str(pid_file)!r}).write_text(str(child.pid))
        time.sleep(2.5)  # long enough for the supervisor to see the grandchild, then leave it orphaned
    """)
    with Supervisor("test run", grace_s=2) as group:
        proc = group.start("middle", [sys.executable, "-c", middle])
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the grandchild's start")
        grandchild = psutil.Process(int(pid_file.read_text()))
        assert proc.wait(timeout=30) == 0
        assert not gone(grandchild), "orphaned, still running"
    wait_for(lambda: gone(grandchild), timeout=10, what="the grandchild's end")


PARENT = textwrap.dedent("""
    import signal, sys, time
    from pathlib import Path
    from tuneval.supervise import Supervisor

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when the test runner ignores SIGINT
    sleeper = [sys.executable, "-c", "import time\\nwhile True: time.sleep(0.1)"]
    with Supervisor("test run") as group:
        children = [group.start(f"child {i}", sleeper) for i in range(2)]
        Path(sys.argv[1]).write_text(" ".join(str(c.pid) for c in children))
        while True:
            sum(range(1000))  # the parent's own work
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_parent_stops_every_child(tmp_path, signum):
    pid_file = tmp_path / "children.pid"
    with running([sys.executable, "-c", PARENT, str(pid_file)], cwd=REPO, env=env()) as parent:
        wait_for(lambda: pid_file.exists() or parent.poll() is not None, what="the children's start")
        assert parent.poll() is None, parent.stderr.read()
        children = [psutil.Process(int(pid)) for pid in pid_file.read_text().split()]
        assert len(children) == 2 and not any(gone(c) for c in children)
        signal_exit(parent, signum)
    assert [c.pid for c in children if not gone(c)] == [], "no child may outlive its parent"


def test_describe_status_and_error_summary(tmp_path):
    assert describe_status(1) == "exited with status 1"
    assert describe_status(-signal.SIGTERM) == "was killed by SIGTERM"
    error = tmp_path / "rank-1.error"
    assert error_summary(error) is None
    error.write_text("Could not load model 'x': no such directory.\n(underlying error: OSError: x)\n")
    assert error_summary(error) == "Could not load model 'x': no such directory. (underlying error: OSError: x)"
    error.write_text("y" * 2000)
    assert error_summary(error, limit=100) == "y" * 97 + "..."


LAUNCHER = textwrap.dedent("""
    import signal, subprocess, sys
    from pathlib import Path
    from tuneval.train.launch import supervise

    signal.signal(signal.SIGINT, signal.default_int_handler)
    sleeper = [sys.executable, "-c", "import time\\nwhile True: time.sleep(0.1)"]
    # like torchrun: the launched command starts its ranks in sessions of their own
    command = [sys.executable, "-c", "import subprocess, sys, time\\n"
               f"rank = subprocess.Popen({sleeper!r}, start_new_session=True)\\n"
               f"open({sys.argv[1]!r}, 'w').write(str(rank.pid))\\n"
               "while True: time.sleep(0.1)"]
    supervise(command, env=None)
""")


def test_the_training_launcher_shares_the_supervision(tmp_path):
    """train/launch.py's `supervise`: SIGTERM to the launcher stops accelerate's stand-in and the rank it started
    in its own session."""
    pid_file = tmp_path / "rank.pid"
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(pid_file)], cwd=REPO, env=env(),
                                stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text() or launcher.poll() is not None,
                 what="the rank's start")
        assert launcher.poll() is None, launcher.stderr.read()
        rank = psutil.Process(int(pid_file.read_text()))
        stand_in = psutil.Process(launcher.pid).children()
        time.sleep(0.6)  # the watcher has seen the rank
        launcher.send_signal(signal.SIGTERM)
        returncode = launcher.wait(timeout=PROMPT_S + 10)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert returncode == 128 + signal.SIGTERM, launcher.stderr.read()
    assert [p.pid for p in [rank, *stand_in] if not gone(p)] == []
