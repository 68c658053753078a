"""Training helpers: ``Timer``, ``Accumulator``, ``accuracy``, ``evaluate_accuracy_gpus``,
``train_batch_ch13`` and ``train_ch13`` (sections 13.1 and 13.13).

``train_ch13`` keeps the chapter's signature and printed summary, and adds what a real run
needs: ``devices`` resolved at call time, progress (Animator in Jupyter, PNG + tqdm elsewhere),
no host/device synchronisation on every batch (losses and accuracies are summed on the
device and read five times an epoch), and an optional checkpoint from which an interrupted
run resumes after its last finished epoch.
"""
import json
import os
import sys
import time

import numpy as onp
from mxnet import autograd, np

from .devices import resolve_devices, split_batch
from .plot import Animator, in_notebook

__all__ = ['Timer', 'Accumulator', 'accuracy', 'evaluate_accuracy_gpus', 'train_batch_ch13',
           'train_ch13', 'get_dataloader_workers', 'corr2d', 'net_devices']


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
                     split_f=split_batch, sync=True):
    """One step on one minibatch, split across ``devices``.

    Returns ``(loss_sum, correct)``: Python floats (as in the chapter) when ``sync``, else
    scalars on ``devices[0]`` that can be summed without waiting for the device. A ``loss``
    with an ``ignore_label`` attribute (segmentation) makes those labels never correct.
    """
    devices = resolve_devices(devices)
    X_shards, y_shards = split_f(features, labels, devices)
    with autograd.record():
        pred_shards = [net(X_shard) for X_shard in X_shards]
        ls = [loss(pred_shard, y_shard) for pred_shard, y_shard in zip(pred_shards, y_shards)]
    for l in ls:
        l.backward()
    # ignore_stale_grad: frozen or unused parameters (fine-tuning) have no fresh gradient
    trainer.step(labels.shape[0], ignore_stale_grad=True)
    home = devices[0]
    loss_sum = sum(l.sum().as_in_ctx(home) for l in ls)
    ignore = getattr(loss, 'ignore_label', None)
    correct = sum(_correct(p, y, ignore).as_in_ctx(home) for p, y in zip(pred_shards, y_shards))
    if sync:
        return float(loss_sum), float(correct)
    return loss_sum, correct


class _Checkpoint:
    """Parameters, trainer state and progress after each finished epoch.

    Files ``<path>.params``, ``<path>.states`` and ``<path>.json``; each is written under a
    temporary name and renamed, the JSON last, so it only ever names a complete epoch.
    """

    def __init__(self, path):
        self.path = path

    def exists(self):
        return os.path.exists(self.path + '.json')

    def save(self, net, trainer, state):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        for suffix, writer in (('.params', net.save_parameters),
                               ('.states', trainer.save_states)):
            tmp = f'{self.path}{suffix}.tmp'
            writer(tmp)
            os.replace(tmp, self.path + suffix)
        tmp = self.path + '.json.tmp'
        with open(tmp, 'w') as f:
            json.dump(state, f)
        os.replace(tmp, self.path + '.json')

    def load(self, net, trainer, devices):
        with open(self.path + '.json') as f:
            state = json.load(f)
        net.load_parameters(self.path + '.params', ctx=devices)
        trainer.load_states(self.path + '.states')
        return state


def _progress_bar(total, desc, enabled):
    from tqdm import tqdm
    # disable=None turns the bar off when stderr is not a terminal (CI logs stay clean)
    return tqdm(total=total, desc=desc, leave=False,
                disable=None if enabled and not in_notebook() else True)


def train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices=None,
               split_f=split_batch, *, checkpoint=None, animator=None, save_path=None,
               progress=True, verbose=True):
    """Train ``net`` on several devices, as in section 13.1, and evaluate after each epoch.

    Prints the chapter's two summary lines. Returns a dict with ``train_loss``,
    ``train_acc``, ``test_acc``, ``examples_per_sec`` (training loop wall time including the
    final device synchronisation of each epoch, data loading included), ``epochs_run`` and
    the Animator's ``history``.

    ``checkpoint``: a path prefix; after every epoch the parameters, trainer state and
    progress are saved there, and a later call with the same path resumes after the last
    saved epoch (a finished run returns at once with its saved results).
    ``save_path``: where the Animator writes its PNG outside Jupyter. ``test_iter`` may be
    ``None`` (train only, as in 13.13's final fit).

    A ``loss`` with an ``ignore_label`` attribute (``d2lcv.SegmentationLoss``: VOC's void
    255) leaves those labels out of the train and test accuracies.
    """
    devices = resolve_devices(devices)
    num_batches = len(train_iter)
    if num_batches == 0:
        raise ValueError('train_iter yields no batch (is the data set smaller than the '
                         'batch size with last_batch="discard"?)')
    legend = ['train loss', 'train acc'] + (['test acc'] if test_iter is not None else [])
    if animator is None:
        animator = Animator(xlabel='epoch', xlim=[0, num_epochs], ylim=[0, 1], legend=legend,
                            save_path=save_path)
    ckpt = _Checkpoint(checkpoint) if checkpoint else None
    start_epoch, train_seconds, examples = 0, 0.0, 0
    result = {}
    if ckpt is not None and ckpt.exists():
        state = ckpt.load(net, trainer, devices)
        start_epoch = state['epoch']
        train_seconds, examples = state['train_seconds'], state['examples']
        result = state['result']
        for x, ys in state['points']:
            animator.add(x, ys)
        if verbose:
            print(f'resuming from {checkpoint} after epoch {start_epoch}')
    points = [] if ckpt is None or start_epoch == 0 else state['points']
    report_every = max(1, num_batches // 5)
    test_acc = result.get('test_acc')
    ignore_label = getattr(loss, 'ignore_label', None)
    for epoch in range(start_epoch, num_epochs):
        # Sum of training loss, no. of correct predictions, no. of examples, no. of labels
        metric = Accumulator(4)
        bar = _progress_bar(num_batches, f'epoch {epoch + 1}/{num_epochs}', progress)
        tik = time.time()
        for i, (features, labels) in enumerate(train_iter):
            l, acc = train_batch_ch13(net, features, labels, loss, trainer, devices, split_f,
                                      sync=False)
            metric.add(l, acc, labels.shape[0], _num_labels(labels, ignore_label))
            bar.update(1)
            if (i + 1) % report_every == 0 or i + 1 == num_batches:
                # reading the sums waits for the device: five times an epoch, not every batch
                ys = (metric[0] / metric[2], metric[1] / metric[3]) + \
                    ((None,) if test_iter is not None else ())
                x = epoch + (i + 1) / num_batches
                animator.add(x, ys)
                points.append((x, ys))
                bar.set_postfix(loss=f'{ys[0]:.3f}', acc=f'{ys[1]:.3f}')
        train_seconds += time.time() - tik
        examples += metric[2]
        bar.close()
        result = {'train_loss': metric[0] / metric[2], 'train_acc': metric[1] / metric[3]}
        if test_iter is not None:
            test_acc = evaluate_accuracy_gpus(net, test_iter, split_f,
                                              ignore_label=ignore_label)
            animator.add(epoch + 1, (None, None, test_acc))
            points.append((epoch + 1, (None, None, test_acc)))
            result['test_acc'] = test_acc
        animator.flush()
        if ckpt is not None:
            ckpt.save(net, trainer, {'epoch': epoch + 1, 'train_seconds': train_seconds,
                                     'examples': examples, 'result': result,
                                     'points': points})
    result['examples_per_sec'] = examples / train_seconds if train_seconds else float('nan')
    result['epochs_run'] = num_epochs - start_epoch
    result['history'] = animator.history
    if verbose and 'train_loss' in result:
        line = f'loss {result["train_loss"]:.3f}, train acc {result["train_acc"]:.3f}'
        if test_iter is not None:
            line += f', test acc {result["test_acc"]:.3f}'
        print(line)
        print(f'{result["examples_per_sec"]:.1f} examples/sec on {str(devices)}')
    return result
