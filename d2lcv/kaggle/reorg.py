"""Organising a Kaggle competition folder (13.13, 13.14): ``<data_dir>/train_valid_test/
{train,valid,train_valid,test}/<class>/<image>``.

Every input is checked before anything is copied (a malformed CSV row, a label naming a
missing image or an image without a label raise :class:`KaggleDataError` naming the file and
line); the folders are built under a temporary name and swapped in together, under a lock
(two notebooks, or every worker of a launched job, may organise one folder at once), so a
re-run never duplicates files nor mixes an old split with a new one, and a re-run with
unchanged inputs (same fingerprint) copies nothing.
"""
import collections
import csv
import hashlib
import json
import math
import os
import shutil
import warnings

from .._util import progress_bar
from ..fsutil import clean_stale, name_lock, temp_dir
from ..hub import mkdir_if_not_exist

__all__ = ['KaggleDataError', 'SPLITS', 'LabelTable', 'read_csv_labels', 'copyfile',
           'reorg_train_valid', 'reorg_test', 'reorg_cifar10_data', 'reorg_dog_data']

#: The folders :func:`reorg_train_valid` and :func:`reorg_test` make under ``train_valid_test``.
SPLITS = ('train', 'valid', 'train_valid', 'test')
_IMAGE_EXTS = ('.png', '.jpg', '.jpeg')


class KaggleDataError(ValueError):
    """The competition files are inconsistent; the message names the file and line."""


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
    return _reorg_competition(data_dir, 'trainLabels.csv', valid_ratio)


def reorg_dog_data(data_dir, valid_ratio):
    """Organise the dog-breed competition files (``labels.csv``); returns
    ``n_valid_per_label``."""
    return _reorg_competition(data_dir, 'labels.csv', valid_ratio)


def _reorg_competition(data_dir, labels_csv, valid_ratio):
    labels = read_csv_labels(os.path.join(data_dir, labels_csv))
    n_valid = reorg_train_valid(data_dir, labels, valid_ratio)
    reorg_test(data_dir)
    return n_valid


def _progress(items, desc):
    items = list(items)
    # a bar only for real work (the full data sets)
    return progress_bar(items, desc=desc, enabled=len(items) > 2000)
