"""Predicting the test images and writing (and checking) ``submission.csv``."""
import csv
import os
import tempfile

import numpy as onp
from mxnet import npx

from ..devices import resolve_devices
from .reorg import KaggleDataError

__all__ = ['image_ids', 'predict_labels', 'predict_probs', 'write_cifar10_submission',
           'write_dog_submission', 'check_submission']


def image_ids(test_ds):
    """The ids (file names without extension) of ``test_ds``'s images, in its order.

    ``ImageFolderDataset`` sorts file names as strings, so for the competition's ``1.png`` ...
    ``N.png`` this is the chapter's ``sorted(range(1, N + 1), key=str)``.
    """
    return [os.path.splitext(os.path.basename(path))[0] for path, _ in test_ds.items]


def predict_labels(net, test_iter, devices=None):
    """Class indices ``(N,)`` (int64 numpy) of ``net``'s argmax over ``test_iter``."""
    devices = resolve_devices(devices)
    preds = [net(X.as_in_ctx(devices[0])).argmax(axis=1) for X, _ in test_iter]
    return onp.concatenate([p.asnumpy() for p in preds]).astype(onp.int64) if preds else \
        onp.zeros((0,), onp.int64)


def predict_probs(net, test_iter, devices=None):
    """Softmax probabilities ``(N, q)`` (float32 numpy) of ``net.output_new(net.features(X))``."""
    devices = resolve_devices(devices)
    probs = [npx.softmax(net.output_new(net.features(X.as_in_ctx(devices[0]))))
             for X, _ in test_iter]
    return onp.concatenate([p.asnumpy() for p in probs]) if probs else onp.zeros((0, 0))


def _write_rows(fname, header, rows):
    """Write a CSV under a temporary name and rename it into place."""
    d = os.path.dirname(os.path.abspath(fname))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.' + os.path.basename(fname) + '.')
    try:
        with os.fdopen(fd, 'w', newline='') as f:
            w = csv.writer(f, lineterminator='\n')
            w.writerow(header)
            w.writerows(rows)
        os.replace(tmp, fname)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return fname


def write_cifar10_submission(ids, preds, synsets, fname='submission.csv'):
    """Write Kaggle CIFAR-10's ``id,label`` file: one row per id, the label
    ``synsets[preds[i]]``. ``ids (N,)`` as from :func:`image_ids`, ``preds (N,)`` ints."""
    preds = onp.asarray(preds)
    if len(ids) != len(preds):
        raise ValueError(f'{len(ids)} ids but {len(preds)} predictions')
    if len(preds) and (preds.min() < 0 or preds.max() >= len(synsets)):
        raise ValueError(f'predicted class {int(preds.max())} outside the {len(synsets)} '
                         'synsets')
    names = onp.asarray(synsets, dtype=object)[preds.astype(onp.int64)] if len(preds) else []
    return _write_rows(fname, ['id', 'label'], zip(ids, names))


def write_dog_submission(ids, probs, synsets, fname='submission.csv'):
    """Write Kaggle dog-breed's file: ``id`` then one probability column per breed, in
    ``synsets`` order (alphabetical, as the competition's sample file). ``probs (N, q)``
    with ``q == len(synsets)``; each row must sum to 1."""
    probs = onp.asarray(probs, dtype=onp.float64)
    if probs.ndim != 2 or probs.shape != (len(ids), len(synsets)):
        raise ValueError(f'probs has shape {probs.shape}, expected ({len(ids)}, '
                         f'{len(synsets)}) = (ids, synsets); is the output layer as wide as '
                         'the number of breeds?')
    sums = probs.sum(axis=1)
    bad = onp.flatnonzero(onp.abs(sums - 1) > 1e-4)
    if len(bad):
        raise ValueError(f'row {int(bad[0])} (id {ids[bad[0]]}) sums to {sums[bad[0]]}, not 1')
    return _write_rows(fname, ['id'] + list(synsets),
                       ([i] + [repr(float(p)) for p in row] for i, row in zip(ids, probs)))


def check_submission(fname, sample_fname, probabilities=False, labels=None, atol=1e-4):
    """Check ``fname`` against the competition's sample submission file.

    Same header, same number of rows, the same ids (each once); with ``probabilities`` (dogs)
    every value is a number in [0, 1] and each row sums to 1 within ``atol``; with ``labels``
    (CIFAR-10's class names) every label is one of them. Raises :class:`KaggleDataError`
    naming the file and line; returns the number of rows.
    """
    def read(path):
        with open(path, newline='', encoding='utf-8') as f:
            rows = list(csv.reader(f))
        if not rows:
            raise KaggleDataError(f'{path}: empty file')
        return rows[0], rows[1:]

    header, rows = read(fname)
    s_header, s_rows = read(sample_fname)
    if header != s_header:
        raise KaggleDataError(f'{fname}, line 1: header {",".join(header)[:80]!r} differs from '
                              f'{sample_fname}\'s {",".join(s_header)[:80]!r}')
    if len(rows) != len(s_rows):
        raise KaggleDataError(f'{fname}: {len(rows)} rows, {sample_fname} has {len(s_rows)}')
    seen = {}
    for k, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise KaggleDataError(f'{fname}, line {k}: {len(row)} fields, expected '
                                  f'{len(header)}')
        if row[0] in seen:
            raise KaggleDataError(f'{fname}, line {k}: id {row[0]!r} again (line '
                                  f'{seen[row[0]]})')
        seen[row[0]] = k
        if labels is not None and not probabilities and row[1] not in labels:
            raise KaggleDataError(f'{fname}, line {k}: unknown label {row[1]!r}')
        if probabilities:
            try:
                p = onp.array(row[1:], dtype=onp.float64)
            except ValueError:
                raise KaggleDataError(f'{fname}, line {k}: a value is not a number') from None
            if (p < 0).any() or (p > 1).any() or abs(p.sum() - 1) > atol:
                raise KaggleDataError(f'{fname}, line {k}: probabilities must be in [0, 1] '
                                      f'and sum to 1 (sum {p.sum():.6f})')
    missing = sorted(set(r[0] for r in s_rows) - set(seen))
    if missing:
        raise KaggleDataError(f'{fname}: id {missing[0]!r} of {sample_fname} is missing '
                              f'({len(missing)} ids missing)')
    return len(rows)
