"""A fast input path for image folders: pack once into RecordIO, decode and augment in C++.

The chapter reads its image-folder data sets (hot dog 13.2, the Kaggle CIFAR-10 PNGs 13.13,
the dog JPEGs 13.14) with ``ImageFolderDataset`` and Gluon transforms: every image is decoded
and augmented by Python code, which on a few CPU cores cannot keep two GPUs busy. This module
packs such a folder once into a RecordIO file (``.rec`` + ``.idx``: the image bytes, each
checked to decode; for 224x224 crops, photos larger than needed stored shrunk to a 256 px
shorter side) and reads it with ``mx.io.ImageRecordIter``: decoding, the chapter's
augmentations and normalisation run in MXNet's C++ threads.

==================================  ========================================================
``pack_images(dataset, resize=,     ``(rec, idx)`` for an ``ImageFolderDataset`` (cached; a
  quality=)``                       changed folder -- names, sizes, mtimes -- or other
                                    options repack); large images stored pre-shrunk
``RecordLoader(dataset, spec, B)``  batches ``(X (B, 3, H, W) float32, y (B,))`` like a
                                    ``DataLoader`` (``len``, one pass per ``iter``);
                                    ``dtype='uint8'``: raw pixels, for :func:`normalize`
                                    on the device
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

* Packing for 224x224 crops (``finetune.train_augs``, ``kaggle.transform_train_dog``:
  ``pack_resize=256``, ``pack_quality=90``) stores every image whose shorter side is
  longer than 256 px shrunk to 256 (aspect ratio kept, Pillow's antialiased bilinear: the
  ImageNet convention) and re-encoded as JPEG of quality 90 (measured here: decodes ~7 %
  faster than quality 95, files a third smaller). The random crops keep their
  area fractions and aspect ratios but are cut from fewer pixels: on a 400 px photo the
  smallest crop (8 % of the area) has ~72 px sides instead of ~113 before being resized
  to 224; images already small enough are stored byte for byte. (Decoding a 256 px image
  instead of a 400-500 px one is most of the fast path's gain on real-size photos.)
* Random numbers come from MXNet's C++ generators (``seed`` sets both the shuffling and
  the augmentations, MXNet's ``seed`` and ``seed_aug``), not Python's: the crops and flips
  are different draws from the same distributions.
* Shuffling: MXNet gives one ``ImageRecordIter`` at most ``max(cores / 2 - 1, 1)``
  decoding threads, so ``threads`` beyond that become several iterators over fixed parts
  of the pack (the pack's order is a fixed random permutation of the folder); each batch
  takes an equal share from every part and each part is reshuffled every epoch: every
  image still comes once per epoch, but the batches are stratified by the fixed parts
  (with one part, the chapter's plain shuffle).
* ``RandomResizedCrop``: the same area and aspect-ratio ranges; after 10 failed draws Gluon
  falls back to a centre crop of the whole image, MXNet's iterator to a crop as large as
  the aspect ratio allows.
* Colour jitter: brightness, contrast and saturation factors are drawn from the same ranges,
  but applied in a fixed order (Gluon shuffles the order per image); the lighting noise is
  the iterator's AlexNet-style PCA noise (``pca_noise``), the same kind as ``RandomLighting``.
* Normalisation: the iterator returns uint8 pixels, turned into floats by a table of
  ``(v / 255 - mean) / std`` for the 256 values per channel, computed with the operations of
  ``ToTensor`` then ``Normalize``: the same numbers, in one compiled pass. With
  ``dtype='uint8'`` the step normalises on its device (:func:`normalize`): equal to
  ``ToTensor`` + ``Normalize`` within float32 rounding (< 1e-6).
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

__all__ = ['pack_images', 'RecordLoader', 'augment_spec', 'pack_side', 'normalize',
           'use_fast_input', 'fast_input', 'fast_loader', 'tag', 'ImagePackError',
           'default_cache_dir', 'fingerprint', 'pack_order']

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
                 std=(0.229, 0.224, 0.225), pack_resize=None, pack_quality=90):
    """A training augmentation in the fast path's terms (a dict).

    ``resize``: shorter side first resized to this (13.13's ``Resize(40)``); then a random
    crop of ``scale`` of the area and aspect ``ratio`` resized to ``size`` x ``size``,
    ``flip`` left-right with probability 1/2, brightness / contrast / saturation ``jitter``,
    PCA ``lighting`` noise, and normalisation with ``mean`` / ``std`` (of 0-1 values).
    ``pack_resize`` / ``pack_quality``: how the folder is packed (:func:`pack_images`):
    images whose shorter side is longer than ``pack_resize`` are stored shrunk to it, as
    JPEG of that quality (``None``: every file's own bytes).
    """
    return dict(size=int(size), scale=tuple(map(float, scale)),
                ratio=tuple(map(float, ratio)), flip=bool(flip),
                resize=None if resize is None else int(resize), jitter=float(jitter),
                lighting=float(lighting), mean=tuple(map(float, mean)),
                std=tuple(map(float, std)),
                pack_resize=None if pack_resize is None else int(pack_resize),
                pack_quality=int(pack_quality))


def pack_side(size):
    """The shorter side to pack images at for ``size`` x ``size`` crops: 256 for 224 (the
    ImageNet convention: crops keep 8/7 of their side in reserve), in proportion else."""
    return int(round(size * 256 / 224))


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


def pack_order(n):
    """The order of the records in a pack of ``n`` images: record ``j`` holds image
    ``pack_order(n)[j]`` of the folder (a fixed random permutation, so that any contiguous
    part of the records, as MXNet's ``num_parts`` cuts them, is a random subset)."""
    return onp.random.default_rng(0).permutation(n)


def _options(resize, quality):
    """The pack options as they enter the fingerprint and the file name."""
    return 'raw' if resize is None else f'short{int(resize)}-q{int(quality)}'


def fingerprint(items, resize=None, quality=90):
    """sha1 of every file's path, label, size and modification time, of the pack options
    (``resize``, ``quality``: a different packing is a different fingerprint) and of the
    format's version."""
    h = hashlib.sha1(f'd2lcv-imagerec-3 {_options(resize, quality)}\n'.encode())
    for path, label in items:
        st = os.stat(path)
        h.update(f'{path}\t{label}\t{st.st_size}\t{st.st_mtime_ns}\n'.encode())
    return h.hexdigest()


def _record_bytes(path, data, resize=None, quality=90):
    """The bytes to store for the file ``path`` holding ``data``: ``data`` itself, or, if
    ``resize`` is set and the image's shorter side is longer, the image shrunk to that
    shorter side (aspect ratio kept, to the nearest pixel) as a JPEG of ``quality``.

    Raises :class:`ImagePackError` naming ``path`` unless ``data`` decodes completely.
    """
    from PIL import Image, ImageOps
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()            # a truncated file fails here, not at open
            if resize is None or min(img.size) <= resize:
                return data       # small enough: the file's own bytes, nothing re-encoded
            # the orientation OpenCV's decoder (the chapter's imread) applies from EXIF
            img = ImageOps.exif_transpose(img).convert('RGB')
            w, h = img.size
            scale = resize / min(w, h)
            new = (resize, max(1, round(h * scale))) if w <= h else \
                (max(1, round(w * scale)), resize)
            # Pillow's resize filters the whole footprint when shrinking (no aliasing)
            small = img.resize(new, Image.BILINEAR)
    except Exception as e:
        raise ImagePackError(f'{path}: cannot be decoded as an image ({e})') from e
    out = io.BytesIO()
    small.save(out, format='JPEG', quality=quality)
    return out.getvalue()


def default_cache_dir():
    from .hub import data_dir
    return os.path.join(data_dir(), 'recordio')


def pack_images(dataset, cache_dir=None, progress=False, resize=None, quality=90):
    """Pack an ``ImageFolderDataset`` into ``<cache_dir>/<key>.rec`` / ``.idx``, once.

    Record ``j`` holds image ``pack_order(n)[j]`` (its id in the header): the file's own
    bytes with its label; with ``resize``, an image whose shorter side is longer than
    ``resize`` is stored shrunk to it (aspect ratio kept) as a JPEG of ``quality``
    (``resize=256, quality=90`` for 224x224 crops; 256 is the ImageNet convention, and
    decoding a third of the pixels of a 400-500 px photo is most of the fast path's gain
    on real-size photos). A ``.json`` beside them holds the fingerprint of the folder (every file's path,
    label, size and mtime, and the options): a call with an unchanged folder returns the
    existing files at once; a changed one repacks; each set of options has its own files.
    Files are written under temporary names and renamed; the fingerprint last. A file that
    cannot be read or decoded raises :class:`ImagePackError` naming it. Returns
    ``(rec_path, idx_path)``.
    """
    import mxnet as mx
    items = _items(dataset)
    root = os.path.commonpath([p for p, _ in items]) if items else '.'
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    opts = _options(resize, quality)
    key = hashlib.sha1(root.encode()).hexdigest()[:12]
    base = os.path.join(cache_dir, f'{os.path.basename(root) or "images"}-{key}-{opts}')
    rec, idx, meta = base + '.rec', base + '.idx', base + '.json'
    fp = fingerprint(items, resize, quality)
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
        bar = progress_bar(pack_order(len(items)), desc=f'packing {os.path.basename(root)}',
                           enabled=progress)
        for j, i in enumerate(bar):
            path, label = items[i]
            try:
                with open(path, 'rb') as f:
                    data = f.read()
            except OSError as e:
                raise ImagePackError(f'{path}: cannot be read ({e})') from e
            data = _record_bytes(path, data, resize, quality)
            header = mx.recordio.IRHeader(0, float(label), int(i), 0)   # id: the image
            writer.write_idx(j, mx.recordio.pack(header, data))
        writer.close()
        os.replace(tmp + '.rec', rec)
        os.replace(tmp + '.idx', idx)
        with open(tmp + '.json', 'w') as f:
            json.dump({'fingerprint': fp, 'root': root, 'num_images': len(items),
                       'resize': resize, 'quality': quality,
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
    draws new crops, flips and colours. The folder is packed as ``spec`` says
    (``pack_resize``, ``pack_quality``; see :func:`pack_images`).

    ``dtype='uint8'``: ``X`` holds the augmented pixels (0-255) unnormalised, a quarter of
    the bytes to move to a device; the training step normalises them there with
    :func:`normalize` (``loader.normalize(X)``).
    """

    def __init__(self, dataset, spec, batch_size, shuffle=True, last_batch='discard',
                 threads=None, seed=0, cache_dir=None, dtype='float32'):
        import mxnet as mx
        if last_batch not in ('discard', 'keep'):
            raise ValueError(f"last_batch must be 'discard' or 'keep', got {last_batch!r}")
        if dtype not in ('float32', 'uint8'):
            raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
        self.dtype, self.spec = dtype, spec
        self.rec, self.idx = pack_images(dataset, cache_dir, resize=spec.get('pack_resize'),
                                         quality=spec.get('pack_quality', 90))
        self.num_images = len(dataset)
        self.batch_size, self.last_batch = batch_size, last_batch
        if threads is None:
            from .train import get_dataloader_workers
            threads = get_dataloader_workers()
        self.threads = max(1, int(threads))
        self.order = pack_order(self.num_images)
        s = spec
        lo_r, hi_r = s['ratio']
        kwargs = dict(
            path_imgrec=self.rec, path_imgidx=self.idx, data_shape=(3, s['size'], s['size']),
            shuffle=shuffle, round_batch=False,
            random_resized_crop=True, min_random_area=s['scale'][0],
            max_random_area=s['scale'][1], min_aspect_ratio=lo_r, max_aspect_ratio=hi_r,
            rand_mirror=s['flip'], brightness=s['jitter'], contrast=s['jitter'],
            saturation=s['jitter'], pca_noise=s['lighting'], inter_method=1, dtype='uint8')
        if s['resize']:
            kwargs['resize'] = s['resize']
        # MXNet gives one iterator at most max(cores / 2 - 1, 1) decoding threads (one on 2
        # or 4 cores, whatever preprocess_threads says). More threads therefore means more
        # iterators: each reads its own part of the records (num_parts / part_index; the
        # pack's order is a fixed random permutation, so every part is a random subset)
        # and contributes its share of every batch.
        cap = max((os.cpu_count() or 1) // 2 - 1, 1)
        parts = min(-(-self.threads // cap), batch_size, max(1, self.num_images))
        shares = [batch_size // parts + (i < batch_size % parts) for i in range(parts)]
        self._part_kwargs = [dict(kwargs, batch_size=b, num_parts=parts, part_index=i,
                                  preprocess_threads=-(-self.threads // parts))
                             for i, b in enumerate(shares)]
        self.parts = parts
        # The iterators hand over uint8 pixels (a quarter of the bytes); this process
        # turns them into normalised floats in one compiled pass, while the iterators'
        # threads decode the next batch.
        self._table = _normalize_table(s['mean'], s['std'])
        self._normalize = _normalize_kernel()
        self._seed, self._epochs_started = seed, 0
        self._its = self._iterators(seed)
        self._at_epoch_end = True

    def _iterators(self, seed):
        import mxnet as mx
        # distinct seeds: the parts must not draw the same crops in lockstep. ``seed`` only
        # shuffles the records; the crops, flips and colours draw from ``seed_aug``
        return [mx.io.ImageRecordIter(**dict(kw, seed=seed * 1000 + i,
                                             seed_aug=seed * 1000 + i))
                for i, kw in enumerate(self._part_kwargs)]

    def normalize(self, X):
        """``X (B, 3, H, W)`` uint8 of this loader, normalised as its ``spec`` says, on
        ``X``'s device (:func:`normalize`)."""
        return normalize(X, self.spec['mean'], self.spec['std'])

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
                yield _to_mx(item[0]), _to_mx(item[1])
        finally:
            self._finish_epoch()

    def _finish_epoch(self):
        worker, stop = getattr(self, '_epoch', (None, None))
        if worker is not None:
            stop.set()
            worker.join()
            self._epoch = (None, None)

    def _produce(self, outq, stop):
        def put(item):
            while not stop.is_set():
                try:
                    outq.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    pass
            return False
        try:
            self._start_epoch()
            # Round-robin over the parts; the valid images of their batches (a part's last
            # batch is short, ``pad`` says by how much) are re-cut into batches of
            # ``batch_size``. Every part is read to its end: an iterator left in the middle
            # of an epoch cannot be reset (see _start_epoch).
            target = (self.num_images if self.last_batch == 'keep'
                      else len(self) * self.batch_size)
            batch_X = batch_y = None      # the batch being filled, and its fill level
            filled = 0
            active = list(self._its)
            while active:
                for it in list(active):
                    if stop.is_set():     # the consumer left the epoch
                        return
                    try:
                        batch = it.next()
                    except StopIteration:
                        active.remove(it)
                        continue
                    self._at_epoch_end = False
                    valid = batch.data[0].shape[0] - batch.pad
                    if target <= 0 or valid <= 0:
                        continue
                    # asnumpy copies: the iterator reuses its buffers
                    pixels = batch.data[0].asnumpy()[:valid]
                    labels = batch.label[0].asnumpy()[:valid]
                    while len(pixels) and target > 0:
                        if batch_X is None:
                            n = min(self.batch_size, target)
                            batch_X = onp.empty((n,) + pixels.shape[1:], self.dtype)
                            batch_y, filled = onp.empty(n, onp.float32), 0
                        m = min(len(pixels), len(batch_X) - filled)
                        self._finish(pixels[:m], batch_X[filled:filled + m])
                        batch_y[filled:filled + m] = labels[:m]
                        pixels, labels, filled = pixels[m:], labels[m:], filled + m
                        if filled == len(batch_X):
                            target -= len(batch_X)
                            if not put((batch_X, batch_y)):
                                return
                            batch_X = None
            self._at_epoch_end = True
            put(_END)
        except BaseException as e:     # raised in the consumer's thread
            put(e)

    def _finish(self, pixels, out):
        """uint8 ``pixels`` into ``out`` as this loader hands them over (normalised
        floats, or the pixels themselves)."""
        if self.dtype == 'uint8':
            out[...] = pixels
        else:
            self._normalize(pixels, self._table, out)

    def _start_epoch(self):
        # MXNet's ImageRecordIter, reset in the middle of an epoch, can hand out records of
        # the abandoned epoch first (seen: labels of a later batch in the first one). An
        # epoch the consumer left early is therefore not reset but started afresh, with a
        # new seed so that it still draws new crops, flips and colours.
        self._epochs_started += 1
        if self._at_epoch_end:
            for it in self._its:
                it.reset()
        else:
            self._its = self._iterators(self._seed + self._epochs_started)
            self._at_epoch_end = True


_END = object()


def _to_mx(x):
    """A fresh NumPy array as an ``mxnet.numpy`` array on cpu(0), without a copy."""
    import mxnet as mx
    return mx.nd.from_numpy(x, zero_copy=True).as_np_ndarray()


_MEAN_STD = {}


def normalize(X, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    """``X (B, 3, H, W)`` uint8 pixels -> float32 ``(X / 255 - mean) / std`` per channel,
    computed where ``X`` lives (a GPU in training: the host moves uint8, a quarter of the
    bytes, and does no arithmetic).

    Two operators: a cast and MXNet's ``image.normalize`` with ``255 * mean`` and
    ``255 * std`` (one pass over the floats). The result differs from ``ToTensor`` then
    ``Normalize`` by float32 rounding only (at most a few 1e-7).
    """
    from mxnet import npx
    key = (tuple(mean), tuple(std))
    if key not in _MEAN_STD:
        _MEAN_STD[key] = (tuple(float(onp.float32(255) * onp.float32(m)) for m in mean),
                          tuple(float(onp.float32(255) * onp.float32(s)) for s in std))
    m255, s255 = _MEAN_STD[key]
    return npx.image.normalize(X.astype('float32'), mean=m255, std=s255)


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
