"""Synthetic twins of the two Kaggle demo sets of sections 13.13 and 13.14.

``cifar10_tiny`` (``kaggle_cifar10_tiny/``, as ``kaggle_cifar10_tiny.zip`` extracts)::

    trainLabels.csv        id,label            (1000 rows: ids 1..1000, CIFAR-10 class names)
    sampleSubmission.csv   id,label            (ids 1..5, every label "cat", as Kaggle's)
    train/1.png ...        32x32 RGB PNGs
    test/1.png ... 5.png

``dog_tiny`` (``kaggle_dog_tiny/``, as ``kaggle_dog_tiny.zip`` extracts)::

    labels.csv             id,breed            (ids: 32 hex digits, as Kaggle's)
    sample_submission.csv  id,<breed>,...      (breeds in alphabetical order, each 1/q)
    train/<id>.jpg ...     RGB JPEGs of varying size
    test/<id>.jpg ...

The pictures are :func:`d2lcv.synth.cifar.make_images`'s photo-textured shapes on photo
backgrounds: the classes differ in shape only, never in colour (a colour-histogram nearest
neighbour stays near chance). The dogs are drawn at 96x96 (breed ``k`` has shape
``SHAPES[k]``) and resized to their random sizes. Everything is deterministic from ``seed``.
"""
import csv
import os

import numpy as onp
from PIL import Image

from ..hub import register_twin
from .cifar import CLASSES, make_images

__all__ = ['DOG_BREEDS', 'make_cifar10_tiny', 'make_dog_tiny']

#: A handful of the competition's 120 breeds (its spelling); the twin uses the first
#: ``num_breeds`` of them.
DOG_BREEDS = ['affenpinscher', 'beagle', 'boston_bull', 'chihuahua', 'golden_retriever',
              'pug', 'samoyed', 'siberian_husky', 'toy_poodle', 'yorkshire_terrier']


def _write_csv(path, header, rows):
    tmp = path + '.tmp'
    with open(tmp, 'w', newline='') as f:
        w = csv.writer(f, lineterminator='\n')
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def _balanced_labels(n, q, rng):
    """``n`` labels in ``range(q)``, shuffled: balanced, then a fifth redrawn uniformly, so
    the classes are slightly unbalanced like the first 1000 Kaggle images (every class
    appears when ``n >= q``)."""
    labels = onp.arange(n) % q
    redraw = rng.permutation(n)[q:q + n // 5] if n > q else onp.zeros(0, int)
    labels[onp.sort(redraw)] = rng.integers(0, q, len(redraw))
    return labels[rng.permutation(n)]


def make_cifar10_tiny(root, seed=0, num_train=1000, num_test=5):
    """Write ``root/kaggle_cifar10_tiny/`` in the CIFAR-10 competition's layout."""
    rng = onp.random.default_rng(seed)
    out = os.path.join(root, 'kaggle_cifar10_tiny')
    for sub in ('train', 'test'):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    train_labels = _balanced_labels(num_train, len(CLASSES), rng)
    for i, img in enumerate(make_images(train_labels, rng), start=1):
        Image.fromarray(img).save(os.path.join(out, 'train', f'{i}.png'))
    for i, img in enumerate(make_images(rng.integers(0, len(CLASSES), num_test), rng), start=1):
        Image.fromarray(img).save(os.path.join(out, 'test', f'{i}.png'))
    _write_csv(os.path.join(out, 'trainLabels.csv'), ['id', 'label'],
               [(i, CLASSES[k]) for i, k in enumerate(train_labels, start=1)])
    _write_csv(os.path.join(out, 'sampleSubmission.csv'), ['id', 'label'],
               [(i, 'cat') for i in range(1, num_test + 1)])
    return out


def _hex_ids(n, rng):
    """``n`` distinct 32-hex-digit ids, like Kaggle's."""
    ids = [bytes(r).hex() for r in rng.integers(0, 256, (n, 16), dtype=onp.uint8)]
    if len(set(ids)) != n:  # 2**-128 odds; never silently write one file twice
        raise RuntimeError('duplicate synthetic id; use another seed')
    return ids


def _dog_image(small, rng, min_side=64, max_side=128):
    """Scale a square picture to a random ``(h, w)`` in ``[min_side, max_side]``."""
    h, w = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
    return Image.fromarray(small).resize((w, h), Image.BILINEAR)


def make_dog_tiny(root, seed=0, num_train=200, num_test=20, num_breeds=5):
    """Write ``root/kaggle_dog_tiny/`` in the dog-breed competition's layout."""
    if not 1 <= num_breeds <= len(DOG_BREEDS):
        raise ValueError(f'num_breeds must be in 1..{len(DOG_BREEDS)}, got {num_breeds}')
    rng = onp.random.default_rng(seed)
    out = os.path.join(root, 'kaggle_dog_tiny')
    for sub in ('train', 'test'):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    breeds = sorted(DOG_BREEDS[:num_breeds])
    ids = _hex_ids(num_train + num_test, rng)
    order = rng.permutation(num_train + num_test)  # ids are not sorted by split or label
    train_ids = [ids[k] for k in order[:num_train]]
    test_ids = [ids[k] for k in order[num_train:]]
    train_labels = _balanced_labels(num_train, num_breeds, rng)
    for i, img in zip(train_ids, make_images(train_labels, rng, size=96)):
        _dog_image(img, rng).save(os.path.join(out, 'train', f'{i}.jpg'), quality=90)
    for i, img in zip(test_ids, make_images(rng.integers(0, num_breeds, num_test), rng,
                                            size=96)):
        _dog_image(img, rng).save(os.path.join(out, 'test', f'{i}.jpg'), quality=90)
    _write_csv(os.path.join(out, 'labels.csv'), ['id', 'breed'],
               [(i, breeds[k]) for i, k in zip(train_ids, train_labels)])
    p = repr(1.0 / num_breeds)
    _write_csv(os.path.join(out, 'sample_submission.csv'), ['id'] + breeds,
               [[i] + [p] * num_breeds for i in test_ids])
    return out


register_twin('cifar10_tiny', make_cifar10_tiny, 'kaggle_cifar10_tiny')
register_twin('dog_tiny', make_dog_tiny, 'kaggle_dog_tiny')
