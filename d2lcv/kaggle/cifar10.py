"""Section 13.13: CIFAR-10 on Kaggle, ResNet-18 from scratch."""
import os

from mxnet import gluon, init

from ..devices import resolve_devices, split_batch
from ..train import Accumulator, Timer, evaluate_accuracy_gpus, train_batch_ch13
from ._run import KVSTORE_DOC, _KaggleRun, pipeline
from .loaders import transform_test_cifar10, transform_train_cifar10
from .reorg import reorg_cifar10_data
from .submit import check_submission, predict_labels, write_cifar10_submission

__all__ = ['get_net_cifar10', 'train_cifar10', 'kaggle_cifar10']


def get_net_cifar10(devices=None, num_classes=10):
    """13.13's ``get_net``: the chapter's ``resnet18`` with Xavier initialisation."""
    from ..models import resnet18
    net = resnet18(num_classes)
    net.initialize(ctx=resolve_devices(devices), init=init.Xavier())
    return net


def train_cifar10(net, train_iter, valid_iter, num_epochs, lr, wd, devices=None,
                  lr_period=50, lr_decay=0.1, *, animator=None, save_path=None, verbose=True,
                  kvstore='device'):
    """13.13's ``train``: SGD (momentum 0.9, weight decay ``wd``) on all of ``net``'s
    parameters; the learning rate is multiplied by ``lr_decay`` every ``lr_period`` epochs.

    ``valid_iter`` may be ``None`` (the final fit on ``train_valid``). Prints the chapter's
    summary and returns ``{'train_loss', 'train_acc', 'valid_acc' (if validating),
    'examples_per_sec', 'lr', 'history'}``.
    """
    devices = resolve_devices(devices)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    num_batches, timer = len(train_iter), Timer()
    run = _KaggleRun(net.collect_params(), lr, wd, kvstore, num_epochs, lr_period, lr_decay,
                     num_batches, valid_iter, verbose, save_path, animator,
                     ['train loss', 'train acc', 'valid acc'])
    trainer, animator, valid_iter = run.trainer, run.animator, run.valid_iter
    every = max(1, num_batches // 5)
    result = {}
    examples = 0
    for epoch in range(num_epochs):
        metric = Accumulator(3)
        run.start_epoch(epoch)
        timer.start()
        for i, (features, labels) in enumerate(train_iter):
            run.check_batch(labels.shape[0], epoch, i)
            l, acc = train_batch_ch13(net, features, labels.astype('float32'), loss, trainer,
                                      devices, split_batch, sync=False,
                                      kv_workers=run.step_workers)
            metric.add(l, acc, labels.shape[0])
            if (i + 1) % every == 0 or i + 1 == num_batches:
                # reading the sums synchronises: five times an epoch, not every batch
                animator.add(epoch + (i + 1) / num_batches,
                             (metric[0] / metric[2], metric[1] / metric[2]) +
                             ((None,) if valid_iter is not None else ()))
        timer.stop()
        examples += metric[2]
        result = {'train_loss': metric[0] / metric[2], 'train_acc': metric[1] / metric[2]}
        if valid_iter is not None:
            result['valid_acc'] = evaluate_accuracy_gpus(net, valid_iter, split_batch)
            animator.add(epoch + 1, (None, None, result['valid_acc']))
        if hasattr(animator, 'flush'):  # the PNG is throttled; write each epoch's end
            animator.flush()
    per_worker = run.finish(result, examples, timer.sum(), num_epochs, 'valid_acc')
    if run.verbose:
        line = f'loss {result["train_loss"]:.3f}, train acc {result["train_acc"]:.3f}'
        if valid_iter is not None:
            line += f', valid acc {result["valid_acc"]:.3f}'
        print(line)
        print(f'{result["examples_per_sec"]:.1f} examples/sec on '
              f'{run.where(devices, per_worker)}')
    return result


if train_cifar10.__doc__:  # None under python -OO
    train_cifar10.__doc__ += KVSTORE_DOC


def kaggle_cifar10(data_dir, *, valid_ratio=0.1, batch_size=128, num_epochs=5, lr=0.1,
                   wd=5e-4, lr_period=50, lr_decay=0.1, devices=None, net_fn=None,
                   refit=True, submission='submission.csv', save_dir=None, verbose=True):
    """Section 13.13 end to end on the competition folder ``data_dir``.

    Organise (:func:`reorg_cifar10_data`), train ``net_fn(devices, num_classes)`` (default
    :func:`get_net_cifar10`) on ``train`` while validating on ``valid``, then (``refit``) train
    a fresh net on ``train_valid``, predict ``test`` and write ``submission`` (checked against
    ``sampleSubmission.csv`` when present). ``save_dir``: where the Animators' PNGs go.
    Returns ``{'n_valid_per_label', 'valid': <train_cifar10 result>, 'final': ...,
    'submission': path, 'synsets': [...], 'seconds': ...}``.
    """
    devices = resolve_devices(devices)
    net_fn = net_fn or get_net_cifar10

    def make_net(num_classes):
        net = net_fn(devices, num_classes)
        net.hybridize()
        return net

    def train(net, train_iter, valid_iter, save_path):
        return train_cifar10(net, train_iter, valid_iter, num_epochs, lr, wd, devices,
                             lr_period, lr_decay, save_path=save_path, verbose=verbose)

    def submit(net, test_iter, ids, synsets, fname):
        write_cifar10_submission(ids, predict_labels(net, test_iter, devices), synsets, fname)
        sample = os.path.join(data_dir, 'sampleSubmission.csv')
        return check_submission(fname, sample, labels=synsets) if os.path.exists(sample) \
            else None

    return pipeline(data_dir, reorg_cifar10_data,
                    (transform_train_cifar10(), transform_test_cifar10()), make_net, train,
                    submit, valid_ratio=valid_ratio, batch_size=batch_size, refit=refit,
                    submission=submission, save_dir=save_dir, prefix='cifar10')
