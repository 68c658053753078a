"""File-system discipline shared by the hub, the Kaggle reorganisation and the twins.

Two processes may build the same folder at once (two notebooks, or every worker of a
``d2lcv launch`` job running the chapter's code). Each builder therefore

* takes a per-name lock (:func:`file_lock`, an ``flock`` on ``.<name>.lock`` next to the
  result; the kernel drops it when its holder dies, even by SIGKILL),
* writes into a fresh temporary folder whose name carries its owner's pid
  (:func:`temp_dir`), and
* renames the finished folder into place (:func:`replace_dir`), so a reader never sees a
  half-built folder and a crash leaves only a temporary folder behind, which a later
  builder removes once its owner is gone (:func:`clean_stale`).
"""
import contextlib
import os
import shutil
import sys
import tempfile

__all__ = ['file_lock', 'temp_dir', 'clean_stale', 'replace_dir', 'pid_alive', 'name_lock']


def pid_alive(pid):
    """Whether a process ``pid`` exists on this machine (zombies count as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f'/proc/{pid}/stat') as f:
            # state is the field after the parenthesised command name
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return True


@contextlib.contextmanager
def file_lock(path):
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the ``with`` block.

    The lock file itself is never removed: removing it would let a third process lock a
    new file while the second still holds the old one.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock, single-process use only
            fcntl = None
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _prefix(name, kind):
    return f'.{name}.{kind}-'


def temp_dir(parent, name, kind='tmp'):
    """A fresh folder ``parent/.<name>.<kind>-<pid>-<random>`` (same file system as the
    result, so the final rename is atomic)."""
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(dir=parent, prefix=_prefix(name, kind) + f'{os.getpid()}-')


def clean_stale(parent, name, kinds=('tmp', 'old')):
    """Remove ``parent/.<name>.<kind>-<pid>-*`` folders whose owner process is gone.

    Call it while holding the name's lock; a folder whose owner still runs (another
    machine's pid that happens to exist here, or a builder that did not take the lock) is
    left alone.
    """
    if not os.path.isdir(parent):
        return
    for entry in os.listdir(parent):
        for kind in kinds:
            prefix = _prefix(name, kind)
            if entry.startswith(prefix):
                pid = entry[len(prefix):].split('-', 1)[0]
                if pid.isdigit() and not pid_alive(int(pid)):
                    shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _exchange(a, b):
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``): a reader opening a
    file under ``b`` finds the old or the new folder, never none. False if unsupported."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_dir(tmp, target):
    """Rename the finished folder ``tmp`` to ``target``, replacing an existing ``target``.

    On Linux the two folders are exchanged in one step; elsewhere two renames (old target
    aside, new into place). The old one is deleted afterwards. Call it holding the name's
    lock.
    """
    parent, name = os.path.split(os.path.abspath(target))
    old = None
    if os.path.isdir(target) and not os.path.islink(target) and _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
        return
    if os.path.lexists(target):
        old = temp_dir(parent, name, 'old')
        os.rename(target, os.path.join(old, name))
    try:
        os.rename(tmp, target)
    except OSError:
        if old is not None:  # put the old folder back: never leave the name empty
            os.rename(os.path.join(old, name), target)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def name_lock(target):
    """The lock of folder ``target``: ``file_lock`` on ``.<name>.lock`` beside it."""
    parent, name = os.path.split(os.path.abspath(target))
    return file_lock(os.path.join(parent, f'.{name}.lock'))

