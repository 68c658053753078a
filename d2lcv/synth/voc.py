"""Synthetic Pascal VOC2012 segmentation twin, in the real ``VOCdevkit/VOC2012`` layout.

Writes ``JPEGImages/<id>.jpg`` (RGB JPEG), ``SegmentationClass/<id>.png`` (palette PNG with
VOC's 256-colour palette: the pixel values *are* the class indices, 255 = "void" border
drawn in (224, 224, 192)) and ``ImageSets/Segmentation/{train,val,trainval}.txt``.

Each image's background (class 0) is a random crop of one of scikit-image's photos; one to
three objects from :data:`TWIN_CLASSES` are cut out of *other* random photos in the class's
shape (at any rotation and scale, under their own lighting), so only shape tells the classes
apart: a per-pixel nearest-colour rule (:class:`d2lcv.synth.baselines.NearestColourSegmenter`)
scores near chance. Later objects may occlude earlier ones. As in VOC, a band of ``border`` pixels around
each object's outline is labelled 255: the band straddles the drawn edge, so the uncertain
pixels are exactly the ignored ones. Image sizes are drawn from a list that mimics VOC's
(landscape 375x500, portrait 500x375, ...) and includes images smaller than 320x480, so
``VOCSegDataset``'s size filter has something to drop. ``scale`` shrinks every size (tests).
"""
import os

import numpy as onp

from ..hub import register_twin
from ..segmentation import voc_palette
from . import photos
from .cifar import shape_field

__all__ = ['TWIN_CLASSES', 'make_voc2012', 'SIZES']

#: VOC class index -> the shape (:func:`d2lcv.synth.cifar.shape_field`) the twin draws.
TWIN_CLASSES = {
    1: 'cross',      # aeroplane
    7: 'square',     # car
    8: 'disc',       # cat
    12: 'triangle',  # dog
    15: 'star',      # person
}

#: (height, width) of the twin's images at scale 1, cycled; VOC's own are at most 500x500.
SIZES = [(375, 500), (500, 375), (333, 500), (360, 480), (281, 500), (400, 500),
         (352, 480), (375, 500)]


def _draw(rng, h, w, border, num_objects=(1, 3), radius=(0.16, 0.3), occlude=True):
    """One image ``(h, w, 3)`` uint8 and its label ``(h, w)`` uint8."""
    yy = onp.arange(h, dtype=onp.float32)[:, None]
    xx = onp.arange(w, dtype=onp.float32)[None, :]
    img = photos.lighting(rng, photos.crop(rng, h, w, 0.3, 1.0))
    label = onp.zeros((h, w), dtype=onp.uint8)
    classes = list(TWIN_CLASSES)
    short = min(h, w)
    placed = []  # (cy, cx, reach) of the objects drawn so far
    for _ in range(rng.integers(num_objects[0], num_objects[1] + 1)):
        cls = classes[rng.integers(len(classes))]
        for _attempt in range(20):
            r = rng.uniform(*radius) * short
            cy, cx = rng.uniform(0.15 * h, 0.85 * h), rng.uniform(0.15 * w, 0.85 * w)
            # without occlusion, the discs that hold the shapes stay apart
            if occlude or all((cy - py) ** 2 + (cx - px) ** 2 > (1.05 * r + pr) ** 2
                              for py, px, pr in placed):
                break
        else:
            continue
        placed.append((cy, cx, 1.05 * r))
        theta = rng.uniform(0, 2 * onp.pi)
        # the shape fits in a (2 r + border)-sided box: compute its field only there
        reach = 1.05 * r + border
        y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
        x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
        dy, dx = yy[y0:y1] - cy, xx[:, x0:x1] - cx
        u = (onp.cos(theta) * dx + onp.sin(theta) * dy) / r
        v = (-onp.sin(theta) * dx + onp.cos(theta) * dy) / r
        f = shape_field(TWIN_CLASSES[cls], u, v) * r  # ~ signed distance in pixels
        e = border / 2  # half the void band
        drawn, inner, outer = f < 0, f < -e, f < e
        patch = img[y0:y1, x0:x1]
        obj = photos.lighting(rng, photos.crop(rng, y1 - y0, x1 - x0, 0.1, 0.7))
        # the object stands out from what it covers (by at least 50 in some channel)
        m = drawn[..., None]
        count = max(float(drawn.sum()), 1.0)
        gap = (obj * m).sum((0, 1)) / count - (patch * m).sum((0, 1)) / count
        if onp.abs(gap).max() < 50:
            obj = obj + (1.0 if gap.sum() >= 0 else -1.0) * (50 - onp.abs(gap).max())
        img[y0:y1, x0:x1] = onp.where(m, obj, patch)
        label[y0:y1, x0:x1][outer] = 255
        label[y0:y1, x0:x1][inner] = cls
    return photos.finish(rng, img, rng.uniform(0.3, 1.0), rng.uniform(2, 8)), label


def make_voc2012(root, seed=0, num_train=64, num_val=48, scale=1.0, border=5, quality=95,
                 num_objects=(1, 3), radius=(0.16, 0.3), occlude=True):
    """Write the twin under ``root/VOCdevkit/VOC2012``; return that folder.

    ``num_train``/``num_val`` images (ids ``2012_000000``...), sizes from :data:`SIZES`
    times ``scale``, a void band ``border`` pixels wide (times ``scale``, at least 1).
    Each image holds ``num_objects`` (inclusive range) shapes of radius ``radius`` (a
    range, times the image's shorter side); ``occlude=False`` keeps them apart (an object
    that finds no free place in 20 tries is left out).
    """
    from PIL import Image
    rng = onp.random.default_rng(seed)
    voc = os.path.join(root, 'VOCdevkit', 'VOC2012')
    dirs = {k: os.path.join(voc, *k.split('/')) for k in
            ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation')}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    palette = voc_palette().reshape(-1).tolist()
    band = max(1.0, border * scale)
    ids = [f'2012_{i:06d}' for i in range(num_train + num_val)]
    for i, name in enumerate(ids):
        h, w = SIZES[i % len(SIZES)]
        h, w = max(8, int(round(h * scale))), max(8, int(round(w * scale)))
        img, label = _draw(rng, h, w, band, num_objects, radius, occlude)
        Image.fromarray(img).save(os.path.join(dirs['JPEGImages'], name + '.jpg'),
                                  quality=quality)
        png = Image.fromarray(label, mode='P')
        png.putpalette(palette)
        png.save(os.path.join(dirs['SegmentationClass'], name + '.png'))
    splits = {'train': ids[:num_train], 'val': ids[num_train:],
              'trainval': ids}
    for split, names in splits.items():
        with open(os.path.join(dirs['ImageSets/Segmentation'], split + '.txt'), 'w') as f:
            f.write(''.join(n + '\n' for n in names))
    return voc


register_twin('voc2012', make_voc2012, os.path.join('VOCdevkit', 'VOC2012'))
