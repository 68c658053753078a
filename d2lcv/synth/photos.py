"""Real photographs for the twins: backgrounds, textures and distractor patches.

The twins take every object's and background's appearance from the photographs that ship
inside scikit-image (``skimage/data/*.png|jpg``, public-domain or CC0 images, no download:
see ``skimage/data/README.txt``), so that colour and brightness alone never carry a label.
Grey photos are tinted with a random colour when used, so the bank covers every hue.

Everything is deterministic from the ``numpy.random.Generator`` passed in. Photos are loaded
once per process and kept as ``float32`` arrays (about 12 MB).
"""
import functools
import os

import numpy as onp

__all__ = ['PHOTOS', 'photo_bank', 'crop', 'crops', 'texture', 'blur', 'lighting', 'finish',
           'noise']

#: The scikit-image sample files used (all ship with the wheel; none is fetched).
PHOTOS = ['astronaut.png', 'brick.png', 'camera.png', 'cell.png', 'chelsea.png',
          'clock_motion.png', 'coffee.png', 'coins.png', 'grass.png', 'gravel.png',
          'hubble_deep_field.jpg', 'ihc.png', 'microaneurysms.png', 'moon.png',
          'motorcycle_left.png', 'page.png', 'retina.jpg', 'rocket.jpg', 'text.png']

#: Longest side a photo is kept at (crops are resized anyway; smaller is faster).
_MAX_SIDE = 384


@functools.lru_cache(maxsize=1)
def photo_bank():
    """The photos as a tuple of ``(H, W, 3)`` float32 arrays in [0, 255] (grey ones: ``(H, W, 1)``).

    Raises ``FileNotFoundError`` naming the folder when scikit-image's sample data is missing.
    """
    from PIL import Image
    import importlib.util
    # find the files without importing scikit-image (its import costs a second)
    spec = importlib.util.find_spec('skimage')
    if spec is None:  # a runtime dependency: say which one
        raise ImportError('the synthetic twins need scikit-image (pip install scikit-image)')
    folder = os.path.join(os.path.dirname(spec.origin), 'data')
    out = []
    for name in PHOTOS:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise FileNotFoundError(f'{path}: scikit-image sample photo missing; reinstall '
                                    'scikit-image')
        with Image.open(path) as im:
            im.draft('RGB', (_MAX_SIDE, _MAX_SIDE))  # JPEG: decode at a reduced size
            grey = im.mode in ('1', 'L', 'I', 'I;16', 'F')
            im = im.convert('L' if grey else 'RGB')
            im.thumbnail((_MAX_SIDE, _MAX_SIDE), Image.BILINEAR)
            a = onp.asarray(im, dtype=onp.float32)
        out.append(a[..., None] if a.ndim == 2 else a)
    return tuple(out)


def _resize(a, h, w):
    """Bilinear resize of ``(H, W, C)`` float32 to ``(h, w, C)`` (PIL, per channel)."""
    from PIL import Image
    chans = [onp.asarray(Image.fromarray(a[..., c]).resize((w, h), Image.BILINEAR))
             for c in range(a.shape[2])]
    return onp.stack(chans, axis=-1)


def crop(rng, h, w, min_frac=0.25, max_frac=1.0, tint_grey=True):
    """One random crop of a random photo, resized to ``(h, w, 3)`` float32 in [0, 255].

    The crop side is ``min_frac``-``max_frac`` of the photo's short side (random scale),
    then flipped and rotated by a multiple of 90 degrees at random; grey photos get a random
    colour tint (``tint_grey``).
    """
    bank = photo_bank()
    p = bank[int(rng.integers(len(bank)))]
    H, W = p.shape[:2]
    aspect = w / h
    side = rng.uniform(min_frac, max_frac) * min(H, W)
    ch = int(max(4, min(H, side / onp.sqrt(aspect))))
    cw = int(max(4, min(W, side * onp.sqrt(aspect))))
    y0, x0 = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
    a = p[y0:y0 + ch, x0:x0 + cw]
    k = int(rng.integers(4))
    if k % 2:  # a quarter turn swaps the sides: crop the other way round
        a = onp.rot90(a, k)
    elif k:
        a = a[::-1, ::-1]
    if rng.integers(2):
        a = a[:, ::-1]
    a = _resize(onp.ascontiguousarray(a), h, w)
    if a.shape[2] == 1:
        if tint_grey:
            tint = rng.uniform(0.35, 1.15, 3).astype(onp.float32)
            a = a * tint
        else:
            a = onp.repeat(a, 3, axis=2)
    return a


def crops(rng, n, h, w, **kwargs):
    """``n`` independent :func:`crop` s: ``(n, h, w, 3)`` float32."""
    return onp.stack([crop(rng, h, w, **kwargs) for _ in range(n)])


def texture(rng, h, w, strength=0.35):
    """A photo's luminance as a multiplicative texture ``(h, w, 1)`` float32 around 1."""
    a = crop(rng, h, w, tint_grey=False).mean(axis=2, keepdims=True)
    a = a / max(float(a.mean()), 1.0)
    return onp.float32(1 - strength) + onp.float32(strength) * a


def lighting(rng, img, gain=(0.6, 1.3), offset=(-25, 25), colour=0.12):
    """Random global gain, offset and per-channel colour cast (``img`` ``(..., 3)`` float)."""
    g = rng.uniform(*gain) * (1 + rng.uniform(-colour, colour, 3))
    return img * g.astype(onp.float32) + onp.float32(rng.uniform(*offset))


def blur(img, radius):
    """Gaussian blur of ``(H, W, 3)`` float32 with standard deviation ``radius`` pixels."""
    if radius <= 0.05:
        return img
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(img, sigma=(radius, radius, 0), mode='nearest', truncate=2.5)


@functools.lru_cache(maxsize=1)
def _noise_bank():
    # one fixed tile of normals, cut at random offsets: drawing fresh normals per image is
    # the slowest step of a twin otherwise
    return onp.random.default_rng(12345).standard_normal((512, 512, 3), dtype=onp.float32)


def noise(rng, h, w):
    """Standard normal noise ``(h, w, 3)`` float32 (a random window of a fixed tile)."""
    bank = _noise_bank()
    if h > 512 or w > 512:
        return rng.standard_normal((h, w, 3), dtype=onp.float32)
    y, x = int(rng.integers(0, 513 - h)), int(rng.integers(0, 513 - w))
    t = bank[y:y + h, x:x + w]
    return t if rng.integers(2) else t[::-1, ::-1]


def finish(rng, img, sigma_blur, sigma_noise):
    """The camera: blur (std ``sigma_blur`` pixels), sensor noise, clip; -> uint8 ``(H, W, 3)``."""
    from PIL import Image, ImageFilter
    out = onp.clip(img, 0, 255).astype(onp.uint8)
    if sigma_blur > 0.05:
        out = onp.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(sigma_blur)))
    h, w = out.shape[:2]
    return onp.clip(out + noise(rng, h, w) * onp.float32(sigma_noise), 0, 255).astype(onp.uint8)
