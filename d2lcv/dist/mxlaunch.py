"""MXNet's own job launcher, for runs on several machines.

``python -m d2lcv.dist.mxlaunch ARGS...`` runs ``mxnet/tools/launch.py ARGS...`` (shipped in the
``mxnet`` wheel, with ``dmlc_tracker``): ``-n WORKERS -s SERVERS -H HOSTS --launcher ssh
[--sync-dst-dir DIR] "COMMAND"``, also ``--launcher local|mpi|sge|yarn``. The only change:
``dmlc_tracker`` 1.9.1 calls ``Thread.isAlive``, which Python 3.9 removed, so the unmodified
launcher dies at once with ``AttributeError``; the method is restored as an alias of
``Thread.is_alive`` before the launcher runs.

Unlike ``d2lcv launch``, MXNet's launcher runs ``COMMAND`` for the servers and the scheduler
too (importing MXNet with ``DMLC_ROLE=server`` turns a process into a server), assigns ranks
itself, and does not stop the job when one process fails.
"""
import os
import runpy
import sys
import threading

__all__ = ['launcher_path', 'main']


def launcher_path():
    """Path of ``tools/launch.py`` inside the installed ``mxnet`` package."""
    import mxnet
    path = os.path.join(os.path.dirname(mxnet.__file__), 'tools', 'launch.py')
    if not os.path.exists(path):
        raise FileNotFoundError(f'MXNet\'s launcher is not at {path}: this mxnet wheel '
                                'does not ship tools/launch.py')
    return path


def main(argv=None):
    """Run MXNet's ``tools/launch.py`` with ``argv`` (default ``sys.argv[1:]``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not hasattr(threading.Thread, 'isAlive'):
        threading.Thread.isAlive = threading.Thread.is_alive
    path = launcher_path()
    sys.argv = [path] + argv
    try:
        runpy.run_path(path, run_name='__main__')
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
