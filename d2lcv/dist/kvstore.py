"""The kvstore: the process's one dist ``KVStore``, and what a Trainer and a loader read
from it (rank, number of workers, workers per step).

The rules a dist kvstore brings (data shards, batch per worker, learning rate, who reports)
are written once, in docs/distributed.md ("What changes with a dist kvstore").
"""
import atexit
import os

import mxnet as mx

from ._exit import leave_promptly

__all__ = ['create_kvstore', 'is_distributed', 'kv_rank', 'kv_num_workers', 'trainer_kvstore',
           'step_workers', 'lead_only_dir']

# MXNet's dist kvstore is a process-wide singleton (ps-lite): create it once per process
_DIST = {}


def create_kvstore(kvstore='device'):
    """A kvstore for ``gluon.Trainer(..., kvstore=...)`` and ``train_ch13(kvstore=...)``.

    ``None``, ``'device'``, ``'local'``, ``'nccl'``: returned as they are (the Trainer creates
    them, as usual). ``'dist_sync'``, ``'dist_async'``, ``'dist_device_sync'``...: the
    process's ``mx.kv.create(kvstore)``, made once and reused (it joins the job described by
    the ``DMLC_*`` environment, as set by ``d2lcv launch``). A ``KVStore`` is returned as is.
    """
    if kvstore is None or isinstance(kvstore, mx.kv.KVStoreBase):
        return kvstore
    if not isinstance(kvstore, str):
        raise TypeError(f'kvstore must be a str or a KVStore, not {type(kvstore).__name__}')
    if not kvstore.startswith('dist'):
        return kvstore
    if kvstore not in _DIST:
        if 'DMLC_ROLE' not in os.environ:
            raise RuntimeError(
                f'kvstore {kvstore!r} needs the DMLC_* environment of a parameter-server '
                'job: run this under `d2lcv launch -n WORKERS -s SERVERS -- COMMAND` (or '
                "MXNet's tools/launch.py)")
        _DIST[kvstore] = mx.kv.create(kvstore)
        leave_promptly(_DIST[kvstore])
    return _DIST[kvstore]


def is_distributed(kvstore):
    """True for a dist kvstore (a ``KVStore`` whose type starts with ``dist`` or its name)."""
    if kvstore is None:
        return False
    name = kvstore if isinstance(kvstore, str) else getattr(kvstore, 'type', '')
    return name.startswith('dist')


def kv_rank(kvstore):
    """This worker's rank (0 unless ``kvstore`` is a dist ``KVStore``)."""
    return kvstore.rank if is_distributed(kvstore) and not isinstance(kvstore, str) else 0


def kv_num_workers(kvstore):
    """Number of workers (1 unless ``kvstore`` is a dist ``KVStore``)."""
    if is_distributed(kvstore) and not isinstance(kvstore, str):
        return kvstore.num_workers
    return 1


def trainer_kvstore(trainer):
    """The kvstore a ``gluon.Trainer`` was given (a ``KVStore`` or its name).

    A Trainer given a dist name creates its ``KVStore`` lazily, at its first ``step``; the
    process's dist ``KVStore`` (:func:`create_kvstore`) is given to it here instead, so
    its rank is known now.
    """
    params = getattr(trainer, '_kvstore_params', None) or {}
    config = params.get('kvstore', 'device')
    if getattr(trainer, '_kv_initialized', False):
        return trainer._kvstore if trainer._kvstore is not None else config
    if isinstance(config, str) and config.startswith('dist'):
        # the process's one dist kvstore, handed to the Trainer before it makes its own
        params['kvstore'] = create_kvstore(config)
        return params['kvstore']
    return config


def step_workers(kvstore):
    """Workers whose gradients one step sums: ``kv.num_workers`` for a synchronous dist
    kvstore, else 1 (``dist_async``: each push is a step of its own). Pass it to
    ``train_batch_ch13(..., kv_workers=...)`` / multiply ``trainer.step``'s batch size by it."""
    if is_distributed(kvstore) and not isinstance(kvstore, str) and '_sync' in kvstore.type:
        return kvstore.num_workers
    return 1


def lead_only_dir(kvstore, out_dir):
    """``(kvstore, folder)`` for a command that writes reports (``d2lcv run``).

    With a dist kvstore only rank 0 writes into ``out_dir``: the kvstore is created now
    (its rank decides) and the other ranks get a scratch folder, removed when they exit.
    """
    kv = create_kvstore(kvstore)
    if kv_rank(kv) == 0:
        return kv, out_dir
    import shutil
    import tempfile
    scratch = tempfile.mkdtemp(prefix=f'd2lcv-rank{kv_rank(kv)}-')
    atexit.register(shutil.rmtree, scratch, True)
    return kv, scratch
