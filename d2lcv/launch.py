"""``d2lcv launch``: run a data-parallel job on MXNet's parameter server, on one machine.

``launch(num_workers, num_servers, command)`` starts, as local processes on 127.0.0.1,
the parameter-server scheduler, ``num_servers`` servers and ``num_workers`` copies of
``command`` (the workers), each with the ``DMLC_*`` environment that MXNet's ``dist_sync`` /
``dist_async`` kvstore reads. Every line a process prints is streamed with its role and rank
as a prefix (``[worker 1] ...``), in bounded pieces (a line without a newline never sits in
memory whole). The launcher never hangs: if any process fails (exception, ``sys.exit(n)``,
signal), or a scheduler/server quits before the workers are done, or ``timeout`` seconds
pass, or its own output is closed (``| head``), it stops everything, says which process
failed, and returns non-zero.

Nothing outlives the launcher (Linux): each process runs under :mod:`d2lcv._guard`, a child
subreaper that owns every process the command starts (even those that call ``setsid`` or
ignore SIGTERM), stops them all when the command exits or the job stops, and does the same
when the launcher itself dies (SIGKILL included) or gets SIGHUP.

Worker ``i`` of the launcher is the kvstore's ``kv.rank == i``: each node gets its own
listening port (``PORT``), allotted in increasing order, and ps-lite numbers the nodes of one
host by port. The workers also see ``D2LCV_LAUNCH_RANK`` (their launcher index).

Servers and the scheduler run ``python -c "import mxnet"`` (importing MXNet with
``DMLC_ROLE=server|scheduler`` runs the server loop), so ``command`` needs no special
case for them. Several machines: :mod:`d2lcv.mxlaunch` (MXNet's own launcher, over ssh) and
the README; ``hosts`` here only accepts this machine's loopback names.

Command line (also ``python -m d2lcv.launch``)::

    d2lcv launch -n 2 -s 1 [--timeout 600] -- python train.py --kvstore dist_sync
"""
import argparse
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ['launch', 'main', 'free_ports', 'LaunchError']

LOCAL_HOSTS = ('127.0.0.1', 'localhost', '::1')
# A worker's exit code after a timeout: as timeout(1)
TIMEOUT_EXIT = 124


class LaunchError(RuntimeError):
    """Bad launcher arguments (not a failure of the launched job)."""


class _StartError(RuntimeError):
    """A process could not be started (command not found, not executable...)."""


def free_ports(n, host='127.0.0.1'):
    """``n`` distinct TCP ports free on ``host`` right now, in increasing order.

    All sockets stay bound until every port is chosen, so the ports are distinct; another
    program may still take one before the job binds it (then the job fails fast and the
    launcher reports it).
    """
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return sorted(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()


def read_hosts(path):
    """Host names from a hosts file (one per line, ``#`` comments and blanks ignored)."""
    with open(path) as f:
        hosts = [line.split('#')[0].strip() for line in f]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise LaunchError(f'{path}: no host listed')
    remote = [h for h in hosts if h not in LOCAL_HOSTS]
    if remote:
        raise LaunchError(
            f'{path}: host {remote[0]!r} is not this machine. d2lcv launch runs on one '
            'machine only; for several machines use MXNet\'s launcher: python -m '
            'd2lcv.mxlaunch -n N -s S -H HOSTS --launcher ssh "COMMAND" (README, "Several '
            'machines").')
    return hosts


_GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), '_guard.py')
# bytes read from a process at a time: a line longer than this is passed on in pieces, so
# one giant line without a newline never sits in memory whole
_CHUNK = 1 << 16


class _Output:
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


class _Proc:
    """One launched process: its label, Popen and the thread streaming its output.

    On Linux the process runs under :mod:`d2lcv._guard`, which owns everything the command
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


def _kill_all(procs, grace=4.0):
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


def check_timeout(timeout):
    """``timeout`` as a float; raise :class:`LaunchError` unless it is > 0 (``inf``: none).
    NaN compares false with every deadline and would never fire."""
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        raise LaunchError(f'--timeout must be a number of seconds, got {timeout!r}') from None
    if math.isnan(t) or t <= 0:
        raise LaunchError(f'--timeout must be a positive number of seconds (inf: no '
                          f'timeout), got {timeout!r}')
    return t


def _describe(code):
    if code is None:
        return 'still running'
    if code < 0:
        try:
            return f'killed by {signal.Signals(-code).name}'
        except ValueError:
            return f'killed by signal {-code}'
    return f'exit code {code}'


def launch(num_workers, num_servers, command, hosts=None, timeout=3600.0, env=None,
           out=None, server_command=None, linger=15.0):
    """Run ``command`` as ``num_workers`` parameter-server workers on this machine.

    Parameters
    ----------
    num_workers, num_servers : int
        Workers run ``command``; servers hold (and, with ``update_on_kvstore``, update)
        the parameters. ``num_servers`` >= 1.
    command : list of str
        The worker's argv, e.g. ``['python', 'train.py', '--kvstore', 'dist_sync']``.
    hosts : list of str or str, optional
        A list of host names or a hosts-file path; only loopback names are accepted.
    timeout : float
        Seconds before everything is killed and ``TIMEOUT_EXIT`` (124) returned.
    env : dict, optional
        Extra environment for every process.
    out : file, optional
        Where the prefixed output goes (default ``sys.stdout``).
    server_command : list of str, optional
        argv of the scheduler and servers (default ``[sys.executable, '-c', 'import mxnet']``).
    linger : float
        After every worker succeeded, seconds the scheduler/servers get to exit by themselves.

    Returns
    -------
    int
        0 if every worker exited 0; otherwise the failed process's exit code (1 if it
        was killed by a signal), 124 on timeout, 127 if a process could not be started,
        130 if interrupted. The failure is described on ``out``.
    """
    out = sys.stdout if out is None else out
    timeout = check_timeout(timeout)
    if num_workers < 1 or num_servers < 1:
        raise LaunchError(f'need at least one worker and one server (got -n {num_workers} '
                          f'-s {num_servers})')
    if not command:
        raise LaunchError('no command to launch (put it after --)')
    if isinstance(hosts, str):
        hosts = read_hosts(hosts)
    elif hosts:
        bad = [h for h in hosts if h not in LOCAL_HOSTS]
        if bad:
            raise LaunchError(f'host {bad[0]!r} is not this machine: for several machines '
                              'use python -m d2lcv.mxlaunch (see the README)')
    server_command = server_command or [sys.executable, '-c', 'import mxnet']
    root_port, *ports = free_ports(1 + num_servers + num_workers)
    base = dict(os.environ)
    base.update(env or {})
    base.update({'DMLC_PS_ROOT_URI': '127.0.0.1', 'DMLC_PS_ROOT_PORT': str(root_port),
                 'DMLC_NUM_WORKER': str(num_workers), 'DMLC_NUM_SERVER': str(num_servers),
                 'DMLC_NODE_HOST': '127.0.0.1'})
    output = _Output(out)
    procs = []

    def start(role, rank, argv, port=None):
        e = dict(base, DMLC_ROLE=role)
        if port is not None:
            e['PORT'] = str(port)
        if role == 'worker':
            e['D2LCV_LAUNCH_RANK'] = str(rank)
        exe = shutil.which(argv[0], path=e.get('PATH'))
        try:
            if exe is None:  # the guard would start; say it here, with the name
                raise FileNotFoundError(f'{argv[0]!r} is not an executable file or on PATH')
            procs.append(_Proc(role, rank, argv, e, output))
        except OSError as e:
            raise _StartError(f'cannot start {role} {rank} ({argv[0]!r}): {e}') from e

    def say(msg):
        output.write(f'[launch] {msg}\n'.encode())

    old_term = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()

    def on_term(signum, frame):
        raise KeyboardInterrupt

    if in_main:
        old_hup = signal.getsignal(signal.SIGHUP)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGHUP, on_term)  # the terminal closed: stop, as for SIGTERM
    code = 1
    try:
        start('scheduler', 0, server_command)
        for i in range(num_servers):
            start('server', i, server_command, ports[i])
        # ps-lite ranks the nodes of one host by their port: worker i gets the i-th port
        for i in range(num_workers):
            start('worker', i, list(command), ports[num_servers + i])
        say(f'{num_workers} worker(s), {num_servers} server(s) on 127.0.0.1:{root_port}; '
            f'timeout {timeout:g} s')
        workers = [p for p in procs if p.role == 'worker']
        others = [p for p in procs if p.role != 'worker']
        started = time.time()
        deadline = started + timeout
        quit_at = None
        while True:
            if output.broken.is_set():
                # the reader went away (`| head`): stop, as a Unix pipeline does
                code = 128 + signal.SIGPIPE
                break
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed:
                p = min(failed, key=lambda q: q.popen.pid)
                say(f'{p.label} (pid {p.popen.pid}) failed: {_describe(p.poll())}; '
                    'stopping the others')
                code = p.poll() if p.poll() > 0 else 1
                break
            if all(p.poll() == 0 for p in workers):
                end = time.time() + linger
                while time.time() < end and any(p.poll() is None for p in others):
                    time.sleep(0.05)
                left = [p.label for p in others if p.poll() is None]
                say(f'all {num_workers} worker(s) finished in {time.time() - started:.1f} s'
                    + (f'; {", ".join(left)} did not exit, stopped' if left else ''))
                code = 0
                break
            early = [p for p in others if p.poll() == 0]
            if early and quit_at is None:
                # servers stop once every worker reached the final barrier: the workers
                # are then exiting too, so they get ``linger`` seconds to do so
                quit_at = time.time()
            if early and time.time() > quit_at + linger:
                left = [p.label for p in workers if p.poll() is None]
                say(f'{early[0].label} quit before the workers finished ({", ".join(left)} '
                    f'still running {linger:g} s later); stopping the others')
                code = 1
                break
            if time.time() > deadline:
                left = [p.label for p in procs if p.poll() is None]
                say(f'timeout after {timeout:g} s; still running: {", ".join(left)}')
                code = TIMEOUT_EXIT
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        say('interrupted; stopping every process')
        code = 130
    except _StartError as e:
        say(f'{e}; stopping the others')
        code = 127
    finally:
        _kill_all(procs)
        if in_main:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGHUP, old_hup)
    return code


def _timeout_arg(text):
    try:
        return check_timeout(text)
    except LaunchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser(parser=None):
    """Arguments of ``d2lcv launch`` (added to ``parser`` if given)."""
    p = parser or argparse.ArgumentParser(
        prog='d2lcv launch', description='Run COMMAND as data-parallel workers on MXNet\'s '
        'parameter server (dist_sync / dist_async), as local processes on 127.0.0.1.')
    p.add_argument('-n', '--num-workers', type=int, required=True, help='worker processes')
    p.add_argument('-s', '--num-servers', type=int, default=1, help='server processes')
    p.add_argument('-H', '--hosts', help='hosts file (one machine only: loopback names)')
    p.add_argument('--timeout', type=_timeout_arg, default=3600.0,
                   help='seconds before every process is killed (default 3600; inf: never)')
    p.add_argument('command', nargs=argparse.REMAINDER, help='-- COMMAND [ARGS...]')
    return p


def run_args(args):
    """Run a parsed ``d2lcv launch`` command line; return the exit code."""
    command = list(args.command)
    if command and command[0] == '--':
        command = command[1:]
    try:
        return launch(args.num_workers, args.num_servers, command, hosts=args.hosts,
                      timeout=args.timeout)
    except LaunchError as e:
        print(f'd2lcv launch: {e}', file=sys.stderr)
        return 2


def main(argv=None):
    """``d2lcv launch -n N -s S [--hosts FILE] [--timeout SEC] -- COMMAND...``."""
    return run_args(build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
