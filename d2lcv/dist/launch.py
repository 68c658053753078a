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

Nothing outlives the launcher (Linux): each process runs under :mod:`d2lcv.dist._guard`, a child
subreaper that owns every process the command starts (even those that call ``setsid`` or
ignore SIGTERM), stops them all when the command exits or the job stops, and does the same
when the launcher itself dies (SIGKILL included) or gets SIGHUP.

Worker ``i`` of the launcher is the kvstore's ``kv.rank == i``: each node gets its own
listening port (``PORT``), allotted in increasing order, and ps-lite numbers the nodes of one
host by port. The workers also see ``D2LCV_LAUNCH_RANK`` (their launcher index).

Servers and the scheduler run ``python -c "import mxnet"`` (importing MXNet with
``DMLC_ROLE=server|scheduler`` runs the server loop), so ``command`` needs no special
case for them. Several machines: :mod:`d2lcv.dist.mxlaunch` (MXNet's own launcher, over ssh) and
the README; ``hosts`` here only accepts this machine's loopback names.

Command line (also ``python -m d2lcv.dist.launch``)::

    d2lcv launch -n 2 -s 1 [--timeout 600] -- python train.py --kvstore dist_sync
"""
import argparse
import contextlib
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time

from ._procs import Output, Proc, kill_all

__all__ = ['launch', 'main', 'free_ports', 'LaunchError', 'read_hosts', 'check_timeout',
           'build_parser', 'run_args', 'LOCAL_HOSTS', 'TIMEOUT_EXIT']

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
            'd2lcv.dist.mxlaunch -n N -s S -H HOSTS --launcher ssh "COMMAND" (README, "Several '
            'machines").')
    return hosts


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
    timeout = check_timeout(timeout)
    hosts = _check_job(num_workers, num_servers, command, hosts)
    job = _Job(sys.stdout if out is None else out, env, 1 + num_servers + num_workers)
    with _signals_interrupt():
        try:
            job.start_all(num_workers, num_servers, list(command),
                          server_command or [sys.executable, '-c', 'import mxnet'])
            job.say(f'{num_workers} worker(s), {num_servers} server(s) on 127.0.0.1:'
                    f'{job.root_port}; timeout {timeout:g} s')
            return job.watch(timeout, linger)
        except KeyboardInterrupt:
            job.say('interrupted; stopping every process')
            return 130
        except _StartError as e:
            job.say(f'{e}; stopping the others')
            return 127
        finally:
            kill_all(job.procs)


def _check_job(num_workers, num_servers, command, hosts):
    """Raise :class:`LaunchError` for a job this launcher cannot run; the hosts, as a list."""
    if num_workers < 1 or num_servers < 1:
        raise LaunchError(f'need at least one worker and one server (got -n {num_workers} '
                          f'-s {num_servers})')
    if not command:
        raise LaunchError('no command to launch (put it after --)')
    if isinstance(hosts, str):
        return read_hosts(hosts)
    bad = [h for h in hosts or () if h not in LOCAL_HOSTS]
    if bad:
        raise LaunchError(f'host {bad[0]!r} is not this machine: for several machines '
                          'use python -m d2lcv.dist.mxlaunch (see the README)')
    return hosts


@contextlib.contextmanager
def _signals_interrupt():
    """In the main thread, SIGTERM and SIGHUP (the terminal closed) raise KeyboardInterrupt,
    so the job is stopped as for Ctrl-C; the old handlers are back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for s in old:
        signal.signal(s, on_term)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


class _Job:
    """The scheduler, servers and workers of one launch, and the watch over them."""

    def __init__(self, out, env, num_ports):
        self.root_port, *self.ports = free_ports(num_ports)
        self.base = dict(os.environ)
        self.base.update(env or {})
        self.base.update({'DMLC_PS_ROOT_URI': '127.0.0.1',
                          'DMLC_PS_ROOT_PORT': str(self.root_port),
                          'DMLC_NODE_HOST': '127.0.0.1'})
        self.output = Output(out)
        self.procs = []

    def say(self, msg):
        self.output.write(f'[launch] {msg}\n'.encode())

    def start_all(self, num_workers, num_servers, command, server_command):
        self.base.update(DMLC_NUM_WORKER=str(num_workers), DMLC_NUM_SERVER=str(num_servers))
        self.start('scheduler', 0, server_command)
        for i in range(num_servers):
            self.start('server', i, server_command, self.ports[i])
        # ps-lite ranks the nodes of one host by their port: worker i gets the i-th port
        for i in range(num_workers):
            self.start('worker', i, command, self.ports[num_servers + i])

    def start(self, role, rank, argv, port=None):
        e = dict(self.base, DMLC_ROLE=role)
        if port is not None:
            e['PORT'] = str(port)
        if role == 'worker':
            e['D2LCV_LAUNCH_RANK'] = str(rank)
        exe = shutil.which(argv[0], path=e.get('PATH'))
        try:
            if exe is None:  # the guard would start; say it here, with the name
                raise FileNotFoundError(f'{argv[0]!r} is not an executable file or on PATH')
            self.procs.append(Proc(role, rank, argv, e, self.output))
        except OSError as err:
            raise _StartError(f'cannot start {role} {rank} ({argv[0]!r}): {err}') from err

    def watch(self, timeout, linger):
        """Poll until the job is over; its exit code (see :func:`launch`)."""
        self.workers = [p for p in self.procs if p.role == 'worker']
        self.others = [p for p in self.procs if p.role != 'worker']
        self.started = time.time()
        deadline, quit_at = self.started + timeout, None
        while True:
            code = self._over(linger)
            if code is not None:
                return code
            early = [p for p in self.others if p.poll() == 0]
            if early and quit_at is None:
                # servers stop once every worker reached the final barrier: the workers
                # are then exiting too, so they get ``linger`` seconds to do so
                quit_at = time.time()
            if early and time.time() > quit_at + linger:
                left = [p.label for p in self.workers if p.poll() is None]
                self.say(f'{early[0].label} quit before the workers finished ('
                         f'{", ".join(left)} still running {linger:g} s later); stopping '
                         'the others')
                return 1
            if time.time() > deadline:
                left = [p.label for p in self.procs if p.poll() is None]
                self.say(f'timeout after {timeout:g} s; still running: {", ".join(left)}')
                return TIMEOUT_EXIT
            time.sleep(0.05)

    def _over(self, linger):
        """The exit code if the output closed, a process failed or every worker succeeded."""
        if self.output.broken.is_set():
            # the reader went away (`| head`): stop, as a Unix pipeline does
            return 128 + signal.SIGPIPE
        failed = [p for p in self.procs if p.poll() not in (None, 0)]
        if failed:
            p = min(failed, key=lambda q: q.popen.pid)
            self.say(f'{p.label} (pid {p.popen.pid}) failed: {_describe(p.poll())}; '
                     'stopping the others')
            return p.poll() if p.poll() > 0 else 1
        if all(p.poll() == 0 for p in self.workers):
            end = time.time() + linger
            while time.time() < end and any(p.poll() is None for p in self.others):
                time.sleep(0.05)
            left = [p.label for p in self.others if p.poll() is None]
            self.say(f'all {len(self.workers)} worker(s) finished in '
                     f'{time.time() - self.started:.1f} s'
                     + (f'; {", ".join(left)} did not exit, stopped' if left else ''))
            return 0
        return None


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
