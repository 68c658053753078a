"""Synthetic banana-detection twin (section 13.6), in both on-disk layouts.

The real data set pastes photographed bananas (random angle and size) at random positions on
256x256 background photos. The twin draws a banana-like crescent (random curvature, angle,
length, thickness, yellow shading with darker edges and brown tips) onto varied backgrounds
(two-colour gradients, stripes, checkers, noise and non-banana distractor shapes). Each
object's box is the tight extent of its drawn pixels.

Two generators, one per DATA_HUB entry, write the same images for the same seed:

* ``'bananas'`` (the chapter's RecordIO layout): ``bananas/{train,val}.rec`` + ``.idx`` +
  ``.lst``, JPEG records whose label is ``[4, 5, W, H, cls, x1, y1, x2, y2, ...]`` with
  corners in [0, 1] (``im2rec``'s detection header: header width 4, object width 5).
* ``'banana-detection'`` (the newer CSV layout):
  ``banana-detection/bananas_{train,val}/label.csv`` (``img_name,label,xmin,ymin,xmax,ymax``
  in pixels, one row per object) and ``images/<k>.png``.

Sizes: ``num_train=1000, num_val=100, edge=256`` by default; ``max_objects > 1`` draws 1 to
``max_objects`` non-overlapping bananas per image (to exercise label padding).
"""
import io
import os
import struct

import numpy as onp

from ..hub import register_twin
from . import photos

__all__ = ['render_bananas', 'banana_colour', 'make_bananas_recordio', 'make_banana_detection',
           'write_recordio', 'write_csv_layout']

_RECORD_MAGIC = 0xced7230a


# ----------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------

#: Banana skin colours from unripe to overripe: the crescent and its distractors both draw
#: from this ramp, so colour tells a banana from a distractor no better than chance.
_RAMP = onp.array([[150, 180, 45], [200, 205, 55], [235, 205, 60], [215, 165, 50],
                   [140, 95, 40]], onp.float32)


def banana_colour(rng):
    """One banana-skin RGB colour ``(3,)`` float32 (green-yellow to brown, random shade)."""
    t = rng.uniform(0, len(_RAMP) - 1)
    k = min(int(t), len(_RAMP) - 2)
    c = _RAMP[k] * (k + 1 - t) + _RAMP[k + 1] * (t - k)
    return (c * rng.uniform(0.75, 1.1) + rng.uniform(-12, 12, 3)).astype(onp.float32)


def _paint(img, alpha, colour, top, left):
    """Blend ``colour`` (``(h, w, 3)`` or ``(3,)``) into ``img`` with ``alpha (h, w)`` at
    ``(top, left)``, clipped to the image."""
    H, W = img.shape[:2]
    h, w = alpha.shape
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + h, H), min(left + w, W)
    if y1 <= y0 or x1 <= x0:
        return
    a = alpha[y0 - top:y1 - top, x0 - left:x1 - left, None]
    c = colour if onp.ndim(colour) == 1 else colour[y0 - top:y1 - top, x0 - left:x1 - left]
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + c * a


def _coords(P, theta):
    """Pixel-centre coordinates of a ``P x P`` patch rotated by ``theta``: ``(u, v)``."""
    yy, xx = onp.mgrid[0:P, 0:P].astype(onp.float32) - (P - 1) / 2
    c, s = onp.float32(onp.cos(theta)), onp.float32(onp.sin(theta))
    return c * xx + s * yy, -s * xx + c * yy


def _distractor(rng, img, edge):
    """Draw one look-alike in banana colours: an ellipse, a straight bar or a tinted photo
    patch, any rotation, about a banana's size."""
    size = rng.uniform(0.1, 0.4) * edge
    P = int(size) + 3
    u, v = _coords(P, rng.uniform(0, onp.pi))
    kind = rng.integers(3)
    if kind == 0:    # ellipse
        a, b = size / 2, size / 2 * rng.uniform(0.25, 1.0)
        d = (onp.sqrt((u / a) ** 2 + (v / b) ** 2) - 1) * b
    elif kind == 1:  # straight bar, a banana without the bend
        a, b = size / 2, size * rng.uniform(0.06, 0.14)
        d = onp.maximum(abs(u) - a, abs(v) - b)
    else:            # a rectangle of photo texture tinted in banana colours
        a, b = size / 2, size / 2 * rng.uniform(0.4, 1.0)
        d = onp.maximum(abs(u) - a, abs(v) - b)
    alpha = onp.clip(0.5 - d, 0, 1)
    colour = banana_colour(rng) * photos.texture(rng, P, P, 0.5 if kind == 2 else 0.25)
    top, left = (int(t) for t in rng.integers(-P // 3, edge - 2 * P // 3, 2))
    _paint(img, alpha, colour, top, left)


def _banana_patch(rng, length):
    """A banana in its own square patch: ``(alpha (P, P) float32 in [0, 1], colour (P, P, 3))``.

    A crescent: the band ``|r - R| < w(phi)`` around a circle of radius ``R``, for angles
    ``|phi| < phi_max``, thickness tapering towards the tips; then rotated by a random angle.
    ``alpha`` is an anti-aliased coverage (0.5 on the outline).
    """
    P = int(onp.ceil(length * 1.2)) + 4
    u, v = _coords(P, rng.uniform(0, 2 * onp.pi))      # u along the banana, v across it
    phi_max = rng.uniform(0.45, 1.0)                   # half the arc angle (radians)
    R = length / 2 / onp.sin(phi_max)                  # chord of the arc = length
    sag = R * (1 - onp.cos(phi_max))                   # centre the crescent's bounding box
    oy = R - sag / 2
    r = onp.sqrt(u ** 2 + (v + oy) ** 2)
    phi = onp.arctan2(u, v + oy)
    taper = onp.maximum(onp.cos(onp.clip(phi / phi_max, -1, 1) * onp.pi / 2), 0)
    half_width = length * rng.uniform(0.07, 0.12) * onp.sqrt(taper) + 0.8
    # signed distances to the outline, in pixels (negative inside)
    d = onp.maximum(abs(r - R) - half_width, (abs(phi) - phi_max) * R)
    alpha = onp.clip(0.5 - d, 0, 1).astype(onp.float32)
    band = onp.clip((r - R) / half_width, -1, 1)
    shade = 1 - 0.3 * band ** 2 - 0.15 * (band > 0)
    colour = banana_colour(rng) * (shade[..., None] * photos.texture(rng, P, P, 0.25))
    tip = onp.clip((abs(phi) / phi_max - 0.85) / 0.1, 0, 1)[..., None]  # dark stalk/tip
    colour = colour * (1 - tip) + onp.float32([70, 50, 25]) * tip
    return alpha, colour.astype(onp.float32)


def render_bananas(num, edge=256, seed=0, max_objects=1, min_size=0.18, max_size=0.5,
                   progress=True, return_masks=False, distractors=(1, 4)):
    """Draw ``num`` banana images; return ``(images, boxes)`` (and ``masks``).

    ``images``: ``(num, edge, edge, 3)`` uint8. ``boxes``: a list of ``(k_i, 4)`` int arrays
    ``(x1, y1, x2, y2)`` in pixels (``x2``/``y2`` exclusive), one row per banana: the tight
    extent of its pixels covered at least half. With ``return_masks``, also ``masks``: a list
    of ``(k_i, edge, edge)`` bool arrays, each banana's own pixels (bananas never overlap),
    in the order of its boxes.

    The background is a crop of one of scikit-image's photos (grey ones tinted); 1-4
    (``distractors``: the inclusive range) distractors in banana colours (ellipses, straight bars, tinted photo patches) go under
    the bananas; each banana is a textured crescent at any rotation, ``min_size`` to
    ``max_size`` of the edge long, coloured green-yellow to brown. The whole image then gets
    random lighting, blur and sensor noise. Deterministic from ``seed``; ``progress`` shows
    a bar in a terminal (tqdm).
    """
    from tqdm import tqdm
    rng = onp.random.default_rng(seed)
    images = onp.empty((num, edge, edge, 3), onp.uint8)
    boxes, masks = [], []
    bar = tqdm(total=num, desc=f'drawing {num} banana images', leave=False,
               disable=None if progress and num >= 200 else True)
    for i in range(num):
        bar.update(1)
        img = photos.crop(rng, edge, edge, 0.2, 1.0)
        if rng.random() < 0.3:  # some backgrounds in banana colours themselves
            img = img * (banana_colour(rng) / 160)
        img = photos.lighting(rng, img)
        for _ in range(rng.integers(distractors[0], distractors[1] + 1)):
            _distractor(rng, img, edge)
        k = 1 if max_objects <= 1 else int(rng.integers(1, max_objects + 1))
        placed, own = [], []
        for _ in range(k):
            for _attempt in range(30):
                alpha, colour = _banana_patch(rng, rng.uniform(min_size, max_size) * edge)
                ys, xs = onp.nonzero(alpha >= 0.5)
                y0, x0 = ys.min(), xs.min()
                h, w = ys.max() - y0 + 1, xs.max() - x0 + 1
                if h > edge or w > edge:
                    continue
                top, left = rng.integers(0, edge - h + 1), rng.integers(0, edge - w + 1)
                box = onp.array([left, top, left + w, top + h])
                # one pixel apart at least, so that blurred neighbours keep their own boxes
                if any(_overlap(box + [-1, -1, 1, 1], b) for b in placed):
                    continue
                _paint(img, alpha, colour, int(top - y0), int(left - x0))
                placed.append(box)
                if return_masks:
                    m = onp.zeros((edge, edge), bool)
                    m[top:top + h, left:left + w] = alpha[y0:y0 + h, x0:x0 + w] >= 0.5
                    own.append(m)
                break
        boxes.append(onp.array(placed, dtype=onp.int64).reshape(-1, 4))
        if return_masks:
            masks.append(onp.array(own, bool).reshape(-1, edge, edge))
        img = photos.lighting(rng, img, gain=(0.8, 1.15), offset=(-10, 10), colour=0.05)
        images[i] = photos.finish(rng, img, rng.uniform(0.2, 0.6) + rng.uniform(0, 0.6) * edge /
                                  256, rng.uniform(2, 10))
    bar.close()
    return (images, boxes, masks) if return_masks else (images, boxes)


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# ----------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------

def _encode(img, fmt):
    from PIL import Image
    buf = io.BytesIO()
    if fmt == 'JPEG':
        Image.fromarray(img).save(buf, format='JPEG', quality=95)
    else:
        Image.fromarray(img).save(buf, format='PNG', compress_level=1)
    return buf.getvalue()


def _det_label(box_px, edge, cls=0):
    """im2rec's detection label: ``[4, 5, W, H, cls, x1, y1, x2, y2, ...]``, corners in [0, 1]."""
    objs = onp.concatenate([onp.full((len(box_px), 1), cls, onp.float32),
                            onp.asarray(box_px, onp.float32) / edge], axis=1)
    return onp.concatenate([onp.array([4, 5, edge, edge], onp.float32), objs.ravel()])


def _pack_record(label, payload, key):
    """One RecordIO record: magic, length, IRHeader (flag, label, id, id2), labels, image."""
    label = onp.asarray(label, onp.float32)
    body = struct.pack('IfQQ', label.size, 0.0, key, 0) + label.tobytes() + payload
    pad = (-len(body)) % 4
    return struct.pack('II', _RECORD_MAGIC, len(body)) + body + b'\0' * pad


def write_recordio(prefix, images, boxes):
    """Write ``prefix.rec``, ``prefix.idx`` and ``prefix.lst`` (im2rec's three files).

    Each file is written under a temporary name and renamed when complete.
    """
    edge = images.shape[1]
    rec, idx, lst = [], [], []
    offset = 0
    for key, (img, box) in enumerate(zip(images, boxes)):
        label = _det_label(box, edge)
        record = _pack_record(label, _encode(img, 'JPEG'), key)
        rec.append(record)
        idx.append(f'{key}\t{offset}\n')
        lst.append('\t'.join([str(key)] + [f'{v:.6g}' for v in label] + [f'{key}.jpg']) + '\n')
        offset += len(record)
    for suffix, content in (('.rec', b''.join(rec)), ('.idx', ''.join(idx).encode()),
                            ('.lst', ''.join(lst).encode())):
        tmp = prefix + suffix + '.tmp'
        with open(tmp, 'wb') as f:
            f.write(content)
        os.replace(tmp, prefix + suffix)


def write_csv_layout(folder, images, boxes):
    """Write ``folder/label.csv`` and ``folder/images/<k>.png`` (the newer layout)."""
    os.makedirs(os.path.join(folder, 'images'), exist_ok=True)
    rows = ['img_name,label,xmin,ymin,xmax,ymax']
    for key, (img, box) in enumerate(zip(images, boxes)):
        name = f'{key}.png'
        path = os.path.join(folder, 'images', name)
        with open(path + '.tmp', 'wb') as f:
            f.write(_encode(img, 'PNG'))
        os.replace(path + '.tmp', path)
        rows += [f'{name},0,{x1},{y1},{x2},{y2}' for x1, y1, x2, y2 in box.tolist()]
    tmp = os.path.join(folder, 'label.csv.tmp')
    with open(tmp, 'w') as f:
        f.write('\n'.join(rows) + '\n')
    os.replace(tmp, os.path.join(folder, 'label.csv'))


def _splits(seed, num_train, num_val, edge, max_objects, distractors=(1, 4)):
    # distinct, seed-derived streams for the two splits
    yield 'train', render_bananas(num_train, edge, seed * 2 + 1, max_objects,
                                  distractors=distractors)
    yield 'val', render_bananas(num_val, edge, seed * 2 + 2, max_objects,
                                distractors=distractors)


def make_bananas_recordio(root, seed=0, num_train=1000, num_val=100, edge=256, max_objects=1,
                          distractors=(1, 4)):
    """Write ``root/bananas/{train,val}.{rec,idx,lst}`` (the chapter's ``bananas.zip``)."""
    out = os.path.join(root, 'bananas')
    os.makedirs(out, exist_ok=True)
    for split, (images, boxes) in _splits(seed, num_train, num_val, edge, max_objects,
                                          distractors):
        write_recordio(os.path.join(out, split), images, boxes)
    return out


def make_banana_detection(root, seed=0, num_train=1000, num_val=100, edge=256,
                          max_objects=1, distractors=(1, 4)):
    """Write ``root/banana-detection/bananas_{train,val}/`` (``banana-detection.zip``)."""
    out = os.path.join(root, 'banana-detection')
    for split, (images, boxes) in _splits(seed, num_train, num_val, edge, max_objects,
                                          distractors):
        write_csv_layout(os.path.join(out, f'bananas_{split}'), images, boxes)
    return out


register_twin('bananas', make_bananas_recordio, 'bananas')
register_twin('banana-detection', make_banana_detection, 'banana-detection')
