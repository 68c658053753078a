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

__all__ = ['render_bananas', 'make_bananas_recordio', 'make_banana_detection',
           'write_recordio', 'write_csv_layout']

_RECORD_MAGIC = 0xced7230a


# ----------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------

def _background(rng, edge, grid, noise_bank):
    """One ``(edge, edge, 3)`` float32 background in [0, 255]."""
    yy, xx = grid
    c0, c1 = rng.uniform(0, 200, 3).astype(onp.float32), rng.uniform(0, 200, 3).astype(
        onp.float32)
    kind = rng.integers(4)
    angle = rng.uniform(0, 2 * onp.pi)
    t = onp.float32(onp.cos(angle)) * xx + onp.float32(onp.sin(angle)) * yy
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    if kind == 0:      # gradient
        w = t
    elif kind == 1:    # stripes
        w = (onp.sin(t * rng.uniform(6, 30)) > 0).astype(onp.float32) * 0.6 + t * 0.4
    elif kind == 2:    # checkers
        k = rng.uniform(4, 12)
        w = ((onp.floor(xx * k) + onp.floor(yy * k)) % 2) * 0.5 + t * 0.5
    else:              # smooth blobs
        w = 0.5 + 0.25 * onp.sin(xx * rng.uniform(3, 9) + rng.uniform(0, 6)) \
            * onp.cos(yy * rng.uniform(3, 9) + rng.uniform(0, 6)) + 0.25 * t
    img = (c0 * (1 - w[..., None]) + c1 * w[..., None]).astype(onp.float32)
    # distractors: discs and rectangles in blue/green/red/grey families (never banana-yellow)
    for _ in range(rng.integers(0, 4)):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.12)
        hue = rng.integers(4)
        colour = [[40, 60, 200], [40, 160, 60], [190, 40, 40], [120, 120, 120]][hue]
        colour = onp.array(colour) * rng.uniform(0.6, 1.2)
        if rng.integers(2):
            m = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
        else:
            m = (abs(xx - cx) < r) & (abs(yy - cy) < r * rng.uniform(0.3, 1.5))
        img[m] = colour
    # sensor noise: a shifted tile of a small bank (drawing fresh normals per image is slow)
    noise = noise_bank[rng.integers(len(noise_bank))]
    noise = onp.roll(noise, (int(rng.integers(edge)), int(rng.integers(edge))), axis=(0, 1))
    img += noise * onp.float32(rng.uniform(2, 12))
    return img


def _banana_patch(rng, length):
    """A banana in its own square patch: ``(mask (P, P) bool, colour (P, P, 3))``.

    A crescent: the band ``|r - R| < w(phi)`` around a circle of radius ``R``, for angles
    ``|phi| < phi_max``, thickness tapering towards the tips; then rotated by a random angle.
    """
    P = int(onp.ceil(length * 1.2)) + 2
    yy, xx = onp.mgrid[0:P, 0:P].astype(onp.float32) - (P - 1) / 2
    theta = rng.uniform(0, 2 * onp.pi)
    u = onp.cos(theta) * xx + onp.sin(theta) * yy      # along the banana
    v = -onp.sin(theta) * xx + onp.cos(theta) * yy     # across it
    phi_max = rng.uniform(0.5, 1.0)                    # half the arc angle (radians)
    R = length / 2 / onp.sin(phi_max)                  # chord of the arc = length
    sag = R * (1 - onp.cos(phi_max))                   # centre the crescent's bounding box
    oy = R - sag / 2
    r = onp.sqrt(u ** 2 + (v + oy) ** 2)
    phi = onp.arctan2(u, v + oy)
    taper = onp.maximum(onp.cos(onp.clip(phi / phi_max, -1, 1) * onp.pi / 2), 0)
    half_width = length * rng.uniform(0.07, 0.12) * onp.sqrt(taper) + 0.8
    band = (r - R) / half_width
    mask = (abs(band) < 1) & (abs(phi) < phi_max)
    base = onp.array([235, 200, 40]) * rng.uniform(0.75, 1.05) + rng.uniform(-15, 15, 3)
    shade = 1 - 0.35 * band ** 2 - 0.15 * (band > 0)
    colour = base * shade[..., None]
    tip = abs(phi) > phi_max * 0.9
    colour[tip] = onp.array([90, 60, 20]) * rng.uniform(0.7, 1.2)
    return mask, colour


def render_bananas(num, edge=256, seed=0, max_objects=1, min_size=0.18, max_size=0.45,
                   progress=True):
    """Draw ``num`` banana images; return ``(images, boxes)``.

    ``images``: ``(num, edge, edge, 3)`` uint8. ``boxes``: a list of ``(k_i, 4)`` int arrays
    ``(x1, y1, x2, y2)`` in pixels (``x2``/``y2`` exclusive), one row per banana.
    Deterministic from ``seed``. ``progress`` shows a bar in a terminal (tqdm).
    """
    from tqdm import tqdm
    rng = onp.random.default_rng(seed)
    images = onp.empty((num, edge, edge, 3), onp.uint8)
    boxes = []
    grid = onp.mgrid[0:edge, 0:edge].astype(onp.float32) / edge
    noise_bank = rng.standard_normal((4, edge, edge, 3), dtype=onp.float32)
    bar = tqdm(total=num, desc=f'drawing {num} banana images', leave=False,
               disable=None if progress and num >= 200 else True)
    for i in range(num):
        bar.update(1)
        img = _background(rng, edge, grid, noise_bank)
        k = 1 if max_objects <= 1 else int(rng.integers(1, max_objects + 1))
        placed = []
        for _ in range(k):
            for _attempt in range(30):
                mask, colour = _banana_patch(rng, rng.uniform(min_size, max_size) * edge)
                ys, xs = onp.nonzero(mask)
                y0, x0 = ys.min(), xs.min()
                h, w = ys.max() - y0 + 1, xs.max() - x0 + 1
                if h > edge or w > edge:
                    continue
                top, left = rng.integers(0, edge - h + 1), rng.integers(0, edge - w + 1)
                box = onp.array([left, top, left + w, top + h])
                if any(_overlap(box, b) for b in placed):
                    continue
                sub = (slice(top, top + h), slice(left, left + w))
                m = mask[y0:y0 + h, x0:x0 + w]
                img[sub][m] = colour[y0:y0 + h, x0:x0 + w][m]
                placed.append(box)
                break
        boxes.append(onp.array(placed, dtype=onp.int64).reshape(-1, 4))
        images[i] = onp.clip(img, 0, 255).astype(onp.uint8)
    bar.close()
    return images, boxes


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


def _splits(seed, num_train, num_val, edge, max_objects):
    # distinct, seed-derived streams for the two splits
    yield 'train', render_bananas(num_train, edge, seed * 2 + 1, max_objects)
    yield 'val', render_bananas(num_val, edge, seed * 2 + 2, max_objects)


def make_bananas_recordio(root, seed=0, num_train=1000, num_val=100, edge=256, max_objects=1):
    """Write ``root/bananas/{train,val}.{rec,idx,lst}`` (the chapter's ``bananas.zip``)."""
    out = os.path.join(root, 'bananas')
    os.makedirs(out, exist_ok=True)
    for split, (images, boxes) in _splits(seed, num_train, num_val, edge, max_objects):
        write_recordio(os.path.join(out, split), images, boxes)
    return out


def make_banana_detection(root, seed=0, num_train=1000, num_val=100, edge=256,
                          max_objects=1):
    """Write ``root/banana-detection/bananas_{train,val}/`` (``banana-detection.zip``)."""
    out = os.path.join(root, 'banana-detection')
    for split, (images, boxes) in _splits(seed, num_train, num_val, edge, max_objects):
        write_csv_layout(os.path.join(out, f'bananas_{split}'), images, boxes)
    return out


register_twin('bananas', make_bananas_recordio, 'bananas')
register_twin('banana-detection', make_banana_detection, 'banana-detection')
