"""Data-parallel training beyond one machine, on MXNet's parameter server (``dist_sync``).

The pattern (what ``train_with_data_aug(..., kvstore='dist_sync')`` does)::

    kv = d2lcv.dist.create_kvstore('dist_sync')          # once per process
    train_iter = d2lcv.load_cifar10(True, augs, batch_size,
                                    num_parts=kv.num_workers, part_index=kv.rank)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr}, kvstore=kv)
    d2lcv.train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices,
                     kvstore=kv)

run under ``d2lcv launch -n WORKERS -s SERVERS -- python script.py``. Each worker reads its
own equal shard of the data; at each step the servers sum the workers' gradients and (MXNet's
default for a dist kvstore, ``update_on_kvstore``) run the optimizer, and every worker pulls
the same new weights. ``train_ch13`` normalises each step by the *global* batch
``batch_size * num_workers``, so one step is the mean gradient over all workers: the learning
rate is left as given (with plain SGD the linear-scaling rule would multiply it by
``num_workers``; Adam, the chapter's optimizer, is insensitive to the gradient's scale).
With ``dist_async`` each worker's push is a step of its own, normalised by its own batch
(as MXNet's Module does). Only rank 0 evaluates, prints, draws and writes checkpoints.
BatchNorm's running statistics are not gradients: each worker keeps its own, and rank 0's
are the ones saved.
"""
import atexit
import os
import sys
import threading

import mxnet as mx
from mxnet import gluon
from mxnet.base import _LIB, check_call

__all__ = ['create_kvstore', 'is_distributed', 'kv_rank', 'kv_num_workers',
           'trainer_kvstore', 'shard_indices', 'ShardedDataset', 'shard_dataset',
           'shard_loader', 'lead_only_dir', 'keep_param_mults', 'step_workers',
           'broadcast_params']

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
        sys.excepthook = _exit_on_uncaught
        _record_exit_codes()
        atexit.register(_finalize, _DIST[kvstore])
    return _DIST[kvstore]


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


def keep_param_mults(trainer):
    """Make ``trainer``'s per-parameter ``lr_mult`` / ``wd_mult`` survive a dist kvstore.

    With a dist kvstore the optimizer runs on the servers, which get a pickled copy of it
    without its ``param_dict`` (MXNet drops it): a parameter's ``lr_mult`` (13.2's 10x output
    layer) would silently be 1 there. This copies the multipliers that are not 1 into the
    optimizer's own ``lr_mult`` / ``wd_mult`` tables, by parameter index, which do travel.
    Call it before the first ``trainer.step`` (``train_ch13`` does). Returns ``trainer``.
    """
    opt = trainer._optimizer
    lr = {i: p.lr_mult for i, p in enumerate(trainer._params) if p.lr_mult != 1}
    wd = {i: p.wd_mult for i, p in enumerate(trainer._params) if p.wd_mult != 1}
    opt.lr_mult.update(lr)
    opt.wd_mult.update(wd)
    return trainer


#: First kvstore key :func:`broadcast_params` uses (a Trainer's keys are 0, 1, 2...).
BROADCAST_KEY_BASE = 100000


def broadcast_params(kvstore, params, key_base=BROADCAST_KEY_BASE):
    """Give every worker rank 0's values of ``params``, parameters no Trainer holds.

    A Trainer on a dist kvstore starts every worker from rank 0's values of *its*
    parameters; a frozen part of the network outside the Trainer (13.14's feature
    extractor) would otherwise keep each worker's own random initialisation, and the
    workers would train one shared head on different features. ``params``: a
    ``ParameterDict`` or a list of initialised parameters, in the same order on every
    worker. Uses keys ``key_base, key_base + 1, ...`` (away from the Trainer's). Without a
    dist kvstore: nothing to do. Returns the number of parameters broadcast.
    """
    if not is_distributed(kvstore) or isinstance(kvstore, str):
        return 0
    params = list(params.values()) if hasattr(params, 'values') else list(params)
    for i, p in enumerate(params):
        arrays = p.list_data()
        # a plain copy: a weight a convolution has used may be held in oneDNN's layout,
        # which MXNet 1.9's dist init does not send (the server then aborts, "init KEY
        # first", at the other workers' pull)
        value = mx.nd.array(arrays[0].asnumpy(), ctx=arrays[0].context,
                            dtype=arrays[0].dtype)
        # dist init: rank 0 pushes its value and all wait at a barrier; pull reads it
        kvstore.init(key_base + i, value)
        kvstore.pull(key_base + i, out=value)
        for a in arrays:
            a[:] = value.as_in_context(a.context).as_np_ndarray() \
                if hasattr(a, 'as_nd_ndarray') else value.as_in_context(a.context)
    return len(params)


def shard_indices(n, num_parts, part_index):
    """Indices of shard ``part_index`` of ``n`` examples split into ``num_parts`` equal shards.

    Strided (``part_index, part_index + num_parts, ...``) and cut to ``n // num_parts``
    examples, so every worker gets exactly as many examples (and so as many batches: with
    ``dist_sync`` a worker with one batch more would wait forever for the others).
    """
    if num_parts < 1 or not 0 <= part_index < num_parts:
        raise ValueError(f'part_index {part_index} is not in [0, num_parts={num_parts})')
    per = n // num_parts
    return list(range(part_index, per * num_parts, num_parts))


class ShardedDataset(gluon.data.Dataset):
    """The examples of ``dataset`` at ``indices`` (a view; nothing is copied)."""

    def __init__(self, dataset, indices):
        self._data = dataset
        self._indices = list(indices)

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, idx):
        return self._data[self._indices[idx]]


def shard_dataset(dataset, num_parts=1, part_index=0):
    """Equal shard ``part_index`` of ``num_parts`` of a Gluon dataset (itself if one part)."""
    if num_parts == 1 and part_index == 0:
        return dataset
    return ShardedDataset(dataset, shard_indices(len(dataset), num_parts, part_index))


def shard_loader(dataset, batch_size, kvstore=None, shuffle=True, **kwargs):
    """A training ``DataLoader`` over this worker's shard of ``dataset``.

    Without a dist kvstore: over the whole data set (``DataLoader``'s defaults). With one:
    over shard ``kv.rank`` of ``kv.num_workers`` equal shards, dropping the last partial
    batch (every worker must take as many steps of the same size). The section training
    functions build their training loaders with it, e.g.
    ``shard_loader(train_imgs.transform_first(train_augs), batch_size, kv)``.
    """
    if is_distributed(kvstore):
        dataset = shard_dataset(dataset, kv_num_workers(kvstore), kv_rank(kvstore))
        kwargs.setdefault('last_batch', 'discard')
    return gluon.data.DataLoader(dataset, batch_size, shuffle=shuffle, **kwargs)


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
