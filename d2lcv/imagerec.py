"""A fast input path for image folders: pack once into RecordIO, decode and augment in C++.

The chapter reads its image-folder data sets (hot dog 13.2, the Kaggle CIFAR-10 PNGs 13.13,
the dog JPEGs 13.14) with ``ImageFolderDataset`` and Gluon transforms: every image is decoded
and augmented by Python code, which on a few CPU cores cannot keep two GPUs busy. This module
packs such a folder once into a RecordIO file (``.rec`` + ``.idx``, the raw image bytes, each
checked to decode) and reads it with ``mx.io.ImageRecordIter``: decoding, the chapter's
augmentations and normalisation run in MXNet's C++ threads.

==================================  ========================================================
``pack_images(dataset)``            ``(rec, idx)`` for an ``ImageFolderDataset`` (cached; a
                                    changed folder -- names, sizes, mtimes -- repacks)
``RecordLoader(dataset, spec, B)``  batches ``(X (B, 3, H, W) float32, y (B,))`` like a
                                    ``DataLoader`` (``len``, one pass per ``iter``)
``augment_spec(...)``               an augmentation the fast path can run; the chapter's
                                    presets carry theirs (``transform.fast_spec``)
``use_fast_input(on)``              the one switch (also ``$D2LCV_FAST_INPUT=1`` and
                                    ``d2lcv run --fast-input``)
``fast_loader(dataset, transform,   the hook of the loaders: a ``RecordLoader`` if the
  batch_size, ...)``                switch is on and ``transform`` is a chapter preset,
                                    else ``None`` (then the chapter's path)
==================================  ========================================================

Differences from the chapter's path (the same images per epoch; ``benchmarks/bench_input.py``
draws both side by side):

* Random numbers come from MXNet's C++ generators (``seed``), not Python's: the crops and
  flips are different draws from the same distributions.
* ``RandomResizedCrop``: the same area and aspect-ratio ranges; after 10 failed draws Gluon
  falls back to a centre crop of the whole image, MXNet's iterator to a crop as large as
  the aspect ratio allows.
* Colour jitter: brightness, contrast and saturation factors are drawn from the same ranges,
  but applied in a fixed order (Gluon shuffles the order per image); the lighting noise is
  the iterator's AlexNet-style PCA noise (``pca_noise``), the same kind as ``RandomLighting``.
* Normalisation: the iterator returns uint8 pixels, turned into floats by a table of
  ``(v / 255 - mean) / std`` for the 256 values per channel, computed with the operations of
  ``ToTensor`` then ``Normalize``: the same numbers, in one compiled pass.
* Images are decoded by OpenCV (the iterator's decoder) instead of ``mx.image.imread``: the
  same pixels for PNG; JPEG decoders may differ by a level here and there.
* Only the training transforms go through the fast path, and only without a dist kvstore
  (the iterator cannot cut the equal shards ``dist_sync`` needs); evaluation loaders keep
  the chapter's exact transforms.
"""
import hashlib
import io
import json
import os
import queue
import threading

import numpy as onp

from ._util import progress_bar

__all__ = ['pack_images', 'RecordLoader', 'augment_spec', 'use_fast_input', 'fast_input',
           'fast_loader', 'tag', 'ImagePackError', 'default_cache_dir', 'fingerprint']

_FAST = None          # None: $D2LCV_FAST_INPUT decides


class ImagePackError(ValueError):
    """An image of a folder being packed cannot be read or decoded; names the file."""


def use_fast_input(on=True):
    """The switch: route the chapter's training loaders through RecordIO (``True``), or not
    (``False``), or let ``$D2LCV_FAST_INPUT`` decide (``None``, the default)."""
    global _FAST
    _FAST = on


def fast_input():
    """Is the fast input path on? (:func:`use_fast_input`, else ``$D2LCV_FAST_INPUT=1``)."""
    if _FAST is not None:
        return bool(_FAST)
    return os.environ.get('D2LCV_FAST_INPUT', '') not in ('', '0', 'false', 'no')


def augment_spec(size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip=True, resize=None,
                 jitter=0.0, lighting=0.0, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225)):
    """A training augmentation in the fast path's terms (a dict).

    ``resize``: shorter side first resized to this (13.13's ``Resize(40)``); then a random
    crop of ``scale`` of the area and aspect ``ratio`` resized to ``size`` x ``size``,
    ``flip`` left-right with probability 1/2, brightness / contrast / saturation ``jitter``,
    PCA ``lighting`` noise, and normalisation with ``mean`` / ``std`` (of 0-1 values).
    """
    return dict(size=int(size), scale=tuple(map(float, scale)),
                ratio=tuple(map(float, ratio)), flip=bool(flip),
                resize=None if resize is None else int(resize), jitter=float(jitter),
                lighting=float(lighting), mean=tuple(map(float, mean)),
                std=tuple(map(float, std)))


def tag(transform, spec):
    """Attach ``spec`` to a chapter preset ``transform`` (``transform.fast_spec``)."""
    transform.fast_spec = spec
    return transform


# ----------------------------------------------------------------------------------------
# Packing
# ----------------------------------------------------------------------------------------

def _items(dataset):
    items = getattr(dataset, 'items', None)
    if items is None or not hasattr(dataset, 'synsets'):
        raise TypeError('pack_images takes an ImageFolderDataset (with .items and .synsets), '
                        f'got {type(dataset).__name__}')
    return [(os.path.abspath(path), int(label)) for path, label in items]


def fingerprint(items):
    """sha1 of every file's path, label, size and modification time (and the format)."""
    h = hashlib.sha1(b'd2lcv-imagerec-1\n')
    for path, label in items:
        st = os.stat(path)
        h.update(f'{path}\t{label}\t{st.st_size}\t{st.st_mtime_ns}\n'.encode())
    return h.hexdigest()


def _check_decodes(path, data):
    """Raise :class:`ImagePackError` naming ``path`` unless ``data`` decodes completely."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()            # a truncated file fails here, not at open
    except Exception as e:
        raise ImagePackError(f'{path}: cannot be decoded as an image ({e})') from e


def default_cache_dir():
    from .hub import data_dir
    return os.path.join(data_dir(), 'recordio')


def pack_images(dataset, cache_dir=None, progress=False):
    """Pack an ``ImageFolderDataset`` into ``<cache_dir>/<key>.rec`` / ``.idx``, once.

    Each record is the file's own bytes (no re-encoding) with its label and index. A
    ``.json`` beside them holds the fingerprint of the folder (every file's path, label,
    size and mtime): a call with an unchanged folder returns the existing files at once; a
    changed one repacks. Files are written under temporary names and renamed; the
    fingerprint last. A file that cannot be read or decoded raises :class:`ImagePackError`
    naming it. Returns ``(rec_path, idx_path)``.
    """
    import mxnet as mx
    items = _items(dataset)
    root = os.path.commonpath([p for p, _ in items]) if items else '.'
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    key = hashlib.sha1(root.encode()).hexdigest()[:12]
    base = os.path.join(cache_dir, f'{os.path.basename(root) or "images"}-{key}')
    rec, idx, meta = base + '.rec', base + '.idx', base + '.json'
    fp = fingerprint(items)
    try:
        with open(meta) as f:
            if json.load(f).get('fingerprint') == fp and os.path.exists(rec) \
                    and os.path.exists(idx):
                return rec, idx
    except (OSError, ValueError):
        pass
    tmp = f'{base}.tmp{os.getpid()}'
    writer = mx.recordio.MXIndexedRecordIO(tmp + '.idx', tmp + '.rec', 'w')
    try:
        bar = progress_bar(items, desc=f'packing {os.path.basename(root)}', enabled=progress)
        for i, (path, label) in enumerate(bar):
            try:
                with open(path, 'rb') as f:
                    data = f.read()
            except OSError as e:
                raise ImagePackError(f'{path}: cannot be read ({e})') from e
            _check_decodes(path, data)
            header = mx.recordio.IRHeader(0, float(label), i, 0)
            writer.write_idx(i, mx.recordio.pack(header, data))
        writer.close()
        os.replace(tmp + '.rec', rec)
        os.replace(tmp + '.idx', idx)
        with open(tmp + '.json', 'w') as f:
            json.dump({'fingerprint': fp, 'root': root, 'num_images': len(items),
                       'synsets': list(dataset.synsets)}, f)
        os.replace(tmp + '.json', meta)
    finally:
        writer.close()
        for ext in ('.rec', '.idx', '.json'):
            if os.path.exists(tmp + ext):
                os.remove(tmp + ext)
    return rec, idx


# ----------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------

class RecordLoader:
    """Training batches of a packed image folder, decoded and augmented by MXNet's threads.

    ``(X (B, 3, size, size) float32, y (B,) float32)`` as ``mxnet.numpy`` arrays, shuffled
    each epoch; the last partial batch is dropped (as the chapter's training loaders with
    ``last_batch='discard'``) unless ``last_batch='keep'``. ``threads``: decoding threads
    (default ``$D2LCV_NUM_WORKERS`` or the cores, at least 1; MXNet uses at most
    ``$OMP_NUM_THREADS`` of them). ``len()`` is the number of batches per epoch; each epoch
    draws new crops, flips and colours.
    """

    def __init__(self, dataset, spec, batch_size, shuffle=True, last_batch='discard',
                 threads=None, seed=0, cache_dir=None):
        import mxnet as mx
        if last_batch not in ('discard', 'keep'):
            raise ValueError(f"last_batch must be 'discard' or 'keep', got {last_batch!r}")
        self.rec, self.idx = pack_images(dataset, cache_dir)
        self.num_images = len(dataset)
        self.batch_size, self.last_batch = batch_size, last_batch
        if threads is None:
            from .train import get_dataloader_workers
            threads = get_dataloader_workers()
        self.threads = max(1, int(threads))
        s = spec
        lo_r, hi_r = s['ratio']
        kwargs = dict(
            path_imgrec=self.rec, path_imgidx=self.idx, data_shape=(3, s['size'], s['size']),
            batch_size=batch_size, shuffle=shuffle, seed=seed,
            preprocess_threads=self.threads, round_batch=False,
            random_resized_crop=True, min_random_area=s['scale'][0],
            max_random_area=s['scale'][1], min_aspect_ratio=lo_r, max_aspect_ratio=hi_r,
            rand_mirror=s['flip'], brightness=s['jitter'], contrast=s['jitter'],
            saturation=s['jitter'], pca_noise=s['lighting'], inter_method=1, dtype='uint8')
        if s['resize']:
            kwargs['resize'] = s['resize']
        # The iterator hands over uint8 pixels (a quarter of the bytes); this process turns
        # them into normalised floats in one compiled pass, while the iterator's threads
        # decode the next batch.
        self._table = _normalize_table(s['mean'], s['std'])
        self._normalize = _normalize_kernel()
        self._kwargs, self._seed, self._epochs_started = kwargs, seed, 0
        self._it = mx.io.ImageRecordIter(**kwargs)
        self._at_epoch_end = True

    def __bool__(self):           # a loader, even of no batch (``fast_loader(...) or ...``)
        return True

    def __len__(self):
        full, rest = divmod(self.num_images, self.batch_size)
        return full + (1 if rest and self.last_batch == 'keep' else 0)

    def __iter__(self):
        # A thread reads and normalises the batches (the compiled kernel releases the GIL),
        # two ahead of the consumer: the training step never waits for the normalisation.
        self._finish_epoch()
        out, stop = queue.Queue(maxsize=2), threading.Event()
        worker = threading.Thread(target=self._produce, args=(out, stop), daemon=True)
        self._epoch = (worker, stop)
        worker.start()
        try:
            while True:
                item = out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield _to_mx(item[0]), item[1]
        finally:
            self._finish_epoch()

    def _finish_epoch(self):
        worker, stop = getattr(self, '_epoch', (None, None))
        if worker is not None:
            stop.set()
            worker.join()
            self._epoch = (None, None)

    def _produce(self, out, stop):
        def put(item):
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    pass
            return False
        try:
            self._start_epoch()
            # Read to the end (a break would waste the batches already prefetched). The
            # last batch may be padded, or filled from the start of the data: cut it by the
            # count.
            left = (self.num_images if self.last_batch == 'keep'
                    else len(self) * self.batch_size)
            for batch in self._it:
                if stop.is_set():     # the consumer left the epoch
                    return
                self._at_epoch_end = False
                keep = min(self.batch_size, left)
                if keep <= 0:
                    continue
                left -= keep
                pixels = batch.data[0].asnumpy()[:keep]
                X = onp.empty(pixels.shape, onp.float32)
                self._normalize(pixels, self._table, X)
                if not put((X, batch.label[0][:keep].as_np_ndarray())):
                    return
            self._at_epoch_end = True
            put(_END)
        except BaseException as e:     # raised in the consumer's thread
            put(e)

    def _start_epoch(self):
        # MXNet's ImageRecordIter, reset in the middle of an epoch, can hand out records of
        # the abandoned epoch first (seen: labels of a later batch in the first one). An
        # epoch the consumer left early is therefore not reset but started afresh, with a
        # new seed so that it still draws new crops, flips and colours.
        import mxnet as mx
        self._epochs_started += 1
        if self._at_epoch_end:
            self._it.reset()
        else:
            self._it = mx.io.ImageRecordIter(
                **dict(self._kwargs, seed=self._seed + self._epochs_started))
            self._at_epoch_end = True


_END = object()


def _to_mx(x):
    """A fresh NumPy array as an ``mxnet.numpy`` array on cpu(0), without a copy."""
    import mxnet as mx
    return mx.nd.from_numpy(x, zero_copy=True).as_np_ndarray()


def _normalize_table(mean, std):
    """(3, 256) float32: ``(v / 255 - mean[c]) / std[c]`` for every pixel value ``v`` of
    channel ``c``, computed as ``ToTensor`` then ``Normalize`` do (so the same numbers)."""
    v = onp.arange(256, dtype=onp.float32) / onp.float32(255)
    mean = onp.asarray(mean, onp.float32)[:, None]
    std = onp.asarray(std, onp.float32)[:, None]
    return ((v[None, :] - mean) / std).astype(onp.float32)


def _normalize(pixels, table, out):
    """``out[b, c, h, w] = table[c, pixels[b, c, h, w]]``: ``pixels`` (B, 3, H, W) uint8 to
    normalised float32 (a table look-up: cheaper than the arithmetic, and the same)."""
    B, C, H, W = pixels.shape
    for b in range(B):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    out[b, c, h, w] = table[c, pixels[b, c, h, w]]


_KERNEL = []


def _normalize_kernel():
    """:func:`_normalize` compiled by Numba (cached), or a NumPy version without Numba."""
    if not _KERNEL:
        try:
            import numba
        except ImportError:
            def numpy_normalize(pixels, table, out):
                for c in range(pixels.shape[1]):
                    out[:, c] = table[c][pixels[:, c]]
            _KERNEL.append(numpy_normalize)
        else:
            _KERNEL.append(numba.njit(cache=True, nogil=True)(_normalize))
    return _KERNEL[0]


def fast_loader(dataset, transform, batch_size, kvstore=None, shuffle=True,
                last_batch='discard', threads=None):
    """The loaders' hook: a :class:`RecordLoader` for ``dataset`` under ``transform``, if
    the switch is on (:func:`fast_input`), ``transform`` is a chapter preset (it has a
    ``fast_spec``), ``dataset`` an ``ImageFolderDataset`` and ``kvstore`` not a dist one;
    else ``None`` (the caller builds the chapter's ``DataLoader``)."""
    spec = getattr(transform, 'fast_spec', None)
    if not fast_input() or spec is None or not hasattr(dataset, 'items'):
        return None
    from .dist import is_distributed
    if is_distributed(kvstore):
        return None
    return RecordLoader(dataset, spec, batch_size, shuffle=shuffle, last_batch=last_batch,
                        threads=threads)
