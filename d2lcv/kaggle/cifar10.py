"""Section 13.13: CIFAR-10 on Kaggle, ResNet-18 from scratch."""
import os

from mxnet import gluon, init

from ..devices import resolve_devices, split_batch
from ..train import evaluate_accuracy_gpus, train_batch_ch13
from ._run import KVSTORE_DOC, pipeline, summary, train_sgd
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

    def step(batch, trainer):
        features, labels = batch
        l, correct = train_batch_ch13(net, features, labels.astype('float32'), loss, trainer,
                                      devices, split_batch, sync=False)
        return l, correct, labels.shape[0]

    def evaluate(net):
        return {'valid_acc': evaluate_accuracy_gpus(net, valid_iter, split_batch)}

    return train_sgd(
        net, net.collect_params(), train_iter, step, lr=lr, wd=wd, kvstore=kvstore,
        lr_period=lr_period, lr_decay=lr_decay, num_epochs=num_epochs, devices=devices,
        metrics=lambda s: {'train_loss': s[0] / s[2], 'train_acc': s[1] / s[2]},
        curves={'train_loss': 'train loss', 'train_acc': 'train acc'},
        evaluate=evaluate if valid_iter is not None else None,
        eval_curves={'valid_acc': 'valid acc'}, animator=animator, save_path=save_path,
        verbose=verbose, summary=summary(lambda r: f'loss {r["train_loss"]:.3f}, train acc '
                                         f'{r["train_acc"]:.3f}', 'valid_acc', 'valid acc'))


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
