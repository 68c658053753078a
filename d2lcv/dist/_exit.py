"""Leaving a parameter-server job promptly: MXNet's dist kvstore waits, at interpreter
exit, for every other worker at a final barrier; a worker that fails must not wait there."""
import os
import sys
import threading

import mxnet as mx
from mxnet.base import _LIB, check_call

__all__ = ['leave_promptly']


def leave_promptly(kv):
    """Install this module's exit handling for the process's dist kvstore ``kv``."""
    import atexit
    sys.excepthook = _exit_on_uncaught
    _record_exit_codes()
    atexit.register(_finalize, kv)


# the code the main thread passed to sys.exit / exit / quit (None: not called)
_EXIT = {}


def _record_exit_codes():
    """Have ``sys.exit``, ``exit`` and ``quit`` note their code before raising SystemExit.

    At interpreter exit :func:`_finalize` runs MXNet's final barrier, which waits for every
    other worker; a worker leaving with ``sys.exit(3)`` would wait there forever (the others
    wait for its next gradient) and the launcher would see nothing until its timeout. With
    the code noted, :func:`_finalize` leaves at once instead. (A bare ``raise SystemExit(3)``
    cannot be seen from an exit hook; an uncaught exception is :func:`_exit_on_uncaught`'s.)
    """
    import builtins
    if getattr(sys.exit, '_d2lcv', False):
        return

    def wrap(original):
        def exiting(code=None):
            if threading.current_thread() is threading.main_thread():
                _EXIT['code'] = code
            return original(code)
        exiting._d2lcv = True
        return exiting

    sys.exit = wrap(sys.exit)
    for name in ('exit', 'quit'):
        if callable(getattr(builtins, name, None)):
            setattr(builtins, name, wrap(getattr(builtins, name)))


def _failure_code(code):
    """The process exit status of ``SystemExit(code)``: 0 for None/0, 1 for a message."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def _finalize(kv):
    """Leave the job while the interpreter is whole: the last barrier, then (rank 0) stop
    the servers. Left to interpreter teardown, MXNet 1.9 often aborts here (``terminate
    called without an active exception``, SIGABRT) and the job looks failed. A worker
    leaving with a non-zero ``sys.exit`` code skips the barrier (the others will never
    reach it with this worker) and exits at once with that code."""
    code = _failure_code(_EXIT.get('code'))
    if code:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    handle, kv.handle = kv.handle, None
    if handle is not None:
        mx.nd.waitall()
        check_call(_LIB.MXKVStoreFree(handle))


def _exit_on_uncaught(exc_type, exc, tb):
    """Print the traceback and leave at once, exit code 1.

    A worker that dies of an exception would otherwise never exit: MXNet's dist kvstore
    waits, at interpreter exit, for every other worker at a final barrier, and they wait
    for this worker's next gradient. Exiting hard lets the launcher see the failure.
    """
    sys.__excepthook__(exc_type, exc, tb)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
