"""Section 13.6, the object detection data set (bananas), in both of its layouts.

* ``load_data_bananas(batch_size, edge_size=256)``: the chapter's reader of the RecordIO
  layout (``DATA_HUB['bananas']``: ``train.rec``/``train.idx``/``val.rec``) with
  ``image.ImageDetIter``: random crops covering >= 95% of each object (200 attempts) for
  training, no crop and no shuffling for validation. Batches are ``DataBatch`` objects:
  ``batch.data[0] (B, 3, edge, edge)`` float32 pixels in [0, 255] and ``batch.label[0]
  (B, m, 5)`` rows ``(class, x1, y1, x2, y2)``, corners in [0, 1], padded with -1 rows.
* ``read_data_bananas`` / ``BananasDataset`` / ``load_data_bananas_csv``: the newer layout
  (``DATA_HUB['banana-detection']``: ``bananas_{train,val}/label.csv`` + ``images/``) as a
  Gluon ``Dataset`` yielding ``(image (3, H, W) float32, label (m, 5))``, one CSV row per
  object, several rows per image allowed.

Both readers check their files before use: a missing or corrupt ``.rec``/``.idx`` record or
``label.csv`` row raises :class:`BananasDataError` naming the file and the record or line.
With ``D2LCV_TINY=1`` (or ``tiny=True``) the synthetic twin (:mod:`d2lcv.synth.bananas`)
stands in for the download.
"""
import csv
import math
import os
import struct

import numpy as onp
from mxnet import gluon, image, np

from .hub import download_extract

__all__ = ['load_data_bananas', 'BananasDataError', 'BananaDetIter', 'check_recordio',
           'read_data_bananas', 'BananasDataset', 'load_data_bananas_csv',
           'BANANA_CLASSES', 'read_label_csv']

BANANA_CLASSES = ['banana']
_MAGIC = 0xced7230a


class BananasDataError(ValueError):
    """A banana data file (``.rec``, ``.idx``, ``label.csv``, an image) is missing or corrupt."""


# ----------------------------------------------------------------------------------------
# RecordIO layout (the chapter's)
# ----------------------------------------------------------------------------------------

def _require(path, what):
    if not os.path.isfile(path):
        folder = os.path.dirname(path) or '.'
        present = sorted(os.listdir(folder)) if os.path.isdir(folder) else 'folder missing'
        raise BananasDataError(f'{path}: {what} not found (in {folder}: {present})')


def _read_header(f, rec_path, rec_size, offset, where):
    """Read the record header at ``offset``; return ``(payload_length, label floats)``."""
    if offset < 0 or offset + 8 > rec_size:
        raise BananasDataError(f'{rec_path}: {where}: offset {offset} is outside the file '
                               f'({rec_size} bytes); is the .rec truncated or the .idx stale?')
    f.seek(offset)
    magic, lrec = struct.unpack('II', f.read(8))
    if magic != _MAGIC:
        raise BananasDataError(f'{rec_path}: {where}: no RecordIO record at byte {offset} '
                               f'(magic {magic:#x}, expected {_MAGIC:#x})')
    length, cflag = lrec & ((1 << 29) - 1), lrec >> 29
    if cflag != 0:
        raise BananasDataError(f'{rec_path}: {where}: record split across chunks (cflag '
                               f'{cflag}); image records are never split')
    if offset + 8 + length > rec_size:
        raise BananasDataError(f'{rec_path}: {where}: record of {length} bytes runs past the '
                               f'end of the file ({rec_size} bytes): truncated .rec')
    if length < 24:
        raise BananasDataError(f'{rec_path}: {where}: record of {length} bytes is too short '
                               'for an image record header')
    flag, _, _, _ = struct.unpack('IfQQ', f.read(24))
    if 24 + 4 * flag > length:
        raise BananasDataError(f'{rec_path}: {where}: header announces {flag} label values, '
                               f'more than the record holds')
    label = onp.frombuffer(f.read(4 * flag), dtype=onp.float32)
    return length, label


def _check_det_label(raw, rec_path, where):
    """Parse a raw detection label ``[A, B, ..., objects]`` into ``(k, B)``; raise if corrupt."""
    raw = onp.asarray(raw, onp.float32).ravel()
    if raw.size < 7:
        raise BananasDataError(f'{rec_path}: {where}: detection label has {raw.size} values; '
                               'expected [header width, object width, ..., class, x1, y1, '
                               'x2, y2, ...]')
    if not onp.isfinite(raw).all():
        raise BananasDataError(f'{rec_path}: {where}: label holds non-finite values {raw}')
    header, width = int(raw[0]), int(raw[1])
    if header < 2 or width < 5 or header > raw.size or (raw.size - header) % width:
        raise BananasDataError(f'{rec_path}: {where}: label of {raw.size} values does not '
                               f'split into a header of {header} and objects of {width}')
    objs = raw[header:].reshape(-1, width)
    ok = (objs[:, 3] > objs[:, 1]) & (objs[:, 4] > objs[:, 2])
    if not ok.any():
        raise BananasDataError(f'{rec_path}: {where}: no valid box (every box has x2 <= x1 '
                               f'or y2 <= y1): {objs[:, :5].tolist()}')
    # MXNet's iterator takes any class and corner silently: a class -1 object makes it drop
    # the image (and pad the batch with another), pixel corners train as boxes far outside
    box = objs[ok]
    cls = box[:, 0]
    bad_cls = (cls < 0) | (cls != onp.floor(cls))
    if bad_cls.any():
        raise BananasDataError(f'{rec_path}: {where}: object class {cls[bad_cls][0]:g} is not '
                               f'a non-negative integer (objects {box[:, :5].tolist()})')
    tol = 1e-5
    outside = ((box[:, 1:5] < -tol) | (box[:, 1:5] > 1 + tol)).any(axis=1)
    if outside.any():
        raise BananasDataError(f'{rec_path}: {where}: box {box[outside][0, 1:5].tolist()} is '
                               'not in [0, 1]: RecordIO detection labels hold corners divided '
                               'by the image width and height')
    return objs


def check_recordio(path_imgrec, path_imgidx=None):
    """Check a detection ``.rec`` (and its ``.idx``) record by record; return the record count.

    Reads only headers and labels (not the images): every ``.idx`` line must be
    ``key<TAB>offset`` pointing at a complete record, every record must carry a parsable
    detection label with at least one valid box. Raises :class:`BananasDataError` naming
    the file and the line, key or record number at fault.
    """
    _require(path_imgrec, 'RecordIO file')
    rec_size = os.path.getsize(path_imgrec)
    with open(path_imgrec, 'rb') as f:
        if path_imgidx is not None:
            _require(path_imgidx, 'RecordIO index')
            entries = []
            with open(path_imgidx, 'rb') as idx:
                for lineno, raw_line in enumerate(idx, 1):
                    try:
                        line = raw_line.decode('ascii')
                    except UnicodeDecodeError:
                        raise BananasDataError(f'{path_imgidx}: line {lineno}: not text '
                                               f'({raw_line[:40]!r})') from None
                    if not line.strip():
                        continue
                    parts = line.split('\t')
                    try:
                        key, offset = int(parts[0]), int(parts[1])
                        if len(parts) != 2:
                            raise ValueError
                    except (ValueError, IndexError):
                        raise BananasDataError(f'{path_imgidx}: line {lineno}: expected '
                                               f'"key<TAB>offset", got {line.rstrip()!r}') \
                            from None
                    entries.append((key, offset))
            if not entries:
                raise BananasDataError(f'{path_imgidx}: the index is empty')
            for key, offset in entries:
                where = f'record key {key} (byte {offset}, from {os.path.basename(path_imgidx)})'
                _, label = _read_header(f, path_imgrec, rec_size, offset, where)
                _check_det_label(label, path_imgrec, where)
        offset, n, starts = 0, 0, []
        while offset < rec_size:
            where = f'record #{n} (byte {offset})'
            length, label = _read_header(f, path_imgrec, rec_size, offset, where)
            _check_det_label(label, path_imgrec, where)
            starts.append(offset)
            offset += 8 + length + (-length) % 4
            n += 1
        if n == 0:
            raise BananasDataError(f'{path_imgrec}: the file holds no record')
        if path_imgidx is not None:
            # an index cut at a line boundary parses fine and silently drops records
            unindexed = sorted(set(starts) - {o for _, o in entries})
            if unindexed:
                raise BananasDataError(
                    f'{path_imgidx}: lists {len(entries)} record(s) but {path_imgrec} holds '
                    f'{n}; {len(unindexed)} are not indexed, the first at byte {unindexed[0]} '
                    '(a cut-off or stale .idx: rebuild it from the .rec)')
            return len(entries)
        return n


class BananaDetIter(image.ImageDetIter):
    """``image.ImageDetIter`` whose errors name the ``.rec`` file and the record.

    MXNet's iterator reports a corrupt label as "Label shape is invalid" and silently skips
    undecodable images in some paths; here the files are checked first
    (:func:`check_recordio`) and any later failure raises :class:`BananasDataError`.
    """

    _pos = 0  # records read so far in sequential (no .idx) mode

    def __init__(self, batch_size, data_shape, path_imgrec=None, path_imgidx=None, **kwargs):
        check_recordio(path_imgrec, path_imgidx)
        self._rec_path = path_imgrec
        self._where = 'record ?'
        super().__init__(batch_size, data_shape, path_imgrec=path_imgrec,
                         path_imgidx=path_imgidx, **kwargs)

    def reset(self):
        self._pos = 0
        super().reset()

    def hard_reset(self):
        self._pos = 0
        super().hard_reset()

    def next_sample(self):
        if self.seq is not None:
            where = (f'record key {self.seq[self.cur]}' if self.cur < len(self.seq)
                     else 'end')
        else:
            where = f'record #{self._pos}'
        try:
            label, img = super().next_sample()
        except StopIteration:
            if self.seq is None:  # MXNet rewinds the file to pad the last batch
                self._pos = 0
            raise
        except Exception as e:  # MXNetError, struct.error ... from a damaged file
            raise BananasDataError(f'{self._rec_path}: {where}: cannot read: {e}') from e
        self._pos += 1
        self._where = where
        return label, img

    def _parse_label(self, label):
        if hasattr(label, 'asnumpy'):
            label = label.asnumpy()
        objs = _check_det_label(label, self._rec_path, self._where)
        return objs[(objs[:, 3] > objs[:, 1]) & (objs[:, 4] > objs[:, 2])]

    def imdecode(self, s):
        try:
            img = image.imdecode(s)
            if len(img.shape) != 3 or img.shape[0] == 0 or img.shape[1] == 0:
                raise ValueError(f'decoded to shape {img.shape}')
        except Exception as e:
            raise BananasDataError(f'{self._rec_path}: {self._where}: the image does not '
                                   f'decode: {e}') from e
        return img


def load_data_bananas(batch_size, edge_size=256, *, data_dir=None, tiny=None, kvstore=None):
    """Load the bananas data set (RecordIO layout); return ``(train_iter, val_iter)``.

    As in the chapter: training batches are shuffled and randomly cropped (each crop keeps
    >= 95% of every object, up to 200 attempts, else no crop) and resized to
    ``edge_size``; validation is read in order, uncropped. Each batch has
    ``data[0] (batch_size, 3, edge_size, edge_size)`` and ``label[0] (batch_size, m, 5)``.
    ``data_dir`` overrides the folder holding the ``.rec`` files (default: the downloaded
    ``bananas`` folder, or the synthetic twin with ``tiny``/``D2LCV_TINY=1``).
    ``kvstore``: with a dist ``KVStore`` (``d2lcv.dist.create_kvstore('dist_sync')``) the
    training iterator reads only this worker's equal contiguous shard
    (:func:`d2lcv.dist.shard_args`), as ``train_ssd(..., kvstore=kv)`` needs; ``batch_size``
    is then per worker.
    """
    from .dist import shard_args
    if data_dir is None:
        data_dir = download_extract('bananas', tiny=tiny)
    train_iter = BananaDetIter(
        path_imgrec=os.path.join(data_dir, 'train.rec'),
        path_imgidx=os.path.join(data_dir, 'train.idx'),
        batch_size=batch_size,
        data_shape=(3, edge_size, edge_size),  # the shape of the output image
        shuffle=True,  # read the data set in random order
        rand_crop=1,  # the probability of random cropping is 1
        min_object_covered=0.95, max_attempts=200,
        **shard_args(kvstore))
    val_iter = BananaDetIter(
        path_imgrec=os.path.join(data_dir, 'val.rec'), batch_size=batch_size,
        data_shape=(3, edge_size, edge_size), shuffle=False)
    return train_iter, val_iter


# ----------------------------------------------------------------------------------------
# CSV layout (banana-detection.zip)
# ----------------------------------------------------------------------------------------

_COLUMNS = ['img_name', 'label', 'xmin', 'ymin', 'xmax', 'ymax']


def read_label_csv(csv_fname):
    """``{img_name: [(line, cls, x1, y1, x2, y2), ...]}`` in file order, checked row by row."""
    _require(csv_fname, 'label file')
    objects = {}
    with open(csv_fname, newline='') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise BananasDataError(f'{csv_fname}: the file is empty (expected a header '
                                   f'{",".join(_COLUMNS)})')
        header = [h.strip() for h in header]
        missing = [c for c in _COLUMNS if c not in header]
        if missing:
            raise BananasDataError(f'{csv_fname}: line 1: header {header} lacks the '
                                   f'column(s) {missing}')
        cols = [header.index(c) for c in _COLUMNS]
        for row in reader:
            line = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise BananasDataError(f'{csv_fname}: line {line}: {len(row)} fields, the '
                                       f'header has {len(header)}: {row}')
            name = row[cols[0]].strip()
            try:
                values = [float(row[c]) for c in cols[1:]]
            except ValueError:
                raise BananasDataError(f'{csv_fname}: line {line}: label and box must be '
                                       f'numbers, got {row}') from None
            cls, x1, y1, x2, y2 = values
            if not name or not all(map(math.isfinite, values)):
                raise BananasDataError(f'{csv_fname}: line {line}: bad row {row}')
            if cls < 0 or cls != int(cls):
                raise BananasDataError(f'{csv_fname}: line {line}: class {row[cols[1]]!r} '
                                       'is not a non-negative integer')
            if not (x2 > x1 and y2 > y1):
                raise BananasDataError(f'{csv_fname}: line {line}: degenerate box '
                                       f'({x1}, {y1}, {x2}, {y2}) for {name}')
            objects.setdefault(name, []).append((line, cls, x1, y1, x2, y2))
    if not objects:
        raise BananasDataError(f'{csv_fname}: no data rows')
    return objects


def read_data_bananas(is_train=True, data_dir=None, tiny=None):
    """Read the CSV layout; return ``(images, labels)``.

    ``images``: a list of ``(H, W, 3)`` uint8 arrays (MXNet numpy), in ``label.csv`` order;
    ``labels``: ``(N, m, 5)`` float32 rows ``(class, x1, y1, x2, y2)`` with corners divided
    by the image's width and height (so in [0, 1]), padded with -1 rows to the largest
    object count ``m``. Boxes outside their image raise :class:`BananasDataError`.
    """
    if data_dir is None:
        data_dir = download_extract('banana-detection', tiny=tiny)
    folder = os.path.join(data_dir, 'bananas_train' if is_train else 'bananas_val')
    csv_fname = os.path.join(folder, 'label.csv')
    objects = read_label_csv(csv_fname)
    m = max(len(v) for v in objects.values())
    labels = onp.full((len(objects), m, 5), -1, onp.float32)
    images = []
    for i, (name, rows) in enumerate(objects.items()):
        path = os.path.join(folder, 'images', name)
        if not os.path.isfile(path):
            raise BananasDataError(f'{csv_fname}: line {rows[0][0]}: image {path} not found')
        try:
            img = image.imread(path)
        except Exception as e:
            raise BananasDataError(f'{csv_fname}: line {rows[0][0]}: image {path} does not '
                                   f'decode: {e}') from e
        h, w = img.shape[:2]
        box = onp.array([r[1:] for r in rows], onp.float32)
        bad = (box[:, 1] < 0) | (box[:, 2] < 0) | (box[:, 3] > w) | (box[:, 4] > h)
        if bad.any():
            line = rows[int(onp.argmax(bad))][0]
            raise BananasDataError(f'{csv_fname}: line {line}: box {box[bad][0, 1:].tolist()} '
                                   f'lies outside its {w}x{h} image {name}')
        labels[i, :len(rows)] = box / onp.array([1, w, h, w, h], onp.float32)
        images.append(img)
    return images, np.array(labels)


class BananasDataset(gluon.data.Dataset):
    """The CSV-layout banana data set: items ``(image (3, H, W) float32, label (m, 5))``."""

    def __init__(self, is_train, data_dir=None, tiny=None):
        self.features, self.labels = read_data_bananas(is_train, data_dir, tiny)
        print('read ' + str(len(self.features)) + (' training examples' if is_train
                                                   else ' validation examples'))

    def __getitem__(self, idx):
        return (self.features[idx].astype('float32').transpose(2, 0, 1), self.labels[idx])

    def __len__(self):
        return len(self.features)


def load_data_bananas_csv(batch_size, data_dir=None, tiny=None):
    """The CSV layout as two ``DataLoader``: shuffled training and in-order validation.

    Batches are ``(X (B, 3, H, W) float32, Y (B, m, 5))`` (the newer book's
    ``load_data_bananas``).
    """
    train_iter = gluon.data.DataLoader(BananasDataset(True, data_dir, tiny), batch_size,
                                       shuffle=True)
    val_iter = gluon.data.DataLoader(BananasDataset(False, data_dir, tiny), batch_size)
    return train_iter, val_iter
