"""Section 13.1, image augmentation.

``apply`` shows an augmentation applied several times to one image; the chapter's augmenters
are named presets (``AUGMENTATIONS``); ``load_cifar10`` reads CIFAR-10 (Gluon's data set, or
the synthetic twin offline, both in the same binary format); ``train_with_data_aug`` trains
the chapter's ResNet-18 with ``train_ch13``.
"""
import os
import random as _random

import numpy as onp
from mxnet import gluon, init, np
from mxnet.gluon import nn
from mxnet.gluon.data.vision import transforms

from ._util import initialized
from .devices import resolve_devices
from .dist import create_kvstore, shard_dataset, shard_loader
from .hub import DownloadError, is_tiny, synth_twin
from .plot import show_images
from .train import get_dataloader_workers, train_ch13

__all__ = ['apply', 'AUGMENTATIONS', 'RandomFlip', 'RandomFlipLeftRight',
           'RandomFlipTopBottom', 'flip_left_right', 'flip_top_bottom', 'shape_aug',
           'brightness_aug', 'hue_aug', 'color_aug', 'combined_aug', 'train_augs',
           'test_augs', 'read_cifar10_bin', 'cifar10_dataset', 'load_cifar10',
           'train_with_data_aug', 'CIFAR10_CLASSES']

CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                   'ship', 'truck']


def apply(img, aug, num_rows=2, num_cols=4, scale=1.5):
    """Run ``aug`` ``num_rows * num_cols`` times on ``img (H, W, C)`` and show the results."""
    Y = [aug(img) for _ in range(num_rows * num_cols)]
    return show_images(Y, num_rows, num_cols, scale=scale)


class RandomFlip(nn.Block):
    """Flip an image ``(H, W, C)`` (or a batch ``(N, H, W, C)``) with probability ``p``.

    Gluon's ``RandomFlipLeftRight`` / ``RandomFlipTopBottom`` in MXNet 1.9.1 zero the middle
    column / row of images with an odd width / height (``npx.image.flip_left_right`` of
    ``[[0 1 2 3 4]]`` gives ``[[4 3 0 1 0]]``); this flips with ``np.flip`` instead.
    """

    def __init__(self, axis, p=0.5):
        super().__init__()
        if axis not in ('width', 'height'):
            raise ValueError(f"axis must be 'width' or 'height', got {axis!r}")
        self.axis, self.p = axis, p

    def forward(self, x):
        if _random.random() >= self.p:
            return x
        axis = (1 if self.axis == 'width' else 0) + (x.ndim - 3)
        return np.flip(x, axis=axis)


def RandomFlipLeftRight(p=0.5):  # noqa: N802 - named like the Gluon transform it replaces
    """Left-right flip with probability ``p`` (correct for odd widths)."""
    return RandomFlip('width', p)


def RandomFlipTopBottom(p=0.5):  # noqa: N802
    """Top-bottom flip with probability ``p`` (correct for odd heights)."""
    return RandomFlip('height', p)


# The chapter's augmenters, in the order it introduces them.
def flip_left_right():
    return RandomFlipLeftRight()


def flip_top_bottom():
    return RandomFlipTopBottom()


def shape_aug(size=200):
    """Crop 10%-100% of the area with aspect ratio 0.5-2, resize to ``size`` x ``size``."""
    return transforms.RandomResizedCrop((size, size), scale=(0.1, 1), ratio=(0.5, 2))


def brightness_aug():
    return transforms.RandomBrightness(0.5)


def hue_aug():
    return transforms.RandomHue(0.5)


def color_aug():
    return transforms.RandomColorJitter(brightness=0.5, contrast=0.5, saturation=0.5,
                                        hue=0.5)


def combined_aug(size=200):
    return transforms.Compose([RandomFlipLeftRight(), color_aug(), shape_aug(size)])


AUGMENTATIONS = {
    'flip_left_right': flip_left_right, 'flip_top_bottom': flip_top_bottom,
    'shape': shape_aug, 'brightness': brightness_aug, 'hue': hue_aug, 'color': color_aug,
    'combined': combined_aug,
}


def train_augs():
    """Training transform of 13.1: random left-right flip, then ``ToTensor``."""
    return transforms.Compose([RandomFlipLeftRight(), transforms.ToTensor()])


def test_augs():
    """Test transform of 13.1: ``ToTensor`` only."""
    return transforms.Compose([transforms.ToTensor()])


def read_cifar10_bin(folder, train=True):
    """Read CIFAR-10 binary batches from ``folder`` (``cifar-10-batches-bin``).

    Returns ``images (N, 32, 32, 3) uint8`` and ``labels (N,) int32``. Gluon's own reader
    insists on the real files' sha1s, so the synthetic twin is read here.
    """
    names = [f'data_batch_{i}.bin' for i in range(1, 6)] if train else ['test_batch.bin']
    images, labels = [], []
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise FileNotFoundError(f'CIFAR-10 batch file missing: {path}')
        raw = onp.fromfile(path, dtype=onp.uint8)
        if raw.size == 0:  # would silently drop a fifth of the training set, or all the test
            raise ValueError(f'{path}: empty file (0 bytes); a CIFAR-10 batch holds '
                             '3,073-byte records')
        if raw.size % 3073:
            raise ValueError(f'{path}: {raw.size} bytes is not a whole number of 3,073-byte '
                             f'records (record {raw.size // 3073} is truncated)')
        raw = raw.reshape(-1, 3073)
        bad = onp.nonzero(raw[:, 0] > 9)[0]
        if bad.size:
            raise ValueError(f'{path}: record {bad[0]} has label {raw[bad[0], 0]} (not 0-9)')
        labels.append(raw[:, 0].astype(onp.int32))
        images.append(raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return onp.concatenate(images), onp.concatenate(labels)


def cifar10_dataset(is_train, tiny=None, root=None, limit=None):
    """CIFAR-10 as a Gluon dataset of ``(image (32, 32, 3) uint8, label)``.

    Real data: Gluon's ``CIFAR10`` (downloads and checks it). ``tiny`` (or ``D2LCV_TINY=1``)
    or an explicit ``root`` folder in the binary format: read with :func:`read_cifar10_bin`.
    ``limit`` keeps the first ``limit`` examples (small runs).
    """
    if root is None and is_tiny(tiny):
        root = synth_twin('cifar10')
    if root is not None:
        images, labels = read_cifar10_bin(root, is_train)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        return gluon.data.ArrayDataset(np.array(images, dtype='uint8'), labels)
    try:
        dataset = gluon.data.vision.CIFAR10(train=is_train)
    except Exception as e:  # noqa: BLE001 - any failure of the download path
        raise DownloadError(f'could not load Gluon CIFAR10 ({e}). Offline? Use the '
                            'synthetic twin: tiny=True, or set D2LCV_TINY=1.') from e
    if limit is not None:
        dataset = gluon.data.SimpleDataset([dataset[i] for i in range(min(limit,
                                                                           len(dataset)))])
    return dataset


def load_cifar10(is_train, augs, batch_size, tiny=None, root=None, num_workers=None,
                 limit=None, num_parts=1, part_index=0):
    """A ``DataLoader`` over CIFAR-10 with ``augs`` applied to the images (the chapter's).

    ``limit`` keeps the first examples only. ``num_parts``, ``part_index``: read only shard
    ``part_index`` of ``num_parts`` equal shards; a sharded training loader drops its last
    partial batch, so every part takes as many steps of the same size
    (:func:`d2lcv.dist.shard_loader` picks the shard of a dist kvstore's worker).
    """
    dataset = shard_dataset(cifar10_dataset(is_train, tiny, root, limit), num_parts,
                            part_index)
    return gluon.data.DataLoader(
        dataset.transform_first(augs), batch_size=batch_size, shuffle=is_train,
        last_batch='discard' if is_train and num_parts > 1 else 'keep',
        num_workers=get_dataloader_workers() if num_workers is None else num_workers)


def train_with_data_aug(train_augs, test_augs, net, lr=0.001, *, batch_size=256,
                        num_epochs=10, devices=None, tiny=None, root=None, kvstore='device',
                        limit_train=None, limit_test=None, **train_kwargs):
    """Train ``net`` on CIFAR-10 with Adam and the given augmentations (the chapter's).

    ``net`` is initialised (Xavier, on ``devices``) unless it already is. ``limit_train`` /
    ``limit_test`` keep the first examples only; other keywords go to :func:`train_ch13`.

    ``kvstore``: the Trainer's (``'device'``, ``'local'``, ``'dist_sync'``, ``'dist_async'``
    or a ``KVStore``); with a dist one each worker reads its own shard of the training set
    and the rules of docs/distributed.md ("What changes with a dist kvstore") apply.
    """
    devices = resolve_devices(devices)
    if not initialized(net):
        net.initialize(init=init.Xavier(), ctx=devices)
    kv = create_kvstore(kvstore)
    train_iter = shard_loader(
        cifar10_dataset(True, tiny, root, limit_train).transform_first(train_augs),
        batch_size, kv, num_workers=get_dataloader_workers())
    test_iter = load_cifar10(False, test_augs, batch_size, tiny, root, limit=limit_test)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr},
                            kvstore=kv)
    return train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices,
                      kvstore=kv, **train_kwargs)
