"""What the two competitions share: the step-decayed SGD run on the training engine and the
pipeline organise -> train with validation -> refit on train_valid -> predict -> submit."""
import os
import time

from mxnet import gluon

from ..dist import create_kvstore
from ..train import fit, step_decay
from .loaders import kaggle_loaders, read_image_folders
from .submit import image_ids

#: Where the kvstore rules of :func:`train_cifar10` / :func:`train_dog` are written.
KVSTORE_DOC = """
    ``kvstore``: the Trainer's (``'device'``, ``'local'``, ``'dist_sync'``, ``'dist_async'``
    or a ``KVStore``); with a dist one, ``train_iter`` is this worker's shard
    (``kaggle_loaders(..., kvstore=kv)``) and the rules of docs/distributed.md ("What
    changes with a dist kvstore") apply.
"""


def lr_at_epoch(lr, epoch, lr_period, lr_decay):
    """The learning rate in (0-based) ``epoch``: ``lr * lr_decay ** (epoch // lr_period)``
    (the engine's :func:`d2lcv.train.step_decay`, the schedule the training uses)."""
    return step_decay(lr, lr_period, lr_decay)(epoch)


def train_sgd(net, params, train_iter, step, *, lr, wd, kvstore, lr_period, lr_decay,
              num_epochs, **fit_kw):
    """:func:`d2lcv.train.fit` with the two competitions' optimizer: SGD (momentum 0.9,
    weight decay ``wd``) on ``params`` (a ``ParameterDict``), its learning rate
    ``lr_at_epoch(lr, epoch, lr_period, lr_decay)`` through the engine's one schedule (the
    same locally and on a dist kvstore's servers). ``kvstore`` is the Trainer's."""
    kv = create_kvstore(kvstore)
    trainer = gluon.Trainer(params, 'sgd', {'learning_rate': lr, 'momentum': 0.9, 'wd': wd},
                            kvstore=kv)
    return fit(net, train_iter, step, trainer, epochs=num_epochs, kvstore=kv,
               lr_schedule=step_decay(lr, lr_period, lr_decay), **fit_kw)


def summary(loss_line, eval_key, eval_name):
    """The chapter's summary: ``loss_line(result)``, then ``, <eval_name> X`` when the
    run validated (``result[eval_key]`` is not None)."""
    def lines(r):
        line = loss_line(r)
        if r.get(eval_key) is not None:
            line += f', {eval_name} {r[eval_key]:.3f}'
        return [line]
    return lines


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
