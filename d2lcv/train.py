"""Training helpers: ``Timer``, ``Accumulator``, ``accuracy``, ``evaluate_accuracy_gpus``,
``train_batch_ch13`` and ``train_ch13`` (sections 13.1 and 13.13).

``train_ch13`` keeps the chapter's signature and printed summary, and adds what a real run
needs: ``devices`` resolved at call time, progress (Animator in Jupyter, PNG + tqdm elsewhere),
no host/device synchronisation on every batch (losses and accuracies are summed on the
device and read five times an epoch), and an optional checkpoint from which an interrupted
run resumes after its last finished epoch.
"""
import functools
import hashlib
import json
import os
import pickle
import shutil
import sys
import tempfile
import time

import numpy as onp
from mxnet import autograd, np
from mxnet.base import MXNetError

from . import dist
from ._util import progress_bar as _progress_bar
from .devices import resolve_devices, split_batch
from .fsutil import clean_stale, name_lock, replace_dir, temp_dir
from .plot import Animator

__all__ = ['Timer', 'Accumulator', 'accuracy', 'evaluate_accuracy_gpus', 'train_batch_ch13',
           'train_ch13', 'fit', 'batches', 'step_decay', 'get_dataloader_workers', 'corr2d', 'net_devices',
           'CheckpointError']


class Timer:
    """Record multiple running times."""

    def __init__(self):
        self.times = []
        self.start()

    def start(self):
        self.tik = time.time()

    def stop(self):
        self.times.append(time.time() - self.tik)
        return self.times[-1]

    def avg(self):
        return sum(self.times) / len(self.times)

    def sum(self):
        return sum(self.times)

    def cumsum(self):
        return onp.array(self.times).cumsum().tolist()


class Accumulator:
    """Sum ``n`` variables. Values may be device scalars: they are read only on access."""

    def __init__(self, n):
        self.data = [0.0] * n

    def add(self, *args):
        self.data = [a + b for a, b in zip(self.data, args)]

    def reset(self):
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx):
        return float(self.data[idx])


def get_dataloader_workers():
    """Worker processes for ``DataLoader``: ``$D2LCV_NUM_WORKERS``, else min(4, cores)."""
    env = os.environ.get('D2LCV_NUM_WORKERS')
    if env is not None:
        return int(env)
    return 0 if sys.platform.startswith('win') else min(4, os.cpu_count() or 1)


def _correct(y_hat, y, ignore_label=None):
    """Number of correct predictions as a device scalar (no synchronisation).

    Labels equal to ``ignore_label`` (e.g. segmentation's void 255) never count as correct;
    :func:`_num_labels` leaves them out of the denominator.
    """
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    hit = y_hat.astype(y.dtype) == y
    if ignore_label is not None:
        hit = hit * (y != ignore_label)
    return hit.sum()


def _num_labels(y, ignore_label=None):
    """Number of labels that count for accuracy (all, or those not ``ignore_label``)."""
    return y.size if ignore_label is None else (y != ignore_label).sum()


def accuracy(y_hat, y):
    """Number of correct predictions: ``y_hat (n, q)`` scores or ``(n,)`` labels, ``y (n,)``."""
    return float(_correct(y_hat, y))


def corr2d(X, K):
    """2-D cross-correlation of ``X (H, W)`` with ``K (h, w)`` -> ``(H-h+1, W-w+1)``.

    Summed over the kernel's h*w offsets, each a whole shifted view of ``X``.
    """
    h, w = K.shape
    H, W = X.shape[0] - h + 1, X.shape[1] - w + 1
    Y = np.zeros((H, W), dtype=X.dtype, ctx=X.ctx) if hasattr(X, 'ctx') else onp.zeros((H, W))
    for a in range(h):
        for b in range(w):
            Y = Y + K[a, b] * X[a:a + H, b:b + W]
    return Y


def net_devices(net):
    """The devices a Gluon block's parameters live on."""
    return list(net.collect_params().values())[0].list_ctx()


def evaluate_accuracy_gpus(net, data_iter, split_f=split_batch, *, ignore_label=None):
    """Accuracy of ``net`` on ``data_iter``, computed on the devices the net lives on.

    ``ignore_label``: labels with this value count neither as right nor in the total.
    """
    devices = net_devices(net)
    correct, total = 0.0, 0
    for features, labels in data_iter:
        X_shards, y_shards = split_f(features, labels, devices)
        for X, y in zip(X_shards, y_shards):
            correct = correct + _correct(net(X), y, ignore_label).as_in_ctx(devices[0])
        total = total + _num_labels(labels, ignore_label)
    total = float(total)
    return float(correct) / total if total else float('nan')


def train_batch_ch13(net, features, labels, loss, trainer, devices=None,
                     split_f=split_batch, sync=True, kv_workers=1):
    """One step on one minibatch, split across ``devices``.

    Returns ``(loss_sum, correct)``: Python floats (as in the chapter) when ``sync``, else
    scalars on ``devices[0]`` that can be summed without waiting for the device. A ``loss``
    with an ``ignore_label`` attribute (segmentation) makes those labels never correct.
    ``kv_workers``: number of workers of a synchronous dist kvstore; their gradients are
    summed on the servers, so the step is normalised by the global batch
    ``labels.shape[0] * kv_workers`` (1 for ``dist_async``: each push is a step of its own).
    """
    devices = resolve_devices(devices)
    X_shards, y_shards = split_f(features, labels, devices)
    with autograd.record():
        pred_shards = [net(X_shard) for X_shard in X_shards]
        ls = [loss(pred_shard, y_shard) for pred_shard, y_shard in zip(pred_shards, y_shards)]
    for l in ls:
        l.backward()
    # ignore_stale_grad: frozen or unused parameters (fine-tuning) have no fresh gradient
    trainer.step(labels.shape[0] * kv_workers, ignore_stale_grad=True)
    home = devices[0]
    loss_sum = sum(l.sum().as_in_ctx(home) for l in ls)
    ignore = getattr(loss, 'ignore_label', None)
    correct = sum(_correct(p, y, ignore).as_in_ctx(home) for p, y in zip(pred_shards, y_shards))
    if sync:
        return float(loss_sum), float(correct)
    return loss_sum, correct


def _trainer_order(net, trainer):
    """``net``'s structural names of the trainer's parameters, in the trainer's index order.

    Gluon's Trainer numbers its parameters by their sorted *prefixed* names, and the prefixes
    come from process-wide counters (``conv9_weight`` sorts after ``conv10_weight``): the
    same model built again can number them differently, and the optimizer state, saved by
    number, would land on the wrong parameters.
    """
    names = {id(p): n for n, p in net._collect_params_with_prefix().items()}
    return [names.get(id(p)) for p in trainer._params]


def _load_states_by_name(trainer, path, saved_order, order):
    """``trainer.load_states(path)``, renumbering the saved per-parameter state (and the
    optimizer's update counts) from ``saved_order`` to ``order`` when they differ."""
    if not saved_order or saved_order == order or None in order or \
            sorted(saved_order, key=str) != sorted(order, key=str):
        trainer.load_states(path)
        return
    new_index = {old: order.index(name) for old, name in enumerate(saved_order)}
    with open(path, 'rb') as f:
        obj = pickle.load(f)
    states, optimizer = obj if isinstance(obj, tuple) and len(obj) == 2 else (obj, None)
    tables = [states]
    if optimizer is not None:
        tables += list(getattr(optimizer, '_all_index_update_counts', {}).values())
        tables.append(getattr(optimizer, 'idx2name', {}))
    for table in tables:  # in place: the optimizer aliases one of its count tables
        renumbered = {new_index.get(k, k): v for k, v in table.items()}
        table.clear()
        table.update(renumbered)
    tmp = f'{path}.renumbered{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            pickle.dump(obj, f)
        trainer.load_states(tmp)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read back; the message names the file at fault."""


def _sha1(path, chunk=1 << 20):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


class _Checkpoint:
    """Parameters, trainer state and progress after each finished epoch, as one unit.

    The checkpoint of path ``P`` is the folder ``P.ckpt/``: ``model.params``,
    ``trainer.states`` (absent with a dist kvstore that updates on the servers: MXNet
    cannot save that state from a worker, so it restarts on resume), ``state.json`` and a
    ``manifest.json`` listing each file's size and sha1, written last. Every save builds a
    fresh temporary folder (the writer's pid in its name) and swaps it for ``P.ckpt`` in one
    rename, so a kill at any moment leaves the previous checkpoint or the new one, never a
    mix; the manifest is checked on load. The state records which parameter each optimizer
    state belongs to (see ``_trainer_order``). Any failure raises :class:`CheckpointError`
    naming the file. ``P.json`` / ``P.params`` / ``P.states`` (the earlier three-file
    layout) are still read.
    """
    FORMAT = 1

    def __init__(self, path):
        self.path = path
        self.folder = path + '.ckpt'

    def exists(self):
        return os.path.isdir(self.folder) or os.path.exists(self.path + '.json')

    def check_writable(self):
        """Raise :class:`CheckpointError` now, before any training, if the checkpoint's
        folder cannot be created or written."""
        parent = os.path.dirname(os.path.abspath(self.folder))
        try:
            os.makedirs(parent, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=parent, prefix=f'.{os.path.basename(self.folder)}'
                                         '.probe-')
            os.close(fd)
            os.remove(probe)
        except OSError as e:
            raise CheckpointError(f'checkpoint {self.folder}: its folder {parent} is not '
                                  f'writable ({e.strerror or e}); pass another checkpoint '
                                  'path') from e

    def save(self, net, trainer, state):
        parent, name = os.path.split(os.path.abspath(self.folder))
        # with a dist kvstore that updates on the servers the optimizer state lives there
        with_states = not (trainer._distributed and trainer._update_on_kvstore)
        if with_states:
            state = dict(state, param_order=_trainer_order(net, trainer))
        try:
            with name_lock(self.folder):
                clean_stale(parent, name)
                tmp = temp_dir(parent, name)
                try:
                    net.save_parameters(os.path.join(tmp, 'model.params'))
                    if with_states:
                        trainer.save_states(os.path.join(tmp, 'trainer.states'))
                    with open(os.path.join(tmp, 'state.json'), 'w') as f:
                        json.dump(state, f)
                    files = {n: {'size': os.path.getsize(os.path.join(tmp, n)),
                                 'sha1': _sha1(os.path.join(tmp, n))}
                             for n in sorted(os.listdir(tmp))}
                    with open(os.path.join(tmp, 'manifest.json'), 'w') as f:
                        json.dump({'format': self.FORMAT, 'epoch': state.get('epoch'),
                                   'files': files}, f)
                    replace_dir(tmp, self.folder)
                finally:
                    if os.path.exists(tmp):
                        shutil.rmtree(tmp, ignore_errors=True)
                for suffix in ('.json', '.params', '.states'):  # the older layout's files
                    if os.path.exists(self.path + suffix):
                        os.remove(self.path + suffix)
        except OSError as e:
            raise CheckpointError(f'cannot write checkpoint {self.folder}: {e}') from e

    def _read_json(self, path):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise CheckpointError(f'{path}: unreadable checkpoint file ({e}); delete '
                                  f'{self.folder} to start afresh') from e

    def _files(self):
        """``(params, states or None, state dict)``, checked against the manifest."""
        if not os.path.isdir(self.folder):  # the earlier three-file layout
            state = self._read_json(self.path + '.json')
            states = self.path + '.states'
            return self.path + '.params', states if os.path.exists(states) else None, state
        manifest_path = os.path.join(self.folder, 'manifest.json')
        manifest = self._read_json(manifest_path)
        files = manifest.get('files') if isinstance(manifest, dict) else None
        if manifest.get('format') != self.FORMAT or not isinstance(files, dict) or \
                'model.params' not in files or 'state.json' not in files:
            raise CheckpointError(f'{manifest_path}: not a d2lcv checkpoint manifest (format '
                                  f'{self.FORMAT} with model.params and state.json)')
        for n, meta in files.items():
            p = os.path.join(self.folder, n)
            if not os.path.exists(p):
                raise CheckpointError(f'{p}: missing from the checkpoint (listed in '
                                      f'{manifest_path})')
            if os.path.getsize(p) != meta.get('size') or _sha1(p) != meta.get('sha1'):
                raise CheckpointError(f'{p}: corrupt (size or sha1 differs from '
                                      f'{manifest_path}); delete {self.folder} to start afresh')
        state = self._read_json(os.path.join(self.folder, 'state.json'))
        states = os.path.join(self.folder, 'trainer.states')
        return (os.path.join(self.folder, 'model.params'),
                states if 'trainer.states' in files else None, state)

    def load(self, net, trainer, devices, states=True):
        params, states_path, state = self._files()
        where = os.path.dirname(params) if os.path.isdir(self.folder) else params
        epoch = state.get('epoch') if isinstance(state, dict) else None
        if not isinstance(epoch, int) or epoch < 0 or not all(
                k in state for k in ('train_seconds', 'examples', 'result', 'points')):
            raise CheckpointError(f'{where}: the checkpoint state is incomplete or has no '
                                  f'valid epoch ({epoch!r})')
        try:
            net.load_parameters(params, ctx=devices)
        except (MXNetError, AssertionError, ValueError, KeyError, OSError) as e:
            raise CheckpointError(
                f'{params}: cannot be loaded into this model ({str(e).strip()[:300]}). Was it '
                f'saved from another architecture? Delete {where} or pass another '
                'checkpoint path') from e
        if states and states_path is not None:
            try:
                _load_states_by_name(trainer, states_path, state.get('param_order'),
                                     _trainer_order(net, trainer))
            except (MXNetError, pickle.UnpicklingError, EOFError, ValueError, KeyError,
                    TypeError, AttributeError, IndexError, OSError) as e:
                raise CheckpointError(f'{states_path}: the optimizer state cannot be loaded '
                                      f'({type(e).__name__}: {str(e).strip()[:300]})') from e
        return state


# ----------------------------------------------------------------------------------------
# The training engine
# ----------------------------------------------------------------------------------------

class _GlobalBatch:
    """``trainer`` as a step function sees it: ``step(batch_size)`` normalises by the
    global batch, ``batch_size * workers`` (the workers whose gradients one synchronous
    dist step sums); everything else is the Trainer's own."""

    def __init__(self, trainer, workers):
        self._trainer, self._workers = trainer, workers

    def step(self, batch_size, ignore_stale_grad=False):
        self._trainer.step(batch_size * self._workers, ignore_stale_grad=ignore_stale_grad)

    def __getattr__(self, name):
        return getattr(self._trainer, name)


def _step_decay(lr, period, decay, epoch):
    return lr * decay ** (epoch // period) if period and period > 0 else lr


def step_decay(lr, period, decay):
    """The schedule ``epoch -> lr * decay ** (epoch // period)`` (0-based epochs; ``period``
    0 or None: constant), for :func:`fit`'s ``lr_schedule``."""
    return functools.partial(_step_decay, lr, period, decay)


def batches(data_iter):
    """Each batch of ``data_iter`` as a tuple ``(X, Y, ...)``: an ``mx.io`` iterator
    (``ImageDetIter``: reset first, ``(data[0], label[0])``) or any iterable of tuples."""
    if hasattr(data_iter, 'reset'):
        data_iter.reset()
    for batch in data_iter:
        if hasattr(batch, 'data') and hasattr(batch, 'label'):
            yield batch.data[0], batch.label[0]
        else:
            yield tuple(batch)


def _num_batches(data_iter):
    """``len(data_iter)``, or an ``mx.io`` iterator's ``ceil(num_image / batch_size)``, or
    None when unknown."""
    try:
        return len(data_iter)
    except TypeError:
        n = getattr(data_iter, 'num_image', None)
        bs = getattr(data_iter, 'batch_size', None)
        return -(-n // bs) if n and bs else None


def fit(net, train_iter, step, trainer, *, epochs, metrics, curves, evaluate=None,
        eval_curves=None, eval_every=1, summary=None, devices=None, kvstore=None,
        checkpoint=None, animator=None, animator_kw=None, save_path=None, lr_schedule=None,
        max_batches=None, reports_per_epoch=5, progress=True, verbose=True):
    """Train ``net`` for ``epochs`` epochs: the one loop under every section's training.

    The section supplies what is its own, the engine does the rest (timing, metric reads,
    progress, the Animator, checkpoints, learning-rate schedule, kvstore checks, rank-0
    gating, the printed summary).

    Parameters
    ----------
    step : ``step(batch, trainer) -> sums``
        One training step on ``batch`` (a tuple ``(X, Y, ...)``, see :func:`batches`;
        ``X (B, ...)``). It calls ``trainer.step(B)`` with its *own* batch size: the trainer
        it gets normalises by the global batch under a synchronous dist kvstore. Returns a
        tuple of sums (device scalars or numbers), added up over the epoch on the device.
    metrics : ``metrics(sums) -> dict``
        Named figures from the epoch's running sums (reading them waits for the device: it
        is called ``reports_per_epoch`` times an epoch, the only reads of the loop).
    curves, eval_curves : dict ``{name: legend label}``
        The ``metrics`` figures plotted at each of those reads, and the ``evaluate``
        figures plotted after each evaluation.
    evaluate : ``evaluate(net) -> dict``, optional
        Run on rank 0 after every ``eval_every``-th epoch and after the last.
    summary : ``summary(result) -> list of str``
        The section's summary lines, printed (rank 0, ``verbose``) before ``N examples/sec
        on DEVICES``.
    kvstore : the kvstore the ``trainer`` was created with (default: read from it); they
        must agree. With a dist kvstore, ``train_iter`` is this worker's shard and must
        yield the same number of equal batches on every worker; only rank 0 evaluates,
        prints, draws and writes the checkpoint (the other ranks' ``eval_curves`` figures
        are None).
    checkpoint : path prefix of a :class:`_Checkpoint`, saved after each epoch (rank 0);
        a later call resumes after the last saved epoch.
    lr_schedule : ``lr_schedule(epoch) -> lr`` (0-based epochs), optional
        Tabulated for the epochs to run and installed as the optimizer's ``lr_scheduler``
        over its update count, so it acts the same locally and on a dist kvstore's servers
        (see :func:`_install_schedule`); e.g. :func:`step_decay`. The result's ``lr`` is
        the last epoch's rate; afterwards a local Trainer keeps that rate as a plain
        learning rate.
    max_batches : cap on the batches per epoch.

    Returns a dict: the last epoch's ``metrics`` and last ``evaluate`` figures,
    ``examples_per_sec`` (all workers; training loop wall time including each epoch's final
    device synchronisation and data loading, evaluation excluded), ``seconds``,
    ``epochs_run``, ``log`` (one dict per epoch: ``epoch`` and its figures), ``history``
    (the Animator's), ``lr`` (with ``lr_schedule``) and, under a dist kvstore,
    ``examples_per_sec_worker``, ``kvstore``, ``rank``, ``num_workers``.
    """
    devices = resolve_devices(devices)
    num_batches = _num_batches(train_iter)
    if max_batches:
        num_batches = min(num_batches or max_batches, max_batches)
    kv, distributed = _check_kvstore(trainer, kvstore)
    if num_batches == 0:
        raise ValueError('train_iter yields no batch (is the data set smaller than the '
                         'batch size with last_batch="discard"?)')
    rank, workers = dist.kv_rank(kv), dist.kv_num_workers(kv)
    # as MXNet's Module: only a synchronous step sums the gradients of all workers
    sum_workers = dist.step_workers(kv)
    step_trainer = _GlobalBatch(trainer, sum_workers) if sum_workers > 1 else trainer
    lead = rank == 0  # only rank 0 evaluates, prints, draws and writes
    verbose, progress = verbose and lead, progress and lead
    eval_curves = dict(eval_curves or {}) if evaluate is not None else {}
    if not lead:
        evaluate = None
    names = list(curves) + [k for k in eval_curves if evaluate is not None]
    labels = {**curves, **eval_curves}
    own_animator = animator is None
    animator = _lead_animator(animator, [labels[k] for k in names], epochs, animator_kw,
                              save_path, lead)
    ckpt, (start_epoch, seconds, examples, result, points, log) = _resume(
        checkpoint, net, trainer, devices, distributed, lead, animator, verbose)
    if lr_schedule is not None:
        _install_schedule(trainer, lr_schedule, num_batches, start_epoch, epochs, kv)
    report_every = max(1, (num_batches or reports_per_epoch) // reports_per_epoch)

    def plot(x, figures):
        ys = tuple(figures.get(k) for k in names)
        animator.add(x, ys)
        points.append((x, ys))

    check = _BatchCheck() if distributed else None
    for epoch in range(start_epoch, epochs):
        bar = _progress_bar(total=num_batches, desc=f'epoch {epoch + 1}/{epochs}',
                            enabled=progress)
        tik = time.time()
        figures, epoch_examples = _run_epoch(
            batches(train_iter), step, step_trainer, metrics, epoch, num_batches, max_batches,
            report_every, check, bar, plot)
        seconds += time.time() - tik
        examples += epoch_examples
        bar.close()
        result = dict(figures)
        if evaluate is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            evaluated = _floats(evaluate(net))
            plot(epoch + 1, evaluated)
            result.update(evaluated)
        log.append(dict(result, epoch=epoch + 1))
        if hasattr(animator, 'flush'):  # the PNG is throttled; write each epoch's end
            animator.flush()
        if ckpt is not None and lead:
            ckpt.save(net, trainer, {'epoch': epoch + 1, 'train_seconds': seconds,
                                     'examples': examples, 'result': result,
                                     'points': points, 'log': log})
    per_worker = examples / seconds if seconds else float('nan')
    result = dict(result, examples_per_sec=per_worker * workers, seconds=seconds,
                  # a checkpoint saved after more epochs than asked for: nothing undone
                  epochs_run=max(0, epochs - start_epoch), log=log, history=animator.history)
    if lr_schedule is not None:
        result['lr'] = lr_schedule(epochs - 1)
        _remove_schedule(trainer, distributed)
    if own_animator:
        animator.close()  # writes the last PNG; frees the figure (in Jupyter: already shown)
    for k in eval_curves:
        result.setdefault(k, None)  # same keys on every rank; rank 0 has the values
    if distributed:
        result.update(examples_per_sec_worker=per_worker, kvstore=kv.type, rank=rank,
                      num_workers=workers)
    if verbose and log:
        _print_summary(summary(result) if summary else [], result, devices, kv, per_worker)
    return result


def _lead_animator(animator, legend, epochs, animator_kw, save_path, lead):
    """The caller's Animator, or a new one; only rank 0's writes a PNG."""
    if animator is None:
        kw = dict(dict(xlabel='epoch', xlim=[0, epochs]), **(animator_kw or {}))
        return Animator(legend=legend, save_path=save_path if lead else None, **kw)
    if not lead and hasattr(animator, 'save_path'):
        animator.save_path = None
    return animator


def _resume(checkpoint, net, trainer, devices, distributed, lead, animator, verbose):
    """``(checkpoint or None, (start_epoch, seconds, examples, result, points, log))``: a
    fresh start, or the saved progress of ``checkpoint`` (loaded into ``net`` and
    ``trainer``, its points replayed into ``animator``)."""
    ckpt = _Checkpoint(checkpoint) if checkpoint else None
    if ckpt is not None and lead:
        ckpt.check_writable()  # now, not after the first epoch's work
    if ckpt is None or not ckpt.exists():
        return ckpt, (0, 0.0, 0, {}, [], [])
    # with the optimizer on a dist kvstore's servers the state was not saved
    state = ckpt.load(net, trainer, devices, states=not distributed)
    for x, ys in state['points']:
        animator.add(x, ys)
    if verbose:
        print(f'resuming from {checkpoint} after epoch {state["epoch"]}')
    return ckpt, (state['epoch'], state['train_seconds'], state['examples'], state['result'],
                  state['points'], state.get('log', []))


def _run_epoch(data, step, trainer, metrics, epoch, num_batches, max_batches, report_every,
               check, bar, plot):
    """One epoch of ``fit``: ``(figures, examples)``. The running sums stay on the device;
    ``metrics`` reads them every ``report_every`` batches and at the epoch's end."""
    sums, examples, read_at, i = None, 0, None, -1
    for i, batch in enumerate(data):
        if max_batches and i >= max_batches:
            break
        n = batch[0].shape[0]
        if check is not None:
            check(n, epoch, i)
        out = step(batch, trainer)
        sums = list(out) if sums is None else [a + b for a, b in zip(sums, out)]
        examples += n
        bar.update(1)
        if (i + 1) % report_every == 0 or i + 1 == num_batches:
            # reading the sums waits for the device: five times an epoch, not every batch
            figures, read_at = _floats(metrics(sums)), i
            plot(epoch + (i + 1) / (num_batches or i + 1), figures)
            bar.set_postfix({k: f'{v:.3g}' for k, v in figures.items()})
    if sums is None:
        raise ValueError(f'train_iter yielded no batch in epoch {epoch + 1}')
    if read_at != min(i, (max_batches or i + 1) - 1):  # length unknown: read at the end
        figures = _floats(metrics(sums))
    return figures, examples


class _BatchCheck:
    """With a dist kvstore every step must have the first step's batch size."""

    def __init__(self):
        self.first = None

    def __call__(self, n, epoch, i):
        self.first = _check_batch(self.first, n, epoch, i)


def _print_summary(lines, result, devices, kv, per_worker):
    for line in lines:
        print(line)
    where = str(devices)
    if 'num_workers' in result:
        where += f' x {result["num_workers"]} workers ({kv.type}; {per_worker:.1f} per worker)'
    print(f'{result["examples_per_sec"]:.1f} examples/sec on {where}')


def _floats(figures):
    """``figures`` with each value a Python float (a device scalar is read here) or None."""
    return {k: None if v is None else float(v) for k, v in figures.items()}


def _install_schedule(trainer, lr_schedule, num_batches, start_epoch, epochs, kv):
    """Give ``trainer``'s optimizer the rates of ``lr_schedule`` for epochs ``start_epoch``
    .. ``epochs - 1`` as its ``lr_scheduler`` over its update count.

    The rates are tabulated here and looked up by ``numpy.interp`` between each epoch's
    first and last update (a step at every epoch boundary): an object a dist kvstore's
    servers can unpickle, since they run inside ``import mxnet`` and could not import the
    caller's function (or d2lcv). A server counts one update per synchronous step, or per
    worker's push (``dist_async``, whose epochs are then approximate).
    """
    if not num_batches:
        raise ValueError('lr_schedule needs the number of batches per epoch: give '
                         'train_iter a length or pass max_batches')
    opt = trainer._optimizer
    if dist.is_distributed(kv) and trainer._update_on_kvstore is not False and \
            trainer._kv_initialized:
        raise ValueError('lr_schedule: this Trainer already sent its optimizer to the '
                         'servers; give the schedule before its first step')
    per_epoch = num_batches * (dist.kv_num_workers(kv) if 'async' in getattr(kv, 'type', '')
                               else 1)
    # a resumed local optimizer has counted the saved epochs' updates; a dist one restarts
    done, xp, fp = opt.num_update, [], []
    for e in range(start_epoch, max(epochs, start_epoch + 1)):
        first = (e - start_epoch) * per_epoch + done + 1
        lr = float(lr_schedule(e))
        xp += [first, first + per_epoch - 1]
        fp += [lr, lr]
    # plain tuples: MXNet sends the optimizer as a protocol-0 pickle, decoded as text
    opt.lr_scheduler = functools.partial(onp.interp, xp=tuple(xp), fp=tuple(fp))


def _remove_schedule(trainer, distributed):
    """After training, a local Trainer keeps the last rate as a plain learning rate (so the
    caller's ``set_learning_rate`` works as in the chapter)."""
    if not distributed:
        opt = trainer._optimizer
        lr = opt.learning_rate
        opt.lr_scheduler = None
        opt.set_learning_rate(float(lr))


# ----------------------------------------------------------------------------------------
# Section 13.1: train_ch13 on the engine
# ----------------------------------------------------------------------------------------

def train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices=None,
               split_f=split_batch, *, checkpoint=None, animator=None, save_path=None,
               progress=True, verbose=True, kvstore=None, lr_schedule=None):
    """Train ``net`` on several devices, as in section 13.1, and evaluate after each epoch.

    Prints the chapter's two summary lines. Returns a dict with ``train_loss``,
    ``train_acc``, ``test_acc``, ``examples_per_sec`` (training loop wall time including the
    final device synchronisation of each epoch, data loading included), ``epochs_run`` and
    the Animator's ``history`` (and :func:`fit`'s other keys).

    ``checkpoint``: a path prefix; after every epoch the parameters, trainer state and
    progress are saved, as one unit, in the folder ``<checkpoint>.ckpt`` (replaced in a
    single rename, checked against its manifest on load), and a later call with the same
    path resumes after the last saved epoch (a finished run returns at once with its saved
    results, ``epochs_run`` 0). An unwritable folder raises :class:`CheckpointError` before
    the first epoch; a corrupt checkpoint, or one saved from another model, raises it naming
    the file.
    ``save_path``: where the Animator writes its PNG outside Jupyter. ``test_iter`` may be
    ``None`` (train only, as in 13.13's final fit).

    A ``loss`` with an ``ignore_label`` attribute (``d2lcv.fcn.SegmentationLoss``: VOC's void
    255) leaves those labels out of the train and test accuracies.

    ``kvstore``: the kvstore the ``trainer`` was created with (default: read from the
    trainer); see :func:`fit` and :mod:`d2lcv.dist` for training on several workers (each
    synchronous step is normalised by the global batch; only rank 0 evaluates and prints).
    ``lr_schedule``: ``epoch -> lr`` (0-based), e.g. :func:`step_decay`; see :func:`fit`.
    The chapter trains at a constant rate (``None``).
    """
    ignore_label = getattr(loss, 'ignore_label', None)

    def step(batch, trainer):
        features, labels = batch
        l, correct = train_batch_ch13(net, features, labels, loss, trainer, devices, split_f,
                                      sync=False)
        return l, correct, labels.shape[0], _num_labels(labels, ignore_label)

    def evaluate(net):
        return {'test_acc': evaluate_accuracy_gpus(net, test_iter, split_f,
                                                   ignore_label=ignore_label)}

    def summary(r):
        line = f'loss {r["train_loss"]:.3f}, train acc {r["train_acc"]:.3f}'
        if r.get('test_acc') is not None:
            line += f', test acc {r["test_acc"]:.3f}'
        return [line]

    return fit(net, train_iter, step, trainer, epochs=num_epochs, devices=devices,
               metrics=lambda s: {'train_loss': s[0] / s[2], 'train_acc': s[1] / s[3]},
               curves={'train_loss': 'train loss', 'train_acc': 'train acc'},
               evaluate=evaluate if test_iter is not None else None,
               eval_curves={'test_acc': 'test acc'}, summary=summary, kvstore=kvstore,
               checkpoint=checkpoint, animator=animator, animator_kw={'ylim': [0, 1]},
               save_path=save_path, progress=progress, verbose=verbose,
               lr_schedule=lr_schedule)


def _check_kvstore(trainer, kvstore):
    """``(kv, distributed)`` for :func:`fit`: the trainer's kvstore, checked against
    the one the caller names (a dist kvstore the Trainer does not use would train each
    worker alone on its shard, silently)."""
    used = dist.trainer_kvstore(trainer)
    kv = used if kvstore is None else dist.create_kvstore(kvstore)
    if (dist.is_distributed(kv) or dist.is_distributed(used)) and kv is not used:
        raise ValueError(
            f'training with kvstore={kvstore!r} but the Trainer was created with kvstore='
            f'{getattr(used, "type", used)!r}: pass the same kvstore to both, e.g. '
            "kv = d2lcv.dist.create_kvstore('dist_sync'); "
            "gluon.Trainer(params, 'adam', {...}, kvstore=kv)")
    if dist.is_distributed(kv):
        # the servers keep the keys (0..N) and optimizer of the Trainer that first used them
        owner = getattr(kv, '_d2lcv_trainer', None)
        if owner is not None and owner is not trainer:
            raise ValueError('this dist kvstore already served another Trainer: MXNet\'s '
                             'servers hold that training\'s parameters and optimizer; run '
                             'each distributed training in its own launch')
        kv._d2lcv_trainer = trainer
        dist.keep_param_mults(trainer)  # the servers' optimizer copy loses param_dict
    return kv, dist.is_distributed(kv)


def _check_batch(first, n, epoch, i):
    """With a dist kvstore every step must have the first step's batch size."""
    if first is not None and n != first:
        raise ValueError(
            f'batch {i} of epoch {epoch + 1} has {n} examples but the first had {first}: '
            'with a dist kvstore the optimizer runs on the servers with a fixed 1/batch '
            'scale and every worker must take as many steps; give the training DataLoader '
            'last_batch="discard" and equal shards (load_cifar10(..., num_parts, part_index))')
    return n
