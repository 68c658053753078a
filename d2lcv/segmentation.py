"""Section 13.9, semantic segmentation and the Pascal VOC2012 data set.

The chapter's names: ``read_voc_images``, ``VOC_COLORMAP``, ``VOC_CLASSES``,
``build_colormap2label`` (newer name ``voc_colormap2label``), ``voc_label_indices``,
``voc_rand_crop``, ``VOCSegDataset`` and ``load_data_voc``; plus the segmentation metrics
(``segmentation_confusion``, ``pixel_accuracy``, ``mean_iou``).

Labels. VOC's ``SegmentationClass/*.png`` are *palette* PNGs: each pixel's stored value is
already its class index (0-20), and the "void" band around objects (drawn in (224, 224, 192))
has index 255. d2lcv keeps 255 as :data:`IGNORE_LABEL` -- it is not background -- and the
segmentation loss (:class:`d2lcv.fcn.SegmentationLoss`), the accuracy in ``train_ch13`` and
the metrics here skip those pixels. ``VOCSegDataset`` reads the indices straight from the
palette (no colour lookup table at all); ``voc_label_indices`` still maps RGB label images
(the chapter's way) through a 22-entry sorted table instead of the chapter's 256**3 floats
(64 MiB). Colours that are not in the VOC colormap map to 255 (ignored).

Memory. ``VOCSegDataset`` checks each image's size from its file header and decodes only
the images at least as large as the crop, once; it keeps them as uint8 (1/4 of the
chapter's float32) and normalises each random crop when it is drawn.
"""
import os
import random

import numpy as onp
from mxnet import gluon, np

from ._arrays import host
from .hub import download_extract
from .train import get_dataloader_workers

__all__ = ['VOC_COLORMAP', 'VOC_CLASSES', 'IGNORE_LABEL', 'VOID_COLOR', 'RGB_MEAN', 'RGB_STD',
           'read_voc_images', 'read_voc_label', 'build_colormap2label', 'voc_colormap2label',
           'ColormapTable', 'voc_label_indices', 'voc_rand_crop', 'normalize_image',
           'VOCSegDataset', 'load_data_voc', 'voc_split_names', 'segmentation_confusion',
           'pixel_accuracy', 'mean_iou', 'VOCFormatError', 'voc_palette']

VOC_COLORMAP = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                [0, 0, 128], [128, 0, 128], [0, 128, 128], [128, 128, 128],
                [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0],
                [64, 0, 128], [192, 0, 128], [64, 128, 128], [192, 128, 128],
                [0, 64, 0], [128, 64, 0], [0, 192, 0], [128, 192, 0],
                [0, 64, 128]]


def voc_palette():
    """VOC's 256-entry palette ``(256, 3)`` uint8 (index 0 black, 255 = (224, 224, 192)):
    ``VOC_COLORMAP`` is its first 21 rows, and ``label2image`` colours void pixels (255) with it.

    The colour of index ``i`` spreads its bits over the three channels, from the high bit
    down: bit ``3k`` goes to red bit ``7-k``, ``3k+1`` to green, ``3k+2`` to blue.
    """
    idx = onp.arange(256)
    pal = onp.zeros((256, 3), dtype=onp.int64)
    for k in range(8):  # eight bit triplets of the index (a constant loop, not over data)
        for c in range(3):
            pal[:, c] |= ((idx >> (3 * k + c)) & 1) << (7 - k)
    return pal.astype(onp.uint8)


VOC_CLASSES = ['background', 'aeroplane', 'bicycle', 'bird', 'boat',
               'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
               'diningtable', 'dog', 'horse', 'motorbike', 'person',
               'potted plant', 'sheep', 'sofa', 'train', 'tv/monitor']

#: Label of VOC's "void" pixels (object borders, difficult regions): skipped by loss/metrics.
IGNORE_LABEL = 255
#: The colour VOC draws void pixels in (palette index 255).
VOID_COLOR = [224, 224, 192]
#: ImageNet statistics the chapter normalises with (the backbone was trained on them).
RGB_MEAN = onp.array([0.485, 0.456, 0.406], dtype=onp.float32)
RGB_STD = onp.array([0.229, 0.224, 0.225], dtype=onp.float32)


class VOCFormatError(FileNotFoundError):
    """The VOC folder is missing a file, or a file does not have the expected content."""


# ----------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------

def voc_split_names(voc_dir, is_train=True):
    """Image ids listed in ``ImageSets/Segmentation/train.txt`` (or ``val.txt``)."""
    if not os.path.isdir(voc_dir):
        raise VOCFormatError(f'VOC folder {voc_dir} does not exist (expected '
                             '<data>/VOCdevkit/VOC2012 from VOCtrainval_11-May-2012.tar; '
                             'offline, set D2LCV_TINY=1 for the synthetic twin)')
    txt = os.path.join(voc_dir, 'ImageSets', 'Segmentation',
                       'train.txt' if is_train else 'val.txt')
    if not os.path.exists(txt):
        raise VOCFormatError(f'{txt} is missing: {voc_dir} is not a VOC2012 folder '
                             '(needs ImageSets/Segmentation, JPEGImages, SegmentationClass)')
    with open(txt) as f:
        names = f.read().split()
    missing = [os.path.join(voc_dir, sub, f'{n}{ext}') for n in names
               for sub, ext in (('JPEGImages', '.jpg'), ('SegmentationClass', '.png'))
               if not os.path.exists(os.path.join(voc_dir, sub, f'{n}{ext}'))]
    if missing:
        raise VOCFormatError(f'{len(missing)} file(s) listed in {txt} are missing, first: '
                             + ', '.join(missing[:3]))
    return names


def _open_image(path):
    from PIL import Image
    try:
        im = Image.open(path)
        im.size  # noqa: B018 - the header is parsed here; a non-image fails now
    except Exception as e:
        raise VOCFormatError(f'{path}: not a readable image ({e})') from e
    return im


def _decode(im, path, mode=None):
    try:
        if mode is not None and im.mode != mode:
            im = im.convert(mode)
        return onp.asarray(im)
    except Exception as e:
        raise VOCFormatError(f'{path}: cannot be decoded ({e})') from e


def read_voc_label(path):
    """Class indices ``(H, W)`` uint8 of one ``SegmentationClass`` PNG (255 = void).

    A palette PNG (VOC's format) gives the indices directly; an RGB label image is mapped
    through :func:`voc_label_indices`.
    """
    return _label_indices(_open_image(path), path)


def _check_label_range(lab, path):
    """Raise unless every value of ``lab`` is a class (0-20) or void (255). Checked before
    any narrowing to uint8: a 16-bit 300 would otherwise wrap to class 44 (and then train
    as class 20, where the loss's pick clips it)."""
    bad = (lab < 0) | ((lab >= len(VOC_CLASSES)) & (lab != IGNORE_LABEL))
    if bad.any():
        ys, xs = onp.nonzero(bad)
        values = onp.unique(lab[bad])
        raise VOCFormatError(
            f'{path}: {int(bad.sum())} pixel(s) have label values '
            f'{values[:8].tolist()}{" ..." if values.size > 8 else ""} (first at row '
            f'{ys[0]}, column {xs[0]}); VOC labels are 0-{len(VOC_CLASSES) - 1} or '
            f'{IGNORE_LABEL} (void)')


_STRICT_TABLE = None


def _label_indices(im, path):
    """Class indices of an opened label image (see :func:`read_voc_label`). Values that are
    no VOC class, and RGB colours that are not in the VOC colormap, raise
    :class:`VOCFormatError` naming the file."""
    global _STRICT_TABLE
    if im.mode in ('P', 'L', 'I', 'I;16', 'I;16B', 'I;16L'):
        lab = _decode(im, path)
        _check_label_range(lab, path)
        return lab.astype(onp.uint8)
    rgb = _decode(im, path, 'RGB')
    if _STRICT_TABLE is None:
        _STRICT_TABLE = ColormapTable(missing=-1)
    lab = voc_label_indices(rgb, _STRICT_TABLE)
    unknown = lab < 0
    if unknown.any():
        ys, xs = onp.nonzero(unknown)
        raise VOCFormatError(
            f'{path}: {int(unknown.sum())} of {lab.size} pixels have colours that are not in '
            f'the VOC colormap (first {tuple(int(c) for c in rgb[ys[0], xs[0]])} at row '
            f'{ys[0]}, column {xs[0]}); a label image must use VOC_COLORMAP or the void '
            f'colour {tuple(VOID_COLOR)} exactly (a JPEG-compressed or resampled label '
            'image does not)')
    return lab.astype(onp.uint8)


def read_voc_images(voc_dir, is_train=True):
    """Read all VOC feature and label images (the chapter's function).

    Returns two lists of ``mxnet.np`` uint8 arrays: the images ``(H, W, 3)`` and their label
    images as RGB colours ``(H, W, 3)`` (what the chapter shows and maps through
    :func:`voc_label_indices`). Missing files raise :class:`VOCFormatError` naming them.
    """
    names = voc_split_names(voc_dir, is_train)
    features, labels = [], []
    for fname in names:
        img_path = os.path.join(voc_dir, 'JPEGImages', f'{fname}.jpg')
        lbl_path = os.path.join(voc_dir, 'SegmentationClass', f'{fname}.png')
        features.append(np.array(_decode(_open_image(img_path), img_path, 'RGB'),
                                 dtype='uint8'))
        labels.append(np.array(_decode(_open_image(lbl_path), lbl_path, 'RGB'),
                               dtype='uint8'))
    return features, labels


# ----------------------------------------------------------------------------------------
# Colours -> class indices
# ----------------------------------------------------------------------------------------

class ColormapTable:
    """RGB colour -> class index, as a sorted table of the VOC colours' 24-bit keys.

    ``table[keys]`` looks up an integer array of ``(r * 256 + g) * 256 + b`` keys (any shape)
    and returns float32 class indices; keys of colours not in the table give ``missing``
    (255 by default). 22 entries instead of the chapter's ``256 ** 3`` floats.
    """

    def __init__(self, colormap=VOC_COLORMAP, void_color=VOID_COLOR, missing=IGNORE_LABEL):
        cmap = onp.asarray(list(colormap) + ([void_color] if void_color else []), onp.int64)
        keys = (cmap[:, 0] * 256 + cmap[:, 1]) * 256 + cmap[:, 2]
        labels = onp.arange(len(colormap), dtype=onp.float32)
        if void_color:
            labels = onp.append(labels, onp.float32(IGNORE_LABEL))
        order = onp.argsort(keys)
        self.keys, self.labels, self.missing = keys[order], labels[order], missing

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, idx):
        idx = host(idx, onp.int64)
        pos = onp.clip(onp.searchsorted(self.keys, idx), 0, len(self.keys) - 1)
        found = self.keys[pos] == idx
        return onp.where(found, self.labels[pos], onp.float32(self.missing)).astype(
            onp.float32)


def build_colormap2label():
    """Build an RGB colour to label mapping for segmentation (see :class:`ColormapTable`)."""
    return ColormapTable()


voc_colormap2label = build_colormap2label


def voc_label_indices(colormap, colormap2label=None):
    """Map an RGB label image ``(H, W, 3)`` to class indices ``(H, W)`` float32.

    ``colormap2label``: a :class:`ColormapTable` (default) or the chapter's flat ``256 ** 3``
    array. Returns an ``mxnet.np`` array for an ``mxnet.np`` input, else a NumPy array.
    """
    is_mx = hasattr(colormap, 'asnumpy')
    cm = colormap.asnumpy() if is_mx else onp.asarray(colormap)
    if cm.ndim != 3 or cm.shape[2] < 3:
        raise ValueError(f'voc_label_indices expects an RGB image (H, W, 3), got {cm.shape}')
    cm = cm.astype(onp.int64)
    idx = (cm[:, :, 0] * 256 + cm[:, :, 1]) * 256 + cm[:, :, 2]
    table = build_colormap2label() if colormap2label is None else colormap2label
    if hasattr(table, 'asnumpy'):
        table = table.asnumpy()
    out = onp.asarray(table[idx], dtype=onp.float32)
    return np.array(out) if is_mx else out


# ----------------------------------------------------------------------------------------
# Cropping, normalising, the data set
# ----------------------------------------------------------------------------------------

def voc_rand_crop(feature, label, height, width, rng=None):
    """Randomly crop the same ``height x width`` window from ``feature`` and ``label``.

    ``feature (H, W, C)``, ``label (H, W)`` or ``(H, W, C)``; NumPy or ``mxnet.np``.
    ``rng``: a ``random.Random`` (default: the ``random`` module, seedable by
    ``random.seed``).
    """
    rng = random if rng is None else rng
    H, W = feature.shape[:2]
    if label.shape[:2] != (H, W):
        raise ValueError(f'feature {feature.shape[:2]} and label {label.shape[:2]} sizes differ')
    if H < height or W < width:
        raise ValueError(f'cannot crop {height}x{width} from a {H}x{W} image')
    y0, x0 = rng.randint(0, H - height), rng.randint(0, W - width)
    return (feature[y0:y0 + height, x0:x0 + width],
            label[y0:y0 + height, x0:x0 + width])


def normalize_image(img):
    """``(H, W, 3)`` uint8 -> float32, ImageNet-normalised per channel (NumPy or mxnet.np)."""
    if hasattr(img, 'asnumpy'):
        return (img.astype('float32') / 255 - np.array(RGB_MEAN, ctx=img.ctx)) / \
            np.array(RGB_STD, ctx=img.ctx)
    return (onp.asarray(img, onp.float32) / 255 - RGB_MEAN) / RGB_STD


class VOCSegDataset(gluon.data.Dataset):
    """A customized dataset to load the VOC data set.

    Item ``i``: ``(feature (3, h, w) float32, label (h, w) float32)`` for a random
    ``crop_size = (h, w)`` window; label values are 0-20 or 255 (void). Images smaller than
    the crop are dropped (sizes read from file headers, before decoding).
    """

    def __init__(self, is_train, crop_size, voc_dir, verbose=True):
        self.rgb_mean, self.rgb_std = RGB_MEAN, RGB_STD
        self.crop_size = tuple(crop_size)
        names = voc_split_names(voc_dir, is_train)
        self.features, self.labels, self.names = [], [], []
        for name in names:
            img_path = os.path.join(voc_dir, 'JPEGImages', f'{name}.jpg')
            lbl_path = os.path.join(voc_dir, 'SegmentationClass', f'{name}.png')
            img, lbl = _open_image(img_path), _open_image(lbl_path)
            if img.size != lbl.size:
                raise VOCFormatError(f'{lbl_path} is {lbl.size[0]}x{lbl.size[1]} (WxH) but '
                                     f'{img_path} is {img.size[0]}x{img.size[1]}')
            w, h = img.size
            if h < self.crop_size[0] or w < self.crop_size[1]:
                continue
            self.features.append(_decode(img, img_path, 'RGB'))
            self.labels.append(_label_indices(lbl, lbl_path))
            self.names.append(name)
        if verbose:
            print('read ' + str(len(self.features)) + ' examples')

    def normalize_image(self, img):
        return normalize_image(img)

    def filter(self, imgs):
        return [img for img in imgs if (
            img.shape[0] >= self.crop_size[0] and img.shape[1] >= self.crop_size[1])]

    def __getitem__(self, idx):
        # Python reseeds `random` in forked DataLoader workers: their crops differ
        feature, label = voc_rand_crop(self.features[idx], self.labels[idx], *self.crop_size)
        return (normalize_image(feature).transpose(2, 0, 1),
                label.astype(onp.float32))

    def __len__(self):
        return len(self.features)


def load_data_voc(batch_size, crop_size, *, tiny=None, voc_dir=None, num_workers=None,
                  verbose=True, kvstore=None):
    """Download and load the VOC2012 semantic segmentation data set.

    Returns ``(train_iter, test_iter)`` yielding ``X (B, 3, h, w)`` and ``Y (B, h, w)``.
    ``voc_dir`` overrides the folder; ``tiny`` (or ``D2LCV_TINY=1``) uses the synthetic twin.
    ``kvstore``: with a dist ``KVStore`` (``d2lcv.dist.create_kvstore('dist_sync')``) the
    training loader reads only this worker's equal shard (``kv.rank`` of ``kv.num_workers``),
    as ``train_fcn(..., kvstore=kv)`` needs; ``batch_size`` is then per worker.
    """
    if voc_dir is None:
        voc_dir = download_extract('voc2012', os.path.join('VOCdevkit', 'VOC2012'),
                                   tiny=tiny)
    if num_workers is None:
        num_workers = get_dataloader_workers()
    from .dist import shard_loader
    train_iter = shard_loader(VOCSegDataset(True, crop_size, voc_dir, verbose), batch_size,
                              kvstore, shuffle=True, last_batch='discard',
                              num_workers=num_workers)
    test_iter = gluon.data.DataLoader(
        VOCSegDataset(False, crop_size, voc_dir, verbose), batch_size,
        last_batch='discard', num_workers=num_workers)
    return train_iter, test_iter


# ----------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------

def segmentation_confusion(pred, label, num_classes=21, ignore_label=IGNORE_LABEL):
    """Confusion matrix ``(num_classes, num_classes)`` int64: row = true, column = predicted.

    ``pred`` and ``label``: integer class maps of the same shape (any, e.g. ``(B, H, W)``),
    NumPy or ``mxnet.np``. Pixels labelled ``ignore_label`` are skipped; a label or
    prediction outside ``[0, num_classes)`` otherwise raises.
    """
    pred = host(pred, None).astype(onp.int64)
    label = host(label, None).astype(onp.int64)
    if pred.shape != label.shape:
        raise ValueError(f'pred {pred.shape} and label {label.shape} shapes differ')
    keep = label != ignore_label
    pred, label = pred[keep], label[keep]
    for what, a in (('label', label), ('pred', pred)):
        bad = (a < 0) | (a >= num_classes)
        if bad.any():
            raise ValueError(f'{what} has value {a[bad][0]} outside [0, {num_classes}) '
                             f'(and not the ignore label {ignore_label})')
    return onp.bincount(label * num_classes + pred,
                        minlength=num_classes ** 2).reshape(num_classes, num_classes)


def pixel_accuracy(conf):
    """Fraction of non-ignored pixels predicted right, from a confusion matrix."""
    total = conf.sum()
    return float(onp.trace(conf) / total) if total else float('nan')


def mean_iou(conf, return_per_class=False):
    """Mean intersection-over-union over the classes present in the labels or predictions.

    Classes that appear in neither (union 0) are left out of the mean (their IoU is NaN in
    the per-class array).
    """
    inter = onp.diag(conf).astype(onp.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    with onp.errstate(invalid='ignore', divide='ignore'):
        iou = onp.where(union > 0, inter / onp.maximum(union, 1), onp.nan)
    miou = float(onp.nanmean(iou)) if (union > 0).any() else float('nan')
    return (miou, iou) if return_per_class else miou
