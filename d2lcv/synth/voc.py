"""Synthetic Pascal VOC2012 segmentation twin, in the real ``VOCdevkit/VOC2012`` layout.

Writes ``JPEGImages/<id>.jpg`` (RGB JPEG), ``SegmentationClass/<id>.png`` (palette PNG with
VOC's 256-colour palette: the pixel values *are* the class indices, 255 = "void" border
drawn in (224, 224, 192)) and ``ImageSets/Segmentation/{train,val,trainval}.txt``.

Each image has a low-saturation noisy background (class 0) and one to three objects from
:data:`TWIN_CLASSES`; every class has its own shape *and* colour family, so a small FCN
trained from random weights can learn them. As in VOC, a band of ``border`` pixels around
each object's outline is labelled 255: the band straddles the drawn edge, so the uncertain
pixels are exactly the ignored ones. Image sizes are drawn from a list that mimics VOC's
(landscape 375x500, portrait 500x375, ...) and includes images smaller than 320x480, so
``VOCSegDataset``'s size filter has something to drop. ``scale`` shrinks every size (tests).
"""
import os

import numpy as onp

from ..hub import register_twin

__all__ = ['voc_palette', 'TWIN_CLASSES', 'make_voc2012', 'SIZES']

#: VOC class index -> (shape, base RGB colour) of the objects the twin draws.
TWIN_CLASSES = {
    1: ('disc', (220, 40, 40)),          # aeroplane
    7: ('square', (40, 200, 60)),        # car
    8: ('diamond', (50, 80, 230)),       # cat
    12: ('wide_ellipse', (235, 215, 40)),  # dog
    15: ('tall_rect', (210, 60, 220)),   # person
}

#: (height, width) of the twin's images at scale 1, cycled; VOC's own are at most 500x500.
SIZES = [(375, 500), (500, 375), (333, 500), (360, 480), (281, 500), (400, 500),
         (352, 480), (375, 500)]


def voc_palette():
    """VOC's 256-entry palette ``(256, 3)`` uint8 (index 0 black, 255 = (224, 224, 192)).

    The colour of index ``i`` spreads its bits over the three channels, from the high bit
    down: bit ``3k`` goes to red bit ``7-k``, ``3k+1`` to green, ``3k+2`` to blue.
    """
    idx = onp.arange(256)
    pal = onp.zeros((256, 3), dtype=onp.int64)
    for k in range(8):  # eight bit triplets of the index (a constant loop, not over data)
        for c in range(3):
            pal[:, c] |= ((idx >> (3 * k + c)) & 1) << (7 - k)
    return pal.astype(onp.uint8)


def _shape_field(kind, dy, dx, r):
    """A field that is < 1 inside the shape of 'radius' ``r`` centred at ``dy = dx = 0``."""
    if kind == 'disc':
        return onp.sqrt(dy ** 2 + dx ** 2) / r
    if kind == 'square':
        return onp.maximum(abs(dy), abs(dx)) / (0.85 * r)
    if kind == 'diamond':
        return (abs(dy) + abs(dx)) / (1.2 * r)
    if kind == 'wide_ellipse':
        return onp.sqrt((dy / (0.55 * r)) ** 2 + (dx / (1.3 * r)) ** 2)
    if kind == 'tall_rect':
        return onp.maximum(abs(dy) / (1.2 * r), abs(dx) / (0.5 * r))
    raise ValueError(kind)


def _draw(rng, h, w, border):
    """One image ``(h, w, 3)`` uint8 and its label ``(h, w)`` uint8."""
    yy = onp.arange(h, dtype=onp.float32)[:, None]
    xx = onp.arange(w, dtype=onp.float32)[None, :]
    base = rng.uniform(70, 150)
    tint = rng.uniform(-20, 20, 3).astype(onp.float32)
    grad = onp.float32(rng.uniform(-25, 25)) * (yy / h - 0.5)[..., None]
    noise = rng.standard_normal((h, w, 3), dtype=onp.float32)  # shared by all regions
    img = base + tint + grad + 10 * noise
    label = onp.zeros((h, w), dtype=onp.uint8)
    classes = list(TWIN_CLASSES)
    short = min(h, w)
    for _ in range(rng.integers(1, 4)):
        cls = classes[rng.integers(len(classes))]
        kind, colour = TWIN_CLASSES[cls]
        r = rng.uniform(0.14, 0.26) * short
        cy, cx = rng.uniform(0.15 * h, 0.85 * h), rng.uniform(0.15 * w, 0.85 * w)
        # the shape fits in a (2.6 r + border)-sided box: compute its field only there
        reach = 1.4 * r + border
        y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
        x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
        f = _shape_field(kind, yy[y0:y1] - cy, xx[:, x0:x1] - cx, r)
        e = border / (2 * r)  # half the band, in units of the field
        drawn, inner, outer = f < 1, f < 1 - e, f < 1 + e
        shade = onp.asarray(colour, onp.float32) * onp.float32(rng.uniform(0.8, 1.0)) + \
            12 * noise[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = onp.where(drawn[..., None], shade, img[y0:y1, x0:x1])
        label[y0:y1, x0:x1][outer] = 255
        label[y0:y1, x0:x1][inner] = cls
    return onp.clip(img, 0, 255).astype(onp.uint8), label


def make_voc2012(root, seed=0, num_train=64, num_val=48, scale=1.0, border=5, quality=95):
    """Write the twin under ``root/VOCdevkit/VOC2012``; return that folder.

    ``num_train``/``num_val`` images (ids ``2012_000000``...), sizes from :data:`SIZES`
    times ``scale``, a void band ``border`` pixels wide (times ``scale``, at least 1).
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
        img, label = _draw(rng, h, w, band)
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
