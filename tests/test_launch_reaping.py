"""``d2lcv launch`` owns its whole process tree (issue 13, item 6).

Every launched process inherits a unique environment marker; after each case the process
listing (``/proc/*/environ``) must hold no process carrying it, and each case must end
within 15 s of the event that ends the job."""
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from d2lcv.dist.launch import LaunchError, launch
from d2lcv.dist import launch as L

PY = sys.executable
pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='/proc')


def _marked(mark):
    """Pids of live processes whose environment holds ``D2LCV_TEST_MARK=mark``."""
    needle = f'D2LCV_TEST_MARK={mark}'.encode()
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/environ', 'rb') as f:
                env = f.read().split(b'\0')
            with open(f'/proc/{d}/stat') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state != 'Z':
            out.append(int(d))
    return out


def _none_left(mark, within=3.0):
    end = time.time() + within
    while _marked(mark) and time.time() < end:
        time.sleep(0.1)
    left = _marked(mark)
    for pid in left:  # do not leak them into the rest of the test run
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert left == [], f'processes left behind: {left}'


def _wait_for(path, seconds=60):
    end = time.time() + seconds
    while not os.path.exists(path) and time.time() < end:
        time.sleep(0.05)
    assert os.path.exists(path), f'{path} never appeared'
    return time.time()


# A grandchild that ignores SIGTERM and (optionally) leaves the session; the worker writes
# its pid, then a 'ready' file, then does what the case asks.
_SPAWN = textwrap.dedent('''
    import os, signal, subprocess, sys, time
    out, how, then = sys.argv[1], sys.argv[2], sys.argv[3]
    child = subprocess.Popen([sys.executable, '-c',
        'import os, signal, time\\n'
        'signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n'
        'time.sleep(300)'], start_new_session=(how == 'setsid'))
    rank = os.environ['D2LCV_LAUNCH_RANK']
    open(os.path.join(out, f'ready{rank}'), 'w').close()
    if then == 'exit' and rank == '0':
        sys.exit(2)
    time.sleep(300)
''')


@pytest.mark.parametrize('how', ['setsid', 'same-group'])
def test_grandchild_of_a_failed_worker_is_killed(tmp_path, how):
    mark = uuid.uuid4().hex
    out = io.StringIO()
    tik = time.time()
    code = launch(2, 1, [PY, '-c', _SPAWN, str(tmp_path), how, 'exit'], timeout=60, out=out,
                  env={'D2LCV_TEST_MARK': mark})
    assert code == 2, out.getvalue()
    ready = os.path.getmtime(tmp_path / 'ready0')
    assert time.time() - ready < 15, out.getvalue()
    assert time.time() - tik < 45
    _none_left(mark)


def test_sigterm_ignoring_grandchildren_killed_on_timeout(tmp_path):
    mark = uuid.uuid4().hex
    out = io.StringIO()
    tik = time.time()
    code = launch(1, 1, [PY, '-c', _SPAWN, str(tmp_path), 'setsid', 'stay'], timeout=8,
                  out=out, env={'D2LCV_TEST_MARK': mark})
    assert code == 124, out.getvalue()
    assert time.time() - tik < 8 + 15
    _none_left(mark)


_EXIT_AFTER_KVSTORE = textwrap.dedent('''
    import os, sys, time
    from d2lcv import dist
    kv = dist.create_kvstore('dist_sync')
    if kv.rank == 0:
        open(os.path.join(sys.argv[1], 'exiting'), 'w').close()
        sys.exit(3)
    time.sleep(300)
''')


def test_sys_exit_after_create_kvstore_ends_the_job(tmp_path):
    mark = uuid.uuid4().hex
    out = io.StringIO()
    env = {'D2LCV_TEST_MARK': mark, 'OMP_NUM_THREADS': '1'}
    code = launch(2, 1, [PY, '-c', _EXIT_AFTER_KVSTORE, str(tmp_path)], timeout=90, out=out,
                  env=env)
    text = out.getvalue()
    assert code == 3, text
    assert 'failed: exit code 3' in text
    assert time.time() - os.path.getmtime(tmp_path / 'exiting') < 15, text
    _none_left(mark)


def _cli_launch(tmp_path, mark, command, **kw):
    env = dict(os.environ, D2LCV_TEST_MARK=mark, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([PY, '-m', 'd2lcv.dist.launch', '-n', '1', '-s', '1', '--timeout', '120',
                             '--', *command], env=env, **kw)


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGHUP])
def test_launcher_killed_leaves_nothing(tmp_path, sig):
    mark = uuid.uuid4().hex
    launcher = _cli_launch(tmp_path, mark, [PY, '-c', _SPAWN, str(tmp_path), 'setsid', 'stay'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(tmp_path / 'ready0')
        time.sleep(0.5)
        assert len(_marked(mark)) >= 5  # launcher, scheduler, server, worker, grandchild
        launcher.send_signal(sig)
        killed = time.time()
        launcher.wait(15)
        _none_left(mark, within=15 - (time.time() - killed))
    finally:
        if launcher.poll() is None:
            launcher.kill()


def test_closed_stdout_stops_the_job(tmp_path):
    mark = uuid.uuid4().hex
    talk = 'import time\nwhile True:\n    print("line", flush=True)\n    time.sleep(0.01)'
    launcher = _cli_launch(tmp_path, mark, [PY, '-c', talk], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    try:
        while b'[worker 0] line' not in launcher.stdout.readline():
            pass
        launcher.stdout.close()  # as `| head` does
        closed = time.time()
        code = launcher.wait(15)
        assert time.time() - closed < 15
        assert code == 128 + signal.SIGPIPE, launcher.stderr.read()[-2000:]
        _none_left(mark)
    finally:
        if launcher.poll() is None:
            launcher.kill()


_PEAK = textwrap.dedent('''
    import os, resource, sys
    from d2lcv.dist.launch import launch
    n = int(sys.argv[1])
    worker = ("import sys; w = sys.stdout.buffer; "
              f"[w.write(b'x' * (1 << 20)) for _ in range({n})]; w.write(b'\\\\nend\\\\n')")
    with open(sys.argv[2], 'w') as out:
        code = launch(1, 1, [sys.executable, '-c', worker], timeout=120, out=out)
    print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
''')


@pytest.mark.slow
def test_giant_line_is_passed_on_in_bounded_memory(tmp_path):
    def peak(mib):
        r = subprocess.run([PY, '-c', _PEAK, str(mib), str(tmp_path / f'out{mib}')],
                           capture_output=True, timeout=120,
                           env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        code, mb = r.stdout.split()
        assert code == b'0', r.stderr
        return int(mb)
    small, big = peak(1), peak(64)
    print(f'launcher peak RSS: {small} MiB (1 MiB line), {big} MiB (64 MiB line)')
    # the 64 MiB line went through whole, with its prefix, then the next line
    assert os.path.getsize(tmp_path / 'out64') > 64 << 20
    with open(tmp_path / 'out64', 'rb') as f:
        lines = [line[:40] for line in f if line.startswith(b'[worker')]
    assert lines == [b'[worker 0] ' + b'x' * 29, b'[worker 0] end\n'], \
        lines
    assert big - small < 16, (small, big)  # MiB: a few chunks, not the line


@pytest.mark.parametrize('bad', ['nan', '-1', '0'])
def test_bad_timeout_refused(bad, capsys):
    with pytest.raises(LaunchError, match='timeout'):
        launch(1, 1, [PY, '-c', 'pass'], timeout=float(bad))
    with pytest.raises(SystemExit) as e:
        L.main(['-n', '1', '--timeout', bad, '--', PY, '-c', 'pass'])
    assert e.value.code == 2
    assert 'timeout' in capsys.readouterr().err
