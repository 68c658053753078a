"""The launched processes: each under :mod:`d2lcv.dist._guard`, its output streamed with a
``[role rank]`` prefix, and all of them stopped together."""
import os
import signal
import subprocess
import sys
import threading
import time

_GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), '_guard.py')
# bytes read from a process at a time: a line longer than this is passed on in pieces, so
# one giant line without a newline never sits in memory whole
_CHUNK = 1 << 16


class Output:
    """The launcher's output, shared by the pump threads; remembers a closed reader
    (``| head``) instead of dying on it, so the processes' pipes are still drained."""

    def __init__(self, out):
        self.out, self.lock, self.broken = out, threading.Lock(), threading.Event()

    def write(self, data):
        with self.lock:
            if self.broken.is_set():
                return
            try:
                _write(self.out, data)
            except (BrokenPipeError, ValueError, OSError):
                self.broken.set()
                _silence(self.out)


def _silence(out):
    """Point a closed stdout at /dev/null, so the interpreter's final flush is quiet."""
    try:
        fd = out.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


class Proc:
    """One launched process: its label, Popen and the thread streaming its output.

    On Linux the process runs under :mod:`d2lcv.dist._guard`, which owns everything the command
    starts (a child subreaper) and stops all of it when the command exits, when it is told
    to stop and when the launcher dies."""

    def __init__(self, role, rank, argv, env, output):
        self.role, self.rank = role, rank
        self.label = role if role == 'scheduler' else f'{role} {rank}'
        if sys.platform.startswith('linux'):
            argv = [sys.executable, _GUARD, str(os.getpid()), '--', *argv]
        # own session = own process group: the group gets the first SIGTERM
        self.popen = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True, preexec_fn=_die_with_parent())
        self.thread = threading.Thread(target=self._pump, args=(output,), daemon=True)
        self.thread.start()

    def _pump(self, output):
        prefix = f'[{self.label}] '.encode()
        at_start = True
        read = self.popen.stdout.readline
        for piece in iter(lambda: read(_CHUNK), b''):
            ends = piece.endswith(b'\n')
            output.write((prefix if at_start else b'') + piece)
            at_start = ends
        if not at_start:
            output.write(b'\n')
        self.popen.stdout.close()

    def poll(self):
        return self.popen.poll()

    def signal(self, sig):
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _die_with_parent():
    """On Linux, a ``preexec_fn`` that has the child killed if the launcher itself dies
    (even by SIGKILL), so no worker outlives it; elsewhere ``None``."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    pr_set_pdeathsig = 1

    def preexec():
        prctl(pr_set_pdeathsig, signal.SIGKILL)
    return preexec


def _write(out, data):
    buf = getattr(out, 'buffer', None)
    if buf is not None:
        out.flush()
        buf.write(data)
        buf.flush()
    else:
        out.write(data.decode(errors='replace'))
        out.flush()


def kill_all(procs, grace=4.0):
    """SIGTERM every live process group (each guard then stops its whole tree within
    ``_guard.GRACE`` s), then SIGKILL what is left after ``grace`` s, found by walking
    ``/proc`` below each process (not only its group)."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        p.signal(signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and any(p.poll() is None for p in live):
        time.sleep(0.05)
    for p in live:
        if p.poll() is None:
            for pid in _descendants(p.popen.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            p.signal(signal.SIGKILL)
    for p in procs:
        try:
            p.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - unkillable (D state)
            pass
        p.thread.join(timeout=2)


def _descendants(pid):
    if not os.path.isdir('/proc'):
        return []
    from . import _guard
    return _guard.descendants(pid)
