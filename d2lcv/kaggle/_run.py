"""What the two competitions share: the step-decayed SGD run (its kvstore side) and the
pipeline organise -> train with validation -> refit on train_valid -> predict -> submit."""
import os
import time

from mxnet import gluon

from ..dist import create_kvstore, is_distributed, kv_num_workers, kv_rank, step_workers
from ..plot import Animator
from .loaders import kaggle_loaders, read_image_folders
from .submit import image_ids

#: Where the kvstore rules of :func:`train_cifar10` / :func:`train_dog` are written.
KVSTORE_DOC = """
    ``kvstore``: the Trainer's (``'device'``, ``'local'``, ``'dist_sync'``, ``'dist_async'``
    or a ``KVStore``); with a dist one, ``train_iter`` is this worker's shard
    (``kaggle_loaders(..., kvstore=kv)``) and the rules of docs/distributed.md ("What
    changes with a dist kvstore") apply; the step decay then runs on the servers.
"""


def lr_at_epoch(lr, epoch, lr_period, lr_decay):
    """The learning rate in (0-based) ``epoch``: ``lr * lr_decay ** (epoch // lr_period)``."""
    return lr * lr_decay ** (epoch // lr_period)


def _animator(legend, num_epochs, save_path, animator):
    if animator is not None:
        return animator
    return Animator(xlabel='epoch', xlim=[0, num_epochs], legend=legend, save_path=save_path)


class _KaggleRun:
    """The kvstore side of :func:`train_cifar10` / :func:`train_dog`.

    Makes the SGD Trainer (momentum 0.9) on ``kvstore``. Without a dist kvstore the
    step decay is the chapter's ``trainer.set_learning_rate`` at each epoch. With one the
    optimizer runs on the servers, which never see ``set_learning_rate``: the same decay is
    given to the optimizer as an MXNet ``MultiFactorScheduler`` over its update count (one
    update per synchronous step; with ``dist_async`` one per worker's push, so its epochs
    are approximate). Only rank 0 evaluates, draws and prints.
    """

    def __init__(self, params, lr, wd, kvstore, num_epochs, lr_period, lr_decay, num_batches,
                 valid_iter, verbose, save_path, animator, legend):
        import mxnet as mx
        from ..train import _check_kvstore
        if num_batches == 0:
            raise ValueError('train_iter yields no batch (fewer images than batch_size?)')
        kv = create_kvstore(kvstore)
        self.distributed = is_distributed(kv)
        self.lr, self.lr_period, self.lr_decay = lr, lr_period, lr_decay
        opt = {'learning_rate': lr, 'momentum': 0.9, 'wd': wd}
        if self.distributed:
            decays = list(range(lr_period, num_epochs, lr_period)) \
                if lr_period and lr_period > 0 and lr_decay != 1 else []
            per_epoch = num_batches * (kv_num_workers(kv) if 'async' in kv.type else 1)
            if decays:
                opt['lr_scheduler'] = mx.lr_scheduler.MultiFactorScheduler(
                    [e * per_epoch for e in decays], factor=lr_decay)
        self.trainer = gluon.Trainer(params, 'sgd', opt, kvstore=kv)
        self.kv, _ = _check_kvstore(self.trainer, kv)
        self.rank, self.workers = kv_rank(kv), kv_num_workers(kv)
        self.step_workers = step_workers(kv)
        self.lead = self.rank == 0
        self.verbose = verbose and self.lead
        self.skipped_valid = not self.lead and valid_iter is not None
        self.valid_iter = None if self.skipped_valid else valid_iter
        if self.valid_iter is None:
            legend = legend[:-1]  # the last name is the validation curve's
        self.animator = _animator(legend, num_epochs, save_path if self.lead else None,
                                  animator)
        if not self.lead and hasattr(self.animator, 'save_path'):
            self.animator.save_path = None
        self.batch_size = None

    def start_epoch(self, epoch):
        if not self.distributed:
            self.trainer.set_learning_rate(lr_at_epoch(self.lr, epoch, self.lr_period,
                                                       self.lr_decay))

    def check_batch(self, n, epoch, i):
        if self.distributed:
            from ..train import _check_batch
            self.batch_size = _check_batch(self.batch_size, n, epoch, i)

    def finish(self, result, examples, seconds, num_epochs, key):
        per_worker = examples / seconds if seconds else float('nan')
        result['examples_per_sec'] = per_worker * self.workers
        result['lr'] = (lr_at_epoch(self.lr, num_epochs - 1, self.lr_period, self.lr_decay)
                        if self.distributed else self.trainer.learning_rate)
        result['history'] = self.animator.history
        if self.skipped_valid:
            result[key] = None  # same keys on every rank; rank 0 has the value
        if self.distributed:
            result.update(examples_per_sec_worker=per_worker, kvstore=self.kv.type,
                          rank=self.rank, num_workers=self.workers)
        return per_worker

    def where(self, devices, per_worker):
        where = str(devices)
        if self.distributed:
            where += (f' x {self.workers} workers ({self.kv.type}; {per_worker:.1f} per '
                      'worker)')
        return where


def pipeline(data_dir, reorg, transforms, make_net, train, submit, *, valid_ratio, batch_size,
             refit, submission, save_dir, prefix):
    """One competition end to end; the result dict of :func:`kaggle_cifar10` /
    :func:`kaggle_dog`.

    ``reorg(data_dir, valid_ratio)`` organises the folder; ``transforms``: ``(train, test)``;
    ``make_net(num_classes)`` a fresh net; ``train(net, train_iter, valid_iter, save_path)``
    its result dict; ``submit(net, test_iter, ids, synsets, fname)`` writes ``fname`` and
    returns the number of rows checked against the sample file (``None``: no sample).
    """
    tik = time.time()
    out = {'n_valid_per_label': reorg(data_dir, valid_ratio)}
    datasets = read_image_folders(data_dir)
    train_iter, valid_iter, train_valid_iter, test_iter = kaggle_loaders(
        datasets, batch_size, *transforms)
    synsets = out['synsets'] = datasets[2].synsets

    def png(name):
        return os.path.join(save_dir, f'{prefix}_{name}.png') if save_dir else None

    net = make_net(len(synsets))
    out['valid'] = train(net, train_iter, valid_iter, png('valid'))
    if refit:
        net = make_net(len(synsets))
        out['final'] = train(net, train_valid_iter, None, png('final'))
    if submission:
        rows = submit(net, test_iter, image_ids(datasets[3]), synsets, submission)
        if rows is not None:
            out['submission_rows'] = rows
        out['submission'] = submission
    out['seconds'] = time.time() - tik
    return out
