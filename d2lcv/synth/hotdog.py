"""Synthetic hot dog twin (``hotdog/{train,test}/{hotdog,not-hotdog}/*.png``) and the synthetic
*source task* that 13.2's offline demonstration pre-trains on.

Both use the same ten layouts of food (:data:`FOODS`): a hot dog (a sausage longer than its
bun, sometimes with a mustard zigzag) and nine others, among them look-alikes that share its
elongated outline (a bread roll, a carrot, a banana). Every image has its own position,
size and rotation.

- The twin matches the real archive's layout: images of varied sizes and aspect ratios
  (like the real photos), hot dogs in ``hotdog/``, the other foods in ``not-hotdog/``. Its
  appearance is photographic: the background and every layer of a food are crops of
  scikit-image's photos under their own lighting, so colour and brightness carry no label
  (a colour-histogram nearest neighbour, :class:`d2lcv.synth.baselines.HistogramNN`, stays
  near chance); only the layers' shapes and arrangement do.
- The source task (:func:`source_task`) is a different renderer: flat food colours on plain
  backgrounds, 10-way classification on 32x32 images held in memory (class 0 is the hot
  dog, as ImageNet has a "hotdog" class, row 713). It is not the twin's appearance, and
  fine-tuning from ImageNet is the comparison that measures transfer.
"""
import os

import numpy as onp

from ..hub import register_twin
from . import photos

__all__ = ['FOODS', 'draw_foods', 'source_task', 'make_hotdog']

#: The kinds of food, in source-task class order. ``FOODS[0]`` is the hot dog.
FOODS = ['hotdog', 'donut', 'pizza', 'burger', 'sushi', 'salad', 'bread', 'carrot', 'banana',
         'egg']


def _jitter(rng, n, rgb, amount=25):
    """``(n, 1, 1, 3)`` colours around ``rgb``."""
    return onp.clip(onp.asarray(rgb, onp.float32) + rng.normal(0, amount, (n, 1, 1, 3)), 0, 255)


def _layers(kind, u, v, rng):
    """``[(mask (n, H, W), colour (n, 1, 1, 3)), ...]`` painted in order, in object coords.

    ``u`` runs along the object's long axis, ``v`` across it; the object spans about
    ``[-0.8, 0.8]`` along ``u``.
    """
    n = u.shape[0]
    r = onp.sqrt(u ** 2 + v ** 2)
    U = lambda lo, hi: rng.uniform(lo, hi, (n, 1, 1))  # noqa: E731
    if kind == 'hotdog':
        bun = (u / 0.72) ** 2 + (v / U(0.28, 0.36)) ** 2 < 1
        sausage = (u / 0.9) ** 2 + (v / U(0.12, 0.16)) ** 2 < 1
        mustard = (abs(v - 0.06 * onp.sin(u * U(14, 22))) < 0.025) & sausage & \
            (abs(u) < 0.7) & (rng.random((n, 1, 1)) < 0.6)
        return [(bun, _jitter(rng, n, (215, 160, 95))),
                (sausage, _jitter(rng, n, (170, 65, 45))),
                (mustard, _jitter(rng, n, (240, 210, 40), 10))]
    if kind == 'donut':
        R = U(0.55, 0.7)
        ring = (r < R) & (r > R * 0.4)
        sprinkles = ring & (onp.sin(u * 37) * onp.sin(v * 41) > 0.93)
        return [(ring, _jitter(rng, n, (200, 120, 150), 40)),
                (sprinkles, _jitter(rng, n, (250, 250, 250), 5))]
    if kind == 'pizza':
        tri = (v > -0.55) & (v < 0.6) & (abs(u) < (0.6 - v) * 0.55)
        crust = tri & (v > 0.45)
        pep = tri & ((onp.mod(u * 4 + 10, 1) - 0.5) ** 2 + (onp.mod(v * 4 + 10, 1) - 0.5) ** 2
                     < 0.05)
        return [(tri, _jitter(rng, n, (245, 190, 70))), (crust, _jitter(rng, n, (190, 120, 60))),
                (pep, _jitter(rng, n, (180, 30, 30), 15))]
    if kind == 'burger':
        w = 0.65
        top = (r < w) & (v < -0.05)
        lettuce = (abs(u) < w) & (v >= -0.05) & (v < 0.07)
        patty = (abs(u) < w * 0.95) & (v >= 0.07) & (v < 0.25)
        bottom = (abs(u) < w * 0.9) & (v >= 0.25) & (v < 0.4)
        return [(top, _jitter(rng, n, (215, 160, 95))), (lettuce, _jitter(rng, n, (70, 180, 60))),
                (patty, _jitter(rng, n, (100, 55, 35))), (bottom, _jitter(rng, n, (215, 160, 95)))]
    if kind == 'sushi':
        R = U(0.4, 0.55)
        return [(r < R, _jitter(rng, n, (30, 50, 30), 10)),
                (r < R * 0.8, _jitter(rng, n, (245, 245, 240), 8)),
                (r < R * 0.35, _jitter(rng, n, (240, 110, 60), 20))]
    if kind == 'salad':
        bowl = r < 0.7
        leaves = bowl & (onp.sin(u * 9 + U(0, 6)) * onp.sin(v * 11 + U(0, 6)) > 0.2)
        tomato = bowl & (onp.sin(u * 5 + 1) * onp.sin(v * 6 + 2) > 0.85)
        return [(bowl, _jitter(rng, n, (235, 235, 235), 10)),
                (leaves, _jitter(rng, n, (80, 170, 60))), (tomato, _jitter(rng, n, (210, 40, 40)))]
    if kind == 'bread':
        loaf = (u / 0.75) ** 2 + (v / U(0.3, 0.4)) ** 2 < 1
        scores = loaf & (abs(onp.mod(u * 5 + v * 2 + 10, 1) - 0.5) < 0.07) & (abs(v) < 0.2)
        return [(loaf, _jitter(rng, n, (215, 160, 95))), (scores, _jitter(rng, n, (240, 220, 180)))]
    if kind == 'carrot':
        body = (u > -0.75) & (u < 0.6) & (abs(v) < 0.18 * (0.6 - u) / 1.35 + 0.02)
        top = (u >= 0.6) & (u < 0.85) & (abs(v) < 0.1 + 0.2 * (u - 0.6))
        return [(body, _jitter(rng, n, (240, 120, 30))), (top, _jitter(rng, n, (60, 160, 50)))]
    if kind == 'banana':
        arc = abs(onp.sqrt(u ** 2 + (v - 0.9) ** 2) - 0.9) < 0.13 * (1 - (u / 0.8) ** 2).clip(0)
        return [(arc & (abs(u) < 0.8), _jitter(rng, n, (245, 215, 60))),
                (arc & (abs(u) > 0.7) & (abs(u) < 0.8), _jitter(rng, n, (90, 70, 30), 10))]
    if kind == 'egg':
        white = (u / 0.6) ** 2 + (v / 0.45) ** 2 < 1
        yolk = (u - 0.05) ** 2 + v ** 2 < U(0.04, 0.06)
        return [(white, _jitter(rng, n, (250, 250, 245), 5)),
                (yolk, _jitter(rng, n, (250, 180, 20)))]
    raise ValueError(f'unknown food {kind!r}; known: {FOODS}')


def draw_foods(kind, n, height, width, rng, background='plate'):
    """Draw ``n`` images of food ``kind``: ``(n, height, width, 3)`` uint8.

    ``background``: ``'photo'`` (the hot dog twin: background and every layer of the food
    are crops of scikit-image photos under their own lighting, so only the layers' shapes
    and arrangement tell the foods apart), ``'plate'`` (a table with a plate, flat food
    colours) or ``'plain'`` (a flat noisy colour, flat food colours: the source task).
    """
    if background == 'photo':
        return _draw_photo_foods(kind, n, height, width, rng)
    s, x, y, cx, cy, scale, u, v = _food_frame(n, height, width, rng, onp.pi)
    if background == 'plate':
        table = _jitter(rng, n, (110, 90, 70), 45)
        wood = 12 * onp.sin(y * rng.uniform(6, 20, (n, 1, 1)))[..., None]
        img = table + wood
        plate = (x - cx) ** 2 + (y - cy) ** 2 < (1.05 * scale) ** 2
        img = onp.where((plate & (rng.random((n, 1, 1)) < 0.7))[..., None],
                        _jitter(rng, n, (230, 230, 225), 15), img)
    elif background == 'plain':
        img = onp.broadcast_to(rng.uniform(30, 200, (n, 1, 1, 3)), (n, height, width, 3))
    else:
        raise ValueError(f'background must be "photo", "plate" or "plain", not {background!r}')
    for mask, colour in _layers(kind, u, v, rng):
        img = onp.where(mask[..., None], colour, img)
    img = img + rng.normal(0, 10, img.shape)
    return onp.clip(img, 0, 255).astype(onp.uint8)


def _food_frame(n, height, width, rng, max_turn):
    """Each of ``n`` foods' frame: the half side ``s`` in pixels, pixel coordinates ``x, y``
    ``(1, H, W)`` scaled to about [-1, 1], the food's centre ``cx, cy`` and size ``scale``
    ``(n, 1, 1)`` (random), and its own axes ``u, v`` ``(n, H, W)``, turned by a random angle
    in ``[0, max_turn)``. The random draws come in this order (the twins depend on it)."""
    s = min(height, width) / 2
    yy, xx = onp.mgrid[0:height, 0:width].astype(onp.float32)
    y = ((yy - height / 2 + 0.5) / s)[None]
    x = ((xx - width / 2 + 0.5) / s)[None]
    cy, cx = rng.uniform(-0.2, 0.2, (2, n, 1, 1))
    scale = rng.uniform(0.7, 1.1, (n, 1, 1))
    theta = rng.uniform(0, max_turn, (n, 1, 1))
    dx, dy = x - cx, y - cy
    u = (dx * onp.cos(theta) + dy * onp.sin(theta)) / scale
    v = (-dx * onp.sin(theta) + dy * onp.cos(theta)) / scale
    return s, x, y, cx, cy, scale, u, v


def _draw_photo_foods(kind, n, height, width, rng):
    """:func:`draw_foods` with photographic appearance (see there)."""
    s, _, _, _, _, _, u, v = _food_frame(n, height, width, rng, 2 * onp.pi)
    layers = _layers(kind, u, v, rng)  # the flat colours are drawn and ignored
    out = onp.empty((n, height, width, 3), onp.uint8)
    for i in range(n):  # every image has its own photos
        img = photos.lighting(rng, photos.crop(rng, height, width, 0.2, 1.0))
        for mask, _ in layers:
            m = onp.broadcast_to(mask, (n, height, width))[i]
            if not m.any():
                continue
            layer = photos.lighting(rng, photos.crop(rng, height, width, 0.1, 0.6))
            # every layer stands out from what it covers (by 45 in some channel at least)
            gap = layer[m].mean(0) - img[m].mean(0)
            if onp.abs(gap).max() < 45:
                layer = layer + (1.0 if gap.sum() >= 0 else -1.0) * (45 - onp.abs(gap).max())
            img = onp.where(m[..., None], layer, img)
        out[i] = photos.finish(rng, img, rng.uniform(0, 0.8) * s / 32, rng.uniform(2, 8))
    return out


def source_task(num_per_class=400, size=32, seed=100):
    """The pre-training data set: ``(images (N, size, size, 3) uint8, labels (N,) int32)``.

    ``N = 10 * num_per_class``, classes :data:`FOODS` (0 is the hot dog), shuffled.
    """
    rng = onp.random.default_rng(seed)
    images = onp.concatenate([draw_foods(k, num_per_class, size, size, rng, 'plain')
                              for k in FOODS])
    labels = onp.repeat(onp.arange(len(FOODS), dtype=onp.int32), num_per_class)
    order = rng.permutation(len(labels))
    return images[order], labels[order]


def _save_image(path, img, fmt='png'):
    from PIL import Image
    tmp = path + '.tmp'
    if fmt == 'png':
        Image.fromarray(img).save(tmp, format='PNG')
    else:
        Image.fromarray(img).save(tmp, format='JPEG', quality=90)
    os.replace(tmp, path)


def make_hotdog(root, seed=0, num_train=100, num_test=100, min_size=40, max_size=80,
                fmt='png'):
    """Write ``root/hotdog/{train,test}/{hotdog,not-hotdog}/NNNN.png``.

    ``num_train`` / ``num_test`` images *per class* (the real set: 1,000 and 400). Image
    sides are drawn from ``[min_size, max_size]`` independently, so sizes and aspect ratios
    vary as in the real photos. Negatives cycle through the nine other foods. The default
    sides (40-80 px) keep the tiny runs fast; the real photos are a few hundred pixels a
    side (``min_size=300, max_size=500`` for timing an input pipeline). ``fmt``: ``'png'``
    or ``'jpg'`` (JPEG quality 90, ``NNNN.jpg``).
    """
    if fmt not in ('png', 'jpg'):
        raise ValueError(f"fmt must be 'png' or 'jpg', not {fmt!r}")
    rng = onp.random.default_rng(seed)
    others = FOODS[1:]
    for split, count in (('train', num_train), ('test', num_test)):
        for cls in ('hotdog', 'not-hotdog'):
            folder = os.path.join(root, 'hotdog', split, cls)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                kind = 'hotdog' if cls == 'hotdog' else others[(i + rng.integers(9)) % 9]
                h, w = rng.integers(min_size, max_size + 1, 2)
                img = draw_foods(kind, 1, int(h), int(w), rng, 'photo')[0]
                _save_image(os.path.join(folder, f'{i:04d}.{fmt}'), img, fmt)
    return os.path.join(root, 'hotdog')


register_twin('hotdog', make_hotdog, 'hotdog')
