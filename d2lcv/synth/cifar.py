"""Synthetic CIFAR-10 twin in Gluon's binary format (``cifar-10-batches-bin``).

Each record is one label byte followed by 3,072 bytes: the red, green and blue 32x32 planes,
exactly as in the real ``data_batch_{1..5}.bin`` / ``test_batch.bin``. Every class has its own
shape and colour family drawn at a random position, size and shade on a noisy background, so
the classes differ visibly and a small network learns them in a few epochs.
"""
import os

import numpy as onp

from ..hub import register_twin

CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
           'truck']
# one (R, G, B) base colour per class
_COLOURS = onp.array([[230, 60, 50], [60, 200, 70], [60, 90, 230], [235, 210, 50],
                      [200, 70, 210], [60, 210, 220], [245, 140, 40], [140, 140, 140],
                      [250, 250, 250], [120, 60, 20]], dtype=onp.float32)


def _masks(labels, rng, size=32):
    """Boolean masks ``(N, size, size)``, one shape family per class, vectorised over N."""
    n = len(labels)
    yy, xx = onp.mgrid[0:size, 0:size].astype(onp.float32)
    cy = rng.uniform(11, size - 11, n)[:, None, None]
    cx = rng.uniform(11, size - 11, n)[:, None, None]
    r = rng.uniform(6, 10, n)[:, None, None]
    dy, dx = yy[None] - cy, xx[None] - cx
    dist = onp.sqrt(dy ** 2 + dx ** 2)
    shapes = [
        dist < r,                                                     # disc
        (abs(dy) < r) & (abs(dx) < r),                                # square
        (dist < r) & (dist > r * 0.55),                               # ring
        ((abs(dy) < r * 0.3) | (abs(dx) < r * 0.3)) & (dist < r * 1.2),  # plus
        (abs(dy) + abs(dx)) < r,                                      # diamond
        (abs(dy) < r) & (abs(dx) < r) & ((onp.floor(yy / 4) % 2) == 0)[None],  # h-stripes
        (abs(dy) < r) & (abs(dx) < r) & ((onp.floor(xx / 4) % 2) == 0)[None],  # v-stripes
        (dy > -r) & (dy < r) & (abs(dx) < (dy + r) / 2),              # triangle
        (abs(dy) < r * 0.35) & (abs(dx) < r * 1.3),                   # horizontal bar
        (abs(dy - dx) < r * 0.4) & (dist < r * 1.3),                  # diagonal bar
    ]
    stack = onp.stack(shapes, axis=1)  # (N, 10, size, size)
    return stack[onp.arange(n), labels]


def make_images(labels, rng):
    """Images ``(N, 32, 32, 3)`` uint8 for integer ``labels (N,)``."""
    labels = onp.asarray(labels)
    n = len(labels)
    background = rng.uniform(20, 120, (n, 1, 1, 3)) + rng.normal(0, 18, (n, 32, 32, 3))
    colour = _COLOURS[labels][:, None, None, :] * rng.uniform(0.75, 1.0, (n, 1, 1, 1))
    colour = colour + rng.normal(0, 12, (n, 32, 32, 3))
    mask = _masks(labels, rng)[..., None]
    img = onp.where(mask, colour, background)
    return onp.clip(img, 0, 255).astype(onp.uint8)


def write_batch(path, images, labels):
    """Write one Gluon/CIFAR binary batch file (label byte + CHW planes per record)."""
    records = onp.concatenate(
        [onp.asarray(labels, onp.uint8)[:, None],
         images.transpose(0, 3, 1, 2).reshape(len(images), -1)], axis=1)
    tmp = path + '.tmp'
    records.tofile(tmp)
    os.replace(tmp, path)


def make_cifar10(root, seed=0, num_train=1000, num_test=200):
    """Write ``root/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` (+ meta)."""
    rng = onp.random.default_rng(seed)
    out = os.path.join(root, 'cifar-10-batches-bin')
    os.makedirs(out, exist_ok=True)
    train_labels = onp.arange(num_train) % 10
    rng.shuffle(train_labels)
    train_images = make_images(train_labels, rng)
    for k, part in enumerate(onp.array_split(onp.arange(num_train), 5)):
        write_batch(os.path.join(out, f'data_batch_{k + 1}.bin'), train_images[part],
                    train_labels[part])
    test_labels = onp.arange(num_test) % 10
    rng.shuffle(test_labels)
    write_batch(os.path.join(out, 'test_batch.bin'), make_images(test_labels, rng),
                test_labels)
    with open(os.path.join(out, 'batches.meta.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    return out


register_twin('cifar10', make_cifar10, 'cifar-10-batches-bin')
