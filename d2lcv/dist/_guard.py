"""Process guard of ``d2lcv launch``: ``python _guard.py LAUNCHER_PID -- COMMAND...``.

Run as a script (not imported with the package: it must start in milliseconds and must not
load MXNet). It makes itself a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``), so every
process below it -- grandchildren that called ``setsid``, orphans of a child that died --
stays in its tree, then runs ``COMMAND`` and watches three things every 50 ms:

* ``COMMAND`` exited (any code, any signal): everything still running below the guard is
  stopped (SIGTERM, SIGKILL after ``GRACE`` s) and the guard leaves with ``COMMAND``'s own
  status (re-raising its signal), so the launcher sees what happened within a poll;
* the guard got SIGTERM / SIGINT / SIGHUP (the launcher stopping the job): the same clean-up;
* the launcher died, even by SIGKILL (``PR_SET_PDEATHSIG`` plus a check of the parent pid,
  which also covers the window before ``prctl``): the same clean-up.

The tree is found by walking ``/proc`` (parent pids), not by process group, so a process
that left the group (``setsid``) or ignores SIGTERM is still found and killed.
"""
import os
import signal
import sys
import time

GRACE = 2.0  # seconds between SIGTERM and SIGKILL (the launcher waits longer)
POLL = 0.05
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


def _prctl():
    if not sys.platform.startswith('linux'):
        return None
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None


def descendants(root):
    """Pids of every live process below ``root`` (from ``/proc/*/stat`` parent pids)."""
    children = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != 'Z':
            children.setdefault(int(fields[1]), []).append(int(d))
    out, stack = [], [root]
    while stack:
        for c in children.get(stack.pop(), ()):
            out.append(c)
            stack.append(c)
    return out


def _reap():
    """Collect every exited child (orphans re-parented here too): ``{pid: status}``."""
    done = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done[pid] = status


def kill_tree(grace=GRACE):
    """SIGTERM everything below this process, SIGKILL what is left after ``grace`` s,
    and reap it; returns the exit statuses reaped meanwhile."""
    reaped = {}
    me = os.getpid()
    for pid in descendants(me):
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reaped.update(_reap())
        if not descendants(me):
            return reaped
        time.sleep(POLL)
    # repeat: a process may fork while we kill its parent
    for _ in range(10):
        left = descendants(me)
        if not left:
            break
        for pid in left:
            _signal(pid, signal.SIGKILL)
        time.sleep(POLL)
        reaped.update(_reap())
    reaped.update(_reap())
    return reaped


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _leave(status):
    """Exit as ``COMMAND`` did: same code, or killed by the same signal."""
    sys.stdout.flush()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:  # SIGKILL / SIGSTOP have no handler to reset
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        except (OSError, ValueError, RuntimeError):
            pass
        os.kill(os.getpid(), sig)
        time.sleep(1)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main(argv):
    launcher = int(argv[1])
    command = argv[3:] if argv[2:3] == ['--'] else argv[2:]
    prctl = _prctl()
    stop = []

    def on_signal(signum, frame):
        stop.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if prctl is not None:
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != launcher:  # the launcher died before prctl took effect
        os._exit(1)
    pid = os.fork()
    if pid == 0:  # the command: default signal dispositions, dies with the guard
        try:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            if prctl is not None:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            os.execvp(command[0], command)
        except OSError as e:
            os.write(2, f'cannot start {command[0]!r}: {e}\n'.encode())
        os._exit(127)
    status = None
    while True:
        reaped = _reap()
        if pid in reaped:
            status = reaped[pid]
            break
        if stop or os.getppid() != launcher:
            break
        time.sleep(POLL)
    reaped = kill_tree()
    if status is None:
        status = reaped.get(pid)
    if status is None:  # stopped from outside before the command ended
        status = (128 + (stop[0] if stop else signal.SIGTERM)) << 8
    _leave(status)


if __name__ == '__main__':
    main(sys.argv)
