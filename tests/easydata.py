"""An easy CIFAR-10 look-alike (class = colour) in the twin's binary format.

The CIFAR-10 twin hides the label from colour on purpose (issue 12), so a few epochs of a
tiny network no longer learn it; tests of the training *machinery* (loss falls, devices,
kvstores, reporting) use this data set instead, and tests/test_quality.py holds the twin's
own levels.
"""
import os

import numpy as onp

from d2lcv.synth.cifar import write_batch


def write_easy_cifar(root, num_train=1000, num_test=200, seed=0):
    """Write ``root/cifar-10-batches-bin/`` (5 training batches + test batch); return it."""
    rng = onp.random.default_rng(seed)
    colours = rng.uniform(0, 255, (10, 3))
    out = os.path.join(root, 'cifar-10-batches-bin')
    os.makedirs(out, exist_ok=True)
    parts = [(f'data_batch_{k + 1}.bin', len(p))
             for k, p in enumerate(onp.array_split(onp.arange(num_train), 5))]
    for name, n in parts + [('test_batch.bin', num_test)]:
        y = onp.arange(n) % 10
        rng.shuffle(y)
        x = onp.clip(colours[y][:, None, None] + rng.normal(0, 20, (n, 32, 32, 3)), 0, 255)
        write_batch(os.path.join(out, name), x.astype(onp.uint8), y)
    return out
