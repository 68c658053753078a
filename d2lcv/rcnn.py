"""Section 13.8, region-based CNNs: RoI pooling (Fast R-CNN) and RoIAlign (Mask R-CNN).

``roi_pool`` is max pooling over a ``pooled_size`` grid of sub-windows of each region, as
``npx.roi_pooling``; ``roi_align`` averages bilinear samples instead, as
``mx.nd.contrib.ROIAlign``. Both take ``impl='d2lcv'`` (the vectorised NumPy version here,
the default) or ``impl='npx'`` (MXNet's operator), which compute the same thing.

A region is a row ``(batch_index, x1, y1, x2, y2)`` in image pixels; ``spatial_scale`` maps
them onto the feature map (the chapter's text calls column 0 the "object category": it is the
index of the image in the batch, see ERRATA).
"""
import numpy as onp

from .anchors import _host, _like, get_impl

__all__ = ['roi_pool', 'roi_align']

f32 = onp.float32


def _check(X, rois):
    if X.ndim != 4:
        raise ValueError(f'X must have shape (N, C, H, W), got {X.shape}')
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f'rois must have shape (R, 5) rows (batch_index, x1, y1, x2, y2), '
                         f'got {rois.shape}')
    bad = (rois[:, 3] < rois[:, 1]) | (rois[:, 4] < rois[:, 2])
    if bad.any():
        r = int(onp.argmax(bad))
        raise ValueError(f'rois[{r}] = {rois[r].tolist()} is not a box: x2 < x1 or y2 < y1')


def _round_half_away(x):
    return onp.where(x >= 0, onp.floor(x + f32(0.5)), onp.ceil(x - f32(0.5)))


def roi_pool(X, rois, pooled_size, spatial_scale, impl=None, chunk=64):
    """RoI max pooling, as ``npx.roi_pooling``.

    Parameters
    ----------
    X : (N, C, H, W) feature maps.
    rois : (R, 5) rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates.
    pooled_size : (ph, pw). spatial_scale : feature size / image size (e.g. 0.1).

    Returns
    -------
    (R, C, ph, pw): each region's corners are scaled and rounded half away from zero, the
    region (inclusive of its end pixel) is split into ph x pw sub-windows
    ``[floor(i * h / ph), ceil((i + 1) * h / ph))``, and each gives its maximum (0 if empty).
    Regions are processed ``chunk`` at a time to bound memory (R * C * H * W * pw floats).
    """
    ph, pw = (pooled_size, pooled_size) if onp.isscalar(pooled_size) else pooled_size
    if get_impl(impl) == 'npx':
        from mxnet import npx

        from .anchors import _mx
        out = npx.roi_pooling(_mx(X), _mx(rois), pooled_size=(ph, pw),
                              spatial_scale=spatial_scale)
        return out if hasattr(X, 'asnumpy') else out.asnumpy()
    x, r = _host(X), _host(rois)
    _check(x, r)
    b = r[:, 0].astype(onp.int64)
    if ((b < 0) | (b >= x.shape[0])).any():
        i = int(onp.argmax((b < 0) | (b >= x.shape[0])))
        raise ValueError(f'rois[{i}] has batch index {r[i, 0]:g}, but X holds {x.shape[0]} '
                         'images')
    outs = [_roi_pool(x, r[s:s + chunk], ph, pw, f32(spatial_scale))
            for s in range(0, max(len(r), 1), chunk)]
    return _like(onp.concatenate(outs, axis=0), X)


def _pool_windows(start, length, pooled, size):
    """Sub-window masks ``(R, pooled, size)`` along one axis (float32, as the operator)."""
    bin_size = length.astype(f32) / f32(pooled)                       # (R,)
    i = onp.arange(pooled, dtype=f32)
    lo = onp.floor(i[None] * bin_size[:, None]).astype(onp.int64) + start[:, None]
    hi = onp.ceil((i[None] + 1) * bin_size[:, None]).astype(onp.int64) + start[:, None]
    lo, hi = onp.clip(lo, 0, size), onp.clip(hi, 0, size)           # (R, pooled)
    pos = onp.arange(size)
    return (pos >= lo[..., None]) & (pos < hi[..., None])


def _roi_pool(x, r, ph, pw, scale):
    N, C, H, W = x.shape
    corners = _round_half_away(r[:, 1:] * scale).astype(onp.int64)    # (R, 4): x1 y1 x2 y2
    x1, y1, x2, y2 = corners.T
    mh = _pool_windows(y1, onp.maximum(y2 - y1 + 1, 1), ph, H)         # (R, ph, H)
    mw = _pool_windows(x1, onp.maximum(x2 - x1 + 1, 1), pw, W)         # (R, pw, W)
    feats = x[r[:, 0].astype(onp.int64)]                                 # (R, C, H, W)
    # Max over a rectangle = max over its rows of the max over its columns.
    cols = onp.where(mw[:, None, None, :, :], feats[:, :, :, None, :], -onp.inf).max(axis=-1)
    # cols: (R, C, H, pw)
    out = onp.where(mh[:, None, :, :, None], cols[:, :, None, :, :], -onp.inf).max(axis=3)
    # out: (R, C, ph, pw); empty sub-windows give 0
    return onp.where(onp.isneginf(out), 0, out).astype(f32)


def roi_align(X, rois, pooled_size, spatial_scale, sample_ratio=-1, aligned=False, impl=None):
    """RoIAlign, as ``mx.nd.contrib.ROIAlign``.

    Parameters
    ----------
    X : (N, C, H, W). rois : (R, 5) rows ``(batch_index, x1, y1, x2, y2)``; a negative batch
        index gives zeros, as the operator documents (MXNet 1.9.1's operator itself then
        zeroes an element of another region and leaves that region's output unwritten).
    pooled_size : (ph, pw). spatial_scale : feature / image size.
    sample_ratio : samples per bin side (-1: ``ceil(region size / pooled size)``).
    aligned : shift by half a pixel (Detectron2's convention).

    Returns
    -------
    (R, C, ph, pw): per bin, the mean of bilinear samples on a regular grid; samples more than
    one pixel outside the map count as 0. Bilinear sampling is separable, so each region is
    two matrix products: ``Wy (ph, H) @ X (H, W) @ Wx (W, pw)``.
    """
    ph, pw = (pooled_size, pooled_size) if onp.isscalar(pooled_size) else pooled_size
    if get_impl(impl) == 'npx':
        import mxnet as mx
        data = X.as_nd_ndarray() if hasattr(X, 'as_nd_ndarray') else mx.nd.array(_host(X))
        rr = rois.as_nd_ndarray() if hasattr(rois, 'as_nd_ndarray') else mx.nd.array(
            _host(rois))
        out = mx.nd.contrib.ROIAlign(data, rr, pooled_size=(ph, pw),
                                     spatial_scale=spatial_scale, sample_ratio=sample_ratio,
                                     aligned=aligned)
        if not hasattr(X, 'asnumpy'):
            return out.asnumpy()
        from mxnet import np
        return out.as_np_ndarray() if isinstance(X, np.ndarray) else out
    x, r = _host(X), _host(rois)
    _check(x, r)
    N, C, H, W = x.shape
    b = r[:, 0].astype(onp.int64)
    if (b >= N).any():
        i = int(onp.argmax(b >= N))
        raise ValueError(f'rois[{i}] has batch index {r[i, 0]:g}, but X holds {N} images')
    off = 0.5 if aligned else 0.0
    c = r[:, 1:].astype(onp.float64) * float(spatial_scale) - off       # (R, 4)
    flat = (c[:, 2] <= c[:, 0]) | (c[:, 3] <= c[:, 1])
    if aligned and (flat & (b >= 0)).any():
        i = int(onp.argmax(flat & (b >= 0)))
        raise ValueError(f'rois[{i}] = {r[i].tolist()} has no area; aligned RoIAlign needs '
                         'x2 > x1 and y2 > y1 (the operator aborts the process on it)')
    wy = _align_weights(c[:, 1], c[:, 3] - c[:, 1], ph, H, sample_ratio, aligned)
    wx = _align_weights(c[:, 0], c[:, 2] - c[:, 0], pw, W, sample_ratio, aligned)
    feats = x[onp.maximum(b, 0)].astype(onp.float64)                    # (R, C, H, W)
    out = wy[:, None] @ feats @ onp.swapaxes(wx, 1, 2)[:, None]         # (R, C, ph, pw)
    out[b < 0] = 0
    return _like(out.astype(f32), X)


def _align_weights(start, length, pooled, size, sample_ratio, aligned):
    """Interpolation matrix ``(R, pooled, size)`` along one axis: the mean over a bin's
    samples of their linear-interpolation weights on the pixels."""
    if not aligned:
        length = onp.maximum(length, 1.0)
    bin_size = length / pooled                                          # (R,)
    if sample_ratio > 0:
        grid = onp.full(len(start), sample_ratio, onp.int64)
    else:
        grid = onp.ceil(length / pooled).astype(onp.int64)
    g = max(int(grid.max()) if len(grid) else 1, 1)
    k = onp.arange(g)
    # Sample positions (R, pooled, g); samples beyond a region's own grid are masked out.
    y = (start[:, None, None] + onp.arange(pooled)[None, :, None] * bin_size[:, None, None]
         + (k[None, None, :] + 0.5) * bin_size[:, None, None] / onp.maximum(grid, 1)[:, None,
                                                                                   None])
    used = k[None, None, :] < grid[:, None, None]
    inside = (y >= -1.0) & (y <= size) & used
    y = onp.maximum(y, 0.0)
    lo = onp.floor(y).astype(onp.int64)
    last = lo >= size - 1
    lo = onp.where(last, size - 1, lo)
    hi = onp.where(last, size - 1, lo + 1)
    y = onp.where(last, lo, y)
    frac = y - lo
    pos = onp.arange(size)
    w = ((pos == lo[..., None]) * (1 - frac)[..., None]
         + (pos == hi[..., None]) * frac[..., None])                    # (R, pooled, g, size)
    w = (w * inside[..., None]).sum(axis=2)
    return w / onp.maximum(grid, 1)[:, None, None]
