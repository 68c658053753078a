"""Trivial baselines: the rules without learned features that a model must beat on a twin.

Each fits on the twin's training split in a second and predicts in the chapter's output
format, so the reports and ``benchmarks/bench_twins.py`` score it with the same metric as
the trained model:

* :class:`ColourBoxBaseline` (bananas, 13.6-13.7): a learned colour likelihood, a
  threshold and connected components; one box per component, scored by its size.
* :class:`NearestColourSegmenter` (VOC, 13.9-13.11): every pixel takes the class whose
  mean colour is nearest.
* :class:`HistogramNN` (CIFAR-10, hot dog, dog breeds: 13.2, 13.13, 13.14): the nearest
  training image by colour histogram (chi-squared distance).

Shapes: images ``(N, H, W, 3)`` RGB in [0, 255] (uint8 or float; MXNet ``(N, 3, H, W)``
batches go through :func:`to_hwc`).
"""
import numpy as onp

from .._arrays import host

__all__ = ['to_hwc', 'colour_histograms', 'ColourBoxBaseline', 'NearestColourSegmenter',
           'HistogramNN', 'detection_arrays', 'bananas_baseline', 'cifar_baseline',
           'image_folder_baseline', 'voc_baseline', 'read_image_folder', 'read_voc_split']


def to_hwc(x):
    """``(N, 3, H, W)`` (MXNet layout, NDArray or NumPy) -> ``(N, H, W, 3)`` float32."""
    x = host(x, None)
    if x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3:
        x = x.transpose(0, 2, 3, 1)
    return x.astype(onp.float32)


def _bin_index(images, bins):
    """Joint RGB bin of every pixel: ``(N, H, W)`` int64 in ``[0, bins**3)``."""
    q = onp.clip((onp.asarray(images, onp.float32) * (bins / 256.0)).astype(onp.int64),
                 0, bins - 1)
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def colour_histograms(images, bins=8):
    """Normalised joint RGB histograms ``(N, bins**3)`` float64 of ``images (N, H, W, 3)``."""
    idx = _bin_index(images, bins).reshape(len(images), -1)
    n = idx.shape[1]
    rows = onp.repeat(onp.arange(len(images)), n)
    h = onp.bincount(rows * bins ** 3 + idx.ravel(), minlength=len(images) * bins ** 3)
    return h.reshape(len(images), bins ** 3).astype(onp.float64) / n


class HistogramNN:
    """1-nearest-neighbour on colour histograms (chi-squared distance).

    ``fit(images (N, H, W, 3), labels (N,))``; ``predict(images (M, H', W', 3)) -> (M,)``.
    Images of different sizes are fine (histograms are normalised); a list of arrays too.
    """

    def __init__(self, bins=8):
        self.bins = bins

    def _hist(self, images):
        if isinstance(images, (list, tuple)):
            return onp.concatenate([colour_histograms(im[None], self.bins) for im in images])
        return colour_histograms(images, self.bins)

    def fit(self, images, labels):
        self.hist_ = self._hist(images)
        self.labels_ = onp.asarray(labels)
        return self

    def predict(self, images, chunk=256):
        h = self._hist(images)
        out = []
        for s in range(0, len(h), chunk):  # chunks bound the (chunk, N, bins^3) memory
            a = h[s:s + chunk, None, :]
            b = self.hist_[None]
            d = ((a - b) ** 2 / (a + b + 1e-12)).sum(axis=2)
            out.append(self.labels_[d.argmin(axis=1)])
        return onp.concatenate(out)

    def score(self, images, labels):
        """Accuracy on ``images``, ``labels``."""
        return float((self.predict(images) == onp.asarray(labels)).mean())


class NearestColourSegmenter:
    """Per-pixel nearest class colour: each pixel gets the class whose mean RGB is nearest.

    ``fit(images, labels)`` with ``labels (N, H, W)`` class indices (``ignore`` skipped);
    ``predict(images) -> (N, H, W)`` int64. Lists of differently sized images are fine.
    """

    def __init__(self, ignore=255):
        self.ignore = ignore

    def fit(self, images, labels):
        sums, counts = {}, {}
        for img, lab in zip(images, labels):
            img = onp.asarray(img, onp.float64).reshape(-1, 3)
            lab = onp.asarray(lab).ravel()
            keep = lab != self.ignore
            cls, inv = onp.unique(lab[keep], return_inverse=True)
            s = onp.zeros((len(cls), 3))
            onp.add.at(s, inv, img[keep])
            c = onp.bincount(inv, minlength=len(cls))
            for k, v in enumerate(cls.tolist()):
                sums[v] = sums.get(v, 0) + s[k]
                counts[v] = counts.get(v, 0) + c[k]
        self.classes_ = onp.array(sorted(sums))
        self.means_ = onp.stack([sums[k] / counts[k] for k in self.classes_])
        return self

    def predict(self, images):
        out = []
        for img in images:
            x = onp.asarray(img, onp.float32)
            d = ((x[..., None, :] - self.means_[None, None].astype(onp.float32)) ** 2).sum(-1)
            out.append(self.classes_[d.argmin(axis=-1)])
        return out if isinstance(images, (list, tuple)) else onp.stack(out)


class ColourBoxBaseline:
    """Colour threshold + connected components, the rule a banana detector must beat.

    ``fit(images (N, H, W, 3), labels (N, m, 5))`` (rows ``(class, x1, y1, x2, y2)``, corners
    in [0, 1], class -1 = padding) learns ``P(object | colour)`` from a joint RGB histogram of
    the pixels inside the boxes against those outside, then picks the threshold that scores
    best on the training images. ``predict(images) -> (N, k, 6)`` rows
    ``(0, score, x1, y1, x2, y2)`` in [0, 1] (class -1 rows pad), one per connected
    component of the thresholded likelihood (8-connectivity), scored by its area, the
    largest ``k`` first.
    """

    def __init__(self, bins=16, max_dets=3, thresholds=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)):
        self.bins, self.max_dets, self.thresholds = bins, max_dets, thresholds

    def fit(self, images, labels):
        images = onp.asarray(images)
        N, H, W = images.shape[:3]
        idx = _bin_index(images, self.bins)
        inside = onp.zeros((N, H, W), bool)
        lab = onp.asarray(labels, onp.float64)
        yy, xx = (onp.arange(H) + 0.5) / H, (onp.arange(W) + 0.5) / W
        for j in range(lab.shape[1]):  # a few object slots, each vectorised over images
            b = lab[:, j]
            ok = (b[:, 0] >= 0)[:, None, None]
            inside |= ok & ((yy[None, :, None] >= b[:, 2, None, None]) &
                            (yy[None, :, None] < b[:, 4, None, None]) &
                            (xx[None, None, :] >= b[:, 1, None, None]) &
                            (xx[None, None, :] < b[:, 3, None, None]))
        nb = self.bins ** 3
        pos = onp.bincount(idx[inside], minlength=nb).astype(onp.float64)
        neg = onp.bincount(idx[~inside], minlength=nb).astype(onp.float64)
        # equal priors: a colour counts as 'object' when it is more typical of boxes; a
        # colour never seen in training counts as background
        pos, neg = pos / max(pos.sum(), 1), neg / max(neg.sum(), 1)
        self.likelihood_ = pos / onp.maximum(pos + neg, 1e-12)
        from ..detection_metrics import mean_average_precision
        best = -1.0
        for t in self.thresholds:
            self.threshold_ = t
            m = mean_average_precision(self.predict(images), labels)['map50']
            if m > best:
                best, chosen = m, t
        self.threshold_ = chosen
        return self

    def predict(self, images):
        from scipy import ndimage
        images = onp.asarray(images)
        N, H, W = images.shape[:3]
        fg = self.likelihood_[_bin_index(images, self.bins)] > self.threshold_
        out = -onp.ones((N, self.max_dets, 6))
        structure = onp.ones((3, 3), bool)
        for i in range(N):  # connected components are per image
            comp, n = ndimage.label(fg[i], structure=structure)
            if n == 0:
                continue
            area = onp.bincount(comp.ravel(), minlength=n + 1)[1:]
            slices = ndimage.find_objects(comp)
            order = onp.argsort(-area, kind='stable')[:self.max_dets]
            for r, c in enumerate(order):
                sy, sx = slices[c]
                out[i, r] = (0, area[c] / (H * W), sx.start / W, sy.start / H, sx.stop / W,
                             sy.stop / H)
        return out

    def score(self, images, labels):
        """``{'map50', 'map'}`` of :meth:`predict` on ``images`` against ``labels``."""
        from ..detection_metrics import mean_average_precision
        r = mean_average_precision(self.predict(images), labels)
        return {'map50': r['map50'], 'map': r['map']}


# ----------------------------------------------------------------------------------------
# The baselines on the twins' on-disk data (reports, benchmarks, quality gates)
# ----------------------------------------------------------------------------------------

def detection_arrays(data_iter):
    """Every example of a detection iterator (``ImageDetIter`` or ``(X, Y)`` batches):
    ``(images (N, H, W, 3) float32, labels (N, m, 5))``, a last batch's padding dropped."""
    from ..train import batches
    xs, ys = [], []
    for X, Y, *_ in batches(data_iter):  # masks, if any, are not needed
        xs.append(to_hwc(X))
        ys.append(Y.asnumpy())
    m = max(y.shape[1] for y in ys)
    ys = [onp.concatenate([y, -onp.ones((len(y), m - y.shape[1], y.shape[2]), y.dtype)], 1)
          for y in ys]
    return onp.concatenate(xs), onp.concatenate(ys)


def bananas_baseline(rec_dir, edge, val_iter=None):
    """Fit :class:`ColourBoxBaseline` on ``rec_dir/train.rec`` (uncropped, resized to
    ``edge``) and score it on ``val_iter`` (default: ``rec_dir/val.rec``): ``{'map50', 'map'}``."""
    import os
    from ..bananas import BananaDetIter
    train = BananaDetIter(64, (3, edge, edge), path_imgrec=os.path.join(rec_dir, 'train.rec'))
    if val_iter is None:
        val_iter = BananaDetIter(64, (3, edge, edge),
                                 path_imgrec=os.path.join(rec_dir, 'val.rec'))
    tx, ty = detection_arrays(train)
    vx, vy = detection_arrays(val_iter)
    return ColourBoxBaseline().fit(tx, ty).score(vx, vy)


def cifar_baseline(root, limit_train=None, limit_test=None):
    """Colour-histogram 1-NN accuracy on a CIFAR-10 folder in the binary format."""
    from ..augment import read_cifar10_bin
    tx, ty = read_cifar10_bin(root, True)
    vx, vy = read_cifar10_bin(root, False)
    return HistogramNN().fit(tx[:limit_train], ty[:limit_train]).score(vx[:limit_test],
                                                                       vy[:limit_test])


def read_voc_split(voc_dir, is_train):
    """``(images, labels)`` of a VOC folder's train or val split: RGB uint8 images and
    (H, W) uint8 class-index labels (255 = void), in the split file's order."""
    import os
    from PIL import Image
    from ..segmentation import read_voc_label, voc_split_names
    images, labels = [], []
    for n in voc_split_names(voc_dir, is_train):
        with Image.open(os.path.join(voc_dir, 'JPEGImages', n + '.jpg')) as im:
            images.append(onp.asarray(im.convert('RGB')))
        labels.append(onp.asarray(read_voc_label(
            os.path.join(voc_dir, 'SegmentationClass', n + '.png'))))
    return images, labels


def read_image_folder(folder):
    """``(images, labels, classes)`` of ``folder/<class>/*``: RGB uint8 arrays of any size,
    classes sorted by name, files sorted within a class."""
    import os
    from PIL import Image
    classes = sorted(os.listdir(folder))
    images, labels = [], []
    for k, c in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(folder, c))):
            with Image.open(os.path.join(folder, c, f)) as im:
                images.append(onp.asarray(im.convert('RGB')))
            labels.append(k)
    return images, onp.array(labels), classes


def image_folder_baseline(train_folder, test_folder):
    """Colour-histogram 1-NN accuracy from ``train_folder/<class>/*`` on ``test_folder``."""
    tx, ty, _ = read_image_folder(train_folder)
    vx, vy, _ = read_image_folder(test_folder)
    return HistogramNN().fit(tx, ty).score(vx, vy)


def voc_baseline(voc_dir, max_images=None):
    """:class:`NearestColourSegmenter` fitted on a VOC folder's train split, scored on its
    val split (whole images, void ignored): ``{'pixel_acc', 'miou'}``."""
    import os
    from PIL import Image
    from ..segmentation import (mean_iou, pixel_accuracy, read_voc_label,
                                segmentation_confusion, voc_split_names)

    def split(is_train, limit):
        xs, ys = [], []
        for n in voc_split_names(voc_dir, is_train)[:limit]:
            with Image.open(os.path.join(voc_dir, 'JPEGImages', n + '.jpg')) as im:
                xs.append(onp.asarray(im.convert('RGB')))
            ys.append(onp.asarray(read_voc_label(os.path.join(voc_dir, 'SegmentationClass',
                                                               n + '.png'))))
        return xs, ys
    tx, ty = split(True, None)
    vx, vy = split(False, max_images)
    pred = NearestColourSegmenter().fit(tx, ty).predict(vx)
    conf = sum(segmentation_confusion(p, y) for p, y in zip(pred, vy))
    return {'pixel_acc': float(pixel_accuracy(conf)), 'miou': float(mean_iou(conf))}
