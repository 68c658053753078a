"""Sections 13.4 and 13.5: anchor boxes, IoU, labelling, offsets, NMS, multiscale anchors.

Every function is batch-first and vectorised (no Python loop over images, boxes or anchors):

================================  =========================================================
``multibox_prior(data, ...)``     anchors centred on every pixel of ``data`` -> (1, A, 4)
``box_iou(b1, b2)``               pairwise IoU, (N,4)x(M,4) -> (N,M), batched (B,N,M)
``assign_anchor_to_bbox(...)``    greedy matching: largest IoU first, then threshold pass
``offset_boxes / offset_inverse`` the chapter's box encoding (means 0, stds 0.1/0.2)
``multibox_target(...)``          training labels: offsets (B,4A), mask (B,4A), classes (B,A)
``nms(boxes, scores, thr)``       non-maximum suppression for one image
``multibox_detection(...)``       decode + per-class NMS -> (B, A, 6)
``display_anchors(w, h, s)``      13.5: anchors of an ``h x w`` feature map on the cat-dog image
================================  =========================================================

Where the chapter calls an ``npx`` operator, the function takes ``impl='d2lcv'`` (this
module's readable implementation, the default) or ``impl='npx'`` (MXNet's operator). Both
run the same algorithm and give the same numbers (the tests check it). The default comes
from ``$D2LCV_ANCHORS_IMPL`` or :func:`set_impl`: the one switch, which RoI pooling
(:mod:`d2lcv.rcnn`) and SSD's operators (:func:`d2lcv.ssd.detection_ops`) follow too. Where
the d2lcv one runs:

* ``multibox_target`` (the training step): where its inputs live. MXNet arrays, on a GPU or
  a CPU, are labelled with MXNet array operations on their device (no copy to the host, no
  synchronisation: ``tests/test_transfers.py`` counts the reads of a training step); NumPy
  arrays with NumPy.
* ``multibox_prior``: computed on the host and copied to the input's device (a copy *to* the
  device; ``TinySSD`` caches the anchors per shape and device).
* ``multibox_detection``: on the host, as plain loops (scores, sort, decoding, NMS)
  compiled by Numba (docs/performance.md says why; without Numba a vectorised NumPy
  version); given arrays on a GPU it calls the operator, which runs there, rather than copy
  them to the host.

Differences from the operators, on purpose: boxes with ``x2 < x1`` or ``y2 < y1`` (anchors,
ground truth) and wrongly shaped inputs raise ``ValueError`` naming the box, where the
operators silently compute on them; ``multibox_target`` has no hard negative mining
(``negative_mining_ratio`` > 0 needs ``impl='npx'``).
"""
import os

import numpy as onp

from ._arrays import as_mx, host, is_symbol, like, on_gpu

__all__ = ['multibox_prior', 'box_iou', 'assign_anchor_to_bbox', 'offset_boxes',
           'offset_inverse', 'multibox_target', 'nms', 'multibox_detection',
           'display_anchors', 'set_impl', 'get_impl', 'VARIANCES', 'IMPLS']

IMPLS = ('d2lcv', 'npx')
VARIANCES = (0.1, 0.1, 0.2, 0.2)
_FLT_MIN = float(onp.finfo(onp.float32).tiny)
_default_impl = os.environ.get('D2LCV_ANCHORS_IMPL', 'd2lcv')


def set_impl(name):
    """Choose the default implementation: ``'d2lcv'`` (NumPy, readable) or ``'npx'``."""
    global _default_impl
    _default_impl = _check_impl(name)


def get_impl(impl=None):
    """The implementation a call with ``impl`` uses (``None``: the module default)."""
    return _check_impl(_default_impl if impl is None else impl)


def _check_impl(name):
    if name not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {name!r}')
    return name


# ---------------------------------------------------------------------------------------
# Input checks: a wrong shape or a reversed box is named, not computed on.
def _check_last(x, n, name):
    if x.ndim < 1 or x.shape[-1] != n:
        raise ValueError(f'{name} must have shape (..., {n}), got {tuple(x.shape)}')


def _check_corners(boxes, name, valid=None):
    """Raise if any (valid) box of ``boxes (..., 4)`` has ``x2 < x1`` or ``y2 < y1``."""
    bad = (boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1])
    if valid is not None:
        bad &= valid
    if bad.any():
        idx = tuple(int(i) for i in onp.argwhere(bad)[0])
        where = ', '.join(map(str, idx))
        box = boxes[idx]
        which = 'x2 < x1' if box[2] < box[0] else 'y2 < y1'
        raise ValueError(f'{name}[{where}] = {box.tolist()} is not a box: {which} '
                         '(boxes are (x1, y1, x2, y2) with x1 <= x2, y1 <= y2)')


# ---------------------------------------------------------------------------------------
# 13.4.1 Generating anchor boxes
def multibox_prior(data, sizes, ratios, clip=False, impl=None):
    """Anchor boxes centred on every pixel of ``data``, as ``npx.multibox_prior``.

    Parameters
    ----------
    data : array (B, C, H, W); only H and W are used.
    sizes : n sizes in (0, 1]; ratios : m aspect ratios > 0.
    clip : clip the corners to [0, 1].

    A symbolic ``data`` (inside a hybridized block) always goes to the operator.

    Returns
    -------
    anchors : (1, H * W * (n + m - 1), 4), corners normalised by the width and height, ordered
        by pixel (row-major), then ``(s_1, r_1), ..., (s_n, r_1), (s_1, r_2), ..., (s_1, r_m)``.
        In pixels an anchor is ``H * s * sqrt(r)`` wide and ``H * s / sqrt(r)`` high (the
        operator's convention: the width is corrected by ``H / W`` in normalised units).
    """
    sizes, ratios = list(onp.atleast_1d(sizes)), list(onp.atleast_1d(ratios))
    if is_symbol(data):       # inside a hybridized block: only the operator can run there
        from mxnet import sym
        return sym.npx.multibox_prior(data, sizes=[float(s) for s in sizes],
                                  ratios=[float(r) for r in ratios], clip=clip)
    if len(data.shape) != 4:
        raise ValueError(f'data must have shape (B, C, H, W), got {tuple(data.shape)}')
    if not sizes or not ratios:
        raise ValueError('multibox_prior needs at least one size and one ratio')
    if get_impl(impl) == 'd2lcv':
        return like(_multibox_prior(data.shape[2], data.shape[3], sizes, ratios, clip), data)
    from mxnet import npx
    out = npx.multibox_prior(as_mx(data), sizes=[float(s) for s in sizes],
                             ratios=[float(r) for r in ratios], clip=clip)
    return out if hasattr(data, 'asnumpy') else out.asnumpy()


def _multibox_prior(in_height, in_width, sizes, ratios, clip=False):
    f32 = onp.float32
    # Float32 throughout, in the operator's order of operations, so the corners agree bitwise.
    step_y, step_x = f32(1) / f32(in_height), f32(1) / f32(in_width)
    center_y = (onp.arange(in_height, dtype=f32) + f32(0.5)) * step_y   # (H,)
    center_x = (onp.arange(in_width, dtype=f32) + f32(0.5)) * step_x    # (W,)
    sizes, ratios = onp.asarray(sizes, f32), onp.asarray(ratios, f32)
    # (s_i, r_1) for every size, then (s_1, r_j) for the other ratios
    s = onp.concatenate([sizes, onp.repeat(sizes[:1], len(ratios) - 1)])
    r = onp.sqrt(onp.concatenate([onp.repeat(ratios[:1], len(sizes)), ratios[1:]]))
    half_w = s * f32(in_height) / f32(in_width) * r / f32(2)    # (k,)
    half_h = s / r / f32(2)
    cy = center_y[:, None, None]                                   # (H, 1, 1)
    cx = center_x[None, :, None]                                   # (1, W, 1)
    shape = (in_height, in_width, len(s))
    out = onp.stack([onp.broadcast_to(cx - half_w, shape), onp.broadcast_to(cy - half_h, shape),
                     onp.broadcast_to(cx + half_w, shape), onp.broadcast_to(cy + half_h, shape)],
                    axis=-1)                                       # (H, W, k, 4)
    if clip:
        out = onp.clip(out, 0, 1)
    return out.reshape(1, -1, 4).astype(f32)


# ---------------------------------------------------------------------------------------
# 13.4.2 Intersection over union
def box_iou(boxes1, boxes2, *, dtype='float32'):
    """Pairwise IoU: ``(N, 4) x (M, 4) -> (N, M)``, or batched ``(B, N, 4) x (B, M, 4) ->
    (B, N, M)``. Boxes are corners ``(x1, y1, x2, y2)``; IoU is 0 where the union is empty.

    ``dtype``: ``'float32'`` (the operators' arithmetic, which labelling must reproduce) or
    ``'float64'`` (what the detection metrics use, to agree with pycocotools to 1e-12).
    """
    b1, b2 = host(boxes1, dtype), host(boxes2, dtype)
    _check_last(b1, 4, 'boxes1')
    _check_last(b2, 4, 'boxes2')
    if b1.ndim != b2.ndim or b1.ndim not in (2, 3) or (b1.ndim == 3 and
                                                        b1.shape[0] != b2.shape[0]):
        raise ValueError('box_iou takes (N, 4) and (M, 4), or (B, N, 4) and (B, M, 4) with '
                         f'the same B; got {b1.shape} and {b2.shape}')
    _check_corners(b1, 'boxes1')
    _check_corners(b2, 'boxes2')
    return like(_iou(b1, b2, dtype), boxes1)


def _iou(b1, b2, dtype='float32'):
    """IoU of ``b1 (..., N, 4)`` with ``b2 (..., M, 4)`` -> ``(..., N, M)`` in ``dtype``, with
    the operators' formula: ``inter / (area1 + area2 - inter)``, 0 where that union is <= 0."""
    b1, b2 = b1.astype(dtype, copy=False), b2.astype(dtype, copy=False)
    # Each coordinate as (..., N, 1) against (..., 1, M); in-place to save passes.
    c1 = [b1[..., :, None, k] for k in range(4)]
    c2 = [b2[..., None, :, k] for k in range(4)]
    iw = onp.minimum(c1[2], c2[2])
    iw -= onp.maximum(c1[0], c2[0])
    onp.maximum(iw, 0, out=iw)
    ih = onp.minimum(c1[3], c2[3])
    ih -= onp.maximum(c1[1], c2[1])
    onp.maximum(ih, 0, out=ih)
    inter = onp.multiply(iw, ih, out=iw)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = onp.add(area1[..., :, None], area2[..., None, :], out=ih)
    union -= inter
    ok = union > 0
    onp.divide(inter, union, out=inter, where=ok)
    inter[~ok] = 0
    return inter


# ---------------------------------------------------------------------------------------
# 13.4.3 Labelling anchor boxes
def assign_anchor_to_bbox(ground_truth, anchors, iou_threshold=0.5, num_gt=None):
    """Assign ground-truth boxes to anchors: the chapter's greedy matching, batched.

    First the largest remaining IoU over all (anchor, box) pairs is matched and its row and
    column discarded, until every box is matched or no pair has IoU > 1e-6 (ties go to the
    lower anchor index, then the lower box index, as in ``npx.multibox_target``); then every
    other anchor takes its best box if that IoU is ``> iou_threshold``.

    Parameters
    ----------
    ground_truth : (M, 4) or (B, M, 4) boxes.
    anchors : (A, 4) or (B, A, 4) (broadcast over the batch).
    num_gt : (B,) int, optional: only the first ``num_gt[b]`` boxes of image b count.

    Returns
    -------
    (A,) or (B, A) int: the box index assigned to each anchor, -1 for none.
    """
    gt, anc = host(ground_truth), host(anchors)
    squeeze = gt.ndim == 2
    if squeeze:
        gt = gt[None]
    if anc.ndim == 2:
        anc = anc[None]
    _check_last(gt, 4, 'ground_truth')
    _check_last(anc, 4, 'anchors')
    if num_gt is None:
        num_gt = onp.full(gt.shape[0], gt.shape[1])
    out = _assign(_iou(gt, anc), onp.asarray(num_gt), iou_threshold)
    return out[0] if squeeze else out


def _assign(iou, num_gt, iou_threshold):
    """``iou (B or 1, M, A)`` (boxes by anchors: the long axis innermost), ``num_gt (B,)`` ->
    ``(B, A)`` box index per anchor, -1 for none."""
    B, M = len(num_gt), iou.shape[1]
    A = iou.shape[2]
    gt_ok = onp.arange(M)[None, :] < num_gt[:, None]             # (B, M)
    masked = onp.where(gt_ok[:, :, None], iou, onp.float32(-1))  # (B, M, A)
    work = masked.copy()
    match = onp.full((B, A), -1, dtype=onp.int64)
    if M == 0:
        return match
    rows = onp.arange(B)
    # Greedy bipartite pass: one round per box, each round vectorised over the batch. The
    # largest IoU left; ties go to the lowest anchor, then the lowest box (the operator's
    # scan order): the first anchor reaching the maximum, then its first box reaching it.
    for _ in range(M):
        best_per_anchor = work.max(axis=1)                        # (B, A)
        a = best_per_anchor.argmax(axis=1)                        # (B,)
        ok = best_per_anchor[rows, a] > 1e-6
        if not ok.any():
            break
        b, a = rows[ok], a[ok]
        m = work[b, :, a].argmax(axis=1)
        match[b, a] = m
        work[b, :, a] = -1                                        # discard the anchor ...
        work[b, m, :] = -1                                        # ... and the box
    # Threshold pass over the anchors left unmatched.
    best_gt = masked.argmax(axis=1)                               # (B, A)
    best_iou = masked.max(axis=1)
    extra = (match < 0) & (best_iou > iou_threshold)
    match[extra] = best_gt[extra]
    return match


def offset_boxes(anchors, assigned_bb, variances=VARIANCES):
    """Encode boxes relative to anchors (13.4.3, means 0, stds ``variances``).

    ``anchors``, ``assigned_bb``: (..., 4) corners, broadcast. Returns (..., 4):
    ``((xb - xa) / wa / 0.1, (yb - ya) / ha / 0.1, log(wb / wa) / 0.2, log(hb / ha) / 0.2)``
    with centres ``x, y`` and sizes ``w, h``.
    """
    out = _offset_boxes(host(anchors), host(assigned_bb), variances)
    return like(out, anchors)


def _offset_boxes(anc, bb, variances=VARIANCES):
    f32 = onp.float32
    v = onp.asarray(variances, f32)
    aw, ah = anc[..., 2] - anc[..., 0], anc[..., 3] - anc[..., 1]
    ax, ay = (anc[..., 0] + anc[..., 2]) * f32(0.5), (anc[..., 1] + anc[..., 3]) * f32(0.5)
    gw, gh = bb[..., 2] - bb[..., 0], bb[..., 3] - bb[..., 1]
    gx, gy = (bb[..., 0] + bb[..., 2]) * f32(0.5), (bb[..., 1] + bb[..., 3]) * f32(0.5)
    with onp.errstate(divide='ignore', invalid='ignore'):
        return onp.stack([(gx - ax) / aw / v[0], (gy - ay) / ah / v[1],
                          onp.log(gw / aw) / v[2], onp.log(gh / ah) / v[3]], axis=-1)


def offset_inverse(anchors, offset_preds, variances=VARIANCES, clip=False):
    """Decode offsets into boxes: the exact inverse of :func:`offset_boxes`.

    ``anchors``, ``offset_preds``: (..., 4), broadcast. Returns (..., 4) corners, clipped to
    [0, 1] if ``clip``.
    """
    out = _offset_inverse(host(anchors), host(offset_preds), variances, clip)
    return like(out, offset_preds)


def _offset_inverse(anc, off, variances=VARIANCES, clip=False):
    f32 = onp.float32
    v = onp.asarray(variances, f32)
    aw, ah = anc[..., 2] - anc[..., 0], anc[..., 3] - anc[..., 1]
    ax, ay = (anc[..., 0] + anc[..., 2]) / f32(2), (anc[..., 1] + anc[..., 3]) / f32(2)
    ox = off[..., 0] * v[0] * aw + ax
    oy = off[..., 1] * v[1] * ah + ay
    ow = onp.exp(off[..., 2] * v[2]) * aw / f32(2)
    oh = onp.exp(off[..., 3] * v[3]) * ah / f32(2)
    out = onp.stack([ox - ow, oy - oh, ox + ow, oy + oh], axis=-1)
    return onp.clip(out, 0, 1) if clip else out


def _num_valid_labels(lab):
    """``lab (B, M, 5)`` -> ``(B,)``: rows before the first row of class -1."""
    pad = lab[..., 0] == -1                                       # (B, M)
    M = lab.shape[1]
    if M == 0:
        return onp.zeros(lab.shape[0], onp.int64)
    first = onp.where(pad.any(axis=1), pad.argmax(axis=1), M)
    # The operator insists that a padding row is -1 in x1 as well.
    rows = onp.arange(lab.shape[0])
    bad = (first < M) & (lab[rows, onp.minimum(first, M - 1), 1] != -1)
    if bad.any():
        b = int(onp.argmax(bad))
        raise ValueError(f'labels[{b}, {int(first[b])}] = {lab[b, first[b]].tolist()}: class '
                         '-1 marks a padding row, whose coordinates must be -1 too')
    return first


def multibox_target(anchors, labels, cls_preds=None, overlap_threshold=0.5, ignore_label=-1,
                    variances=VARIANCES, negative_mining_ratio=-1, impl=None, check=False,
                    **kwargs):
    """Label anchors with classes and offsets, as ``npx.multibox_target``.

    Parameters
    ----------
    anchors : (1, A, 4) corners (``multibox_prior``'s output).
    labels : (B, M, 5) rows ``(class, x1, y1, x2, y2)``; a row of class -1 (all -1) is
        padding and ends its image's list (rows after it are ignored).
    cls_preds : (B, C + 1, A), unused unless hard negative mining; may be None.
    overlap_threshold : IoU above which an unmatched anchor takes its best box.

    check : with MXNet inputs, also check the values (box corners, padding rows) as for
        NumPy inputs; this reads them to the host, so the training loop leaves it off.

    With ``impl='d2lcv'``, MXNet arrays (``mx.np`` or ``mx.nd``) are labelled with MXNet
    array operations on their own device (:func:`_multibox_target_mx`: no copy to the host,
    no synchronisation, so a training step stays asynchronous on a GPU); NumPy arrays with
    NumPy. Both give the operator's numbers. Shapes are checked either way.

    Returns
    -------
    (bbox_offset (B, 4A), bbox_mask (B, 4A), class_labels (B, A)), float32: offsets of
    positive anchors (0 elsewhere), 1/0 mask, class + 1 for positives, 0 for background, and
    ``ignore_label`` for every anchor of an image that has no box at all.
    """
    if get_impl(impl) == 'npx':
        from mxnet import np, npx
        lab = as_mx(labels)
        cp = as_mx(cls_preds) if cls_preds is not None else np.zeros(
            (lab.shape[0], 2, anchors.shape[-2]), ctx=lab.ctx)
        outs = npx.multibox_target(as_mx(anchors), lab, cp,
                                   overlap_threshold=overlap_threshold,
                                   ignore_label=ignore_label, variances=tuple(variances),
                                   negative_mining_ratio=negative_mining_ratio, **kwargs)
        return tuple(o if hasattr(labels, 'asnumpy') else o.asnumpy() for o in outs)
    if negative_mining_ratio is not None and negative_mining_ratio > 0 or kwargs:
        raise NotImplementedError('hard negative mining is not in the d2lcv implementation; '
                                  "use impl='npx'")
    if hasattr(labels, 'asnumpy') and hasattr(anchors, 'asnumpy') and not check:
        # MXNet arrays stay where they are (GPU or CPU): no copy to the host, no sync.
        out = _multibox_target_mx(anchors, labels, cls_preds, overlap_threshold,
                                  ignore_label, variances)
        from mxnet import np
        return out if isinstance(labels, np.ndarray) else tuple(o.as_nd_ndarray() for o in out)
    anc, lab = host(anchors), host(labels)
    if anc.ndim == 2:
        anc = anc[None]
    _check_target_shapes(anc, lab, cls_preds)
    _check_corners(anc, 'anchors')
    num_gt = _num_valid_labels(lab)
    valid = onp.arange(lab.shape[1])[None, :] < num_gt[:, None]   # (B, M)
    _check_corners(lab[..., 1:], 'labels[..., 1:]', valid)
    out = _multibox_target(anc[0], lab, num_gt, overlap_threshold, ignore_label, variances)
    return tuple(like(o, labels) for o in out)


def _check_target_shapes(anc, lab, cls_preds):
    """Shapes only (NumPy or MXNet arrays alike): ``anc (1, A, 4)``, ``lab (B, M, 5)``,
    ``cls_preds (B, C + 1, A)`` or None."""
    _check_last(anc, 4, 'anchors')
    _check_last(lab, 5, 'labels')
    if anc.ndim != 3 or anc.shape[0] != 1:
        raise ValueError(f'anchors must have shape (1, A, 4), got {tuple(anc.shape)}')
    if lab.ndim != 3:
        raise ValueError(f'labels must have shape (B, M, 5), got {tuple(lab.shape)}')
    if cls_preds is not None and (cls_preds.shape[0] != lab.shape[0]
                                  or cls_preds.shape[-1] != anc.shape[1]):
        raise ValueError(f'cls_preds {tuple(cls_preds.shape)} does not fit labels '
                         f'{tuple(lab.shape)} and anchors {tuple(anc.shape)}: expected '
                         '(B, C + 1, A)')


def _multibox_target(anc, lab, num_gt, overlap_threshold, ignore_label, variances):
    B, A = lab.shape[0], anc.shape[0]
    # (B, M, A): the long axis innermost is ~10x faster than (B, A, M)
    iou = _iou(lab[..., 1:], anc[None])
    match = _assign(iou, num_gt, overlap_threshold if overlap_threshold > 0 else onp.inf)
    # Only the positive anchors get offsets and classes: gather just those.
    bi, ai = onp.nonzero(match >= 0)                             # (P,), (P,)
    gt = lab[bi, match[bi, ai]]                                  # (P, 5)
    cls = onp.zeros((B, A), 'float32')
    cls[num_gt == 0] = ignore_label
    cls[bi, ai] = gt[:, 0] + 1
    off = onp.zeros((B, A, 4), 'float32')
    off[bi, ai] = _offset_boxes(anc[ai], gt[:, 1:], variances)
    mask = onp.zeros((B, A, 4), 'float32')
    mask[bi, ai] = 1
    return off.reshape(B, 4 * A), mask.reshape(B, 4 * A), cls


def _multibox_target_mx(anchors, labels, cls_preds, overlap_threshold, ignore_label,
                        variances):
    """:func:`_multibox_target` in MXNet array operations, on ``labels``' device.

    The same algorithm and float32 formulas as the NumPy version, so the same numbers; only
    shapes are checked (a value check would need the values on the host). The greedy pass
    runs a fixed ``M`` rounds (one per ground-truth row) instead of stopping early: stopping
    would need to read a flag on the host, and a round with nothing left to match changes
    nothing.
    """
    from mxnet import np, npx
    lab = labels if isinstance(labels, np.ndarray) else labels.as_np_ndarray()
    anc = anchors if isinstance(anchors, np.ndarray) else anchors.as_np_ndarray()
    ctx = lab.ctx
    if anc.ctx != ctx:
        anc = anc.as_in_ctx(ctx)      # device to device
    if anc.ndim == 2:
        anc = anc.reshape(1, -1, 4)
    _check_target_shapes(anc, lab, cls_preds)
    lab, anc = lab.astype('float32', copy=False), anc[0].astype('float32', copy=False)
    B, M, A = lab.shape[0], lab.shape[1], anc.shape[0]
    if M == 0:
        z = np.zeros((B, 4 * A), ctx=ctx)
        return z, z.copy(), np.full((B, A), ignore_label, ctx=ctx, dtype='float32')
    # Coordinate planes, so that every piece is a view along the first axis (MXNet's
    # slicing along the last axis, `split` and reductions over a middle axis are slow).
    lab_t = lab.transpose(2, 1, 0)                               # (5, M, B)
    g = [lab_t[k + 1].reshape(M, B, 1) for k in range(4)]        # (M, B, 1) each
    anc_t = anc.T                                                # (4, A)
    a = [anc_t[k].reshape(1, 1, A) for k in range(4)]            # (1, 1, A) each
    # Rows before the first class -1 count: (M, B) 1/0.
    gt_ok = (np.cumsum(lab_t[0] == -1, axis=0) == 0).astype('float32')
    # IoU (M, B, A): the NumPy version's formula and order of float32 operations; padding
    # rows get 0, which never matches (matching needs IoU > 1e-6, the threshold pass > thr).
    iw = np.maximum(np.minimum(g[2], a[2]) - np.maximum(g[0], a[0]), 0)
    ih = np.maximum(np.minimum(g[3], a[3]) - np.maximum(g[1], a[1]), 0)
    inter = iw * ih
    union = ((g[2] - g[0]) * (g[3] - g[1])) + ((a[2] - a[0]) * (a[3] - a[1])) - inter
    # 0 where the union is <= 0 (then inter is 0 too) without a slow `where`: a union > 0
    # is at least float32's smallest normal number (in [0, 1] coordinates).
    iou = inter / np.maximum(union, _FLT_MIN) * gt_ok[:, :, None]
    # Greedy pass: M rounds. Each reduces along the contiguous anchor axis and removes the
    # matched anchor (and box) by multiplying by a 0/1 mask (IoU >= 0: exact).
    work = iou                                                   # matched anchors zeroed
    box_free = gt_ok                                             # (M, B) boxes left, 1/0
    match = -np.ones((B, A), ctx=ctx, dtype='float32')          # box index per anchor
    anchor_ids = np.arange(A, ctx=ctx, dtype='float32')[None]   # (1, A)
    box_ids = np.arange(M, ctx=ctx, dtype='float32')[:, None]   # (M, 1)
    for _ in range(M):
        first = np.argmax(work, axis=2)                          # (M, B) each box's best anchor
        val = npx.pick(work, first, axis=2) * box_free           # (M, B) ... and its IoU
        first = first.astype('float32')
        best = val.max(axis=0, keepdims=True)                    # (1, B) largest IoU left
        # Ties: the lowest anchor reaching the maximum, then the lowest box (the operator's
        # scan order). A box reaching it at that anchor has it as its own first maximum.
        at_best = (val == best).astype('float32')
        a_best = np.where(at_best, first, float(A)).min(axis=0, keepdims=True)   # (1, B)
        m_best = np.argmax(at_best * (first == a_best).astype('float32'), axis=0)
        m_best = m_best.astype('float32')[None]                  # (1, B)
        hit = (best > 1e-6).astype('float32')                    # (1, B)
        is_a = (anchor_ids == a_best.T).astype('float32') * hit.T   # (B, A)
        is_m = (box_ids == m_best).astype('float32') * hit       # (M, B)
        match = match + is_a * (m_best.T - match)               # small integers: exact
        work = work * (1 - is_a)[None]
        box_free = box_free * (1 - is_m)
    # Threshold pass over the anchors left unmatched: each anchor's first best box, by a
    # running maximum over the M rows.
    best_iou, best_gt = iou[0], np.zeros((B, A), ctx=ctx)
    for m in range(1, M):
        better = (iou[m] > best_iou).astype('float32')
        best_iou = np.maximum(best_iou, iou[m])
        best_gt = best_gt + better * (m - best_gt)
    thr = overlap_threshold if overlap_threshold > 0 else float('inf')
    extra = (match < 0).astype('float32') * (best_iou > thr).astype('float32')
    match = match + extra * (best_gt - match)
    pos = (match >= 0).astype('float32')                         # (B, A)
    # Offsets are computed for every anchor and zeroed for the negatives by the mask; a
    # negative must then give finite numbers (inf * 0 is nan), so it takes a "safe" copy of
    # its own anchor (sides > 0) as its box. A positive anchor and its box both have sides
    # > 0 (IoU > 1e-6), so for them the safe sides are their own: the same numbers.
    aw = [anc_t[2] - anc_t[0], anc_t[3] - anc_t[1]]              # (A,) each
    aw = [np.where(w > 0, w, 1.) for w in aw]
    safe = np.stack([np.zeros(A, ctx=ctx), anc_t[0], anc_t[1], anc_t[0] + aw[0],
                     anc_t[1] + aw[1]])                          # (5, A)
    table = np.concatenate([lab.reshape(B * M, 5), safe.T], axis=0)   # (B * M + A, 5)
    # Row of each anchor's box in `table`: b * M + match, or B * M + anchor (float32
    # holds these integers exactly below 2 ** 24).
    first_row = np.arange(B, ctx=ctx, dtype='float32')[:, None] * M
    row = pos * (first_row + match) + (1 - pos) * (B * M + anchor_ids)
    # Gathering rows is fast (mx.np.take_along_axis would fall back to NumPy on the host).
    gt = np.take(table, row.reshape(-1).astype('int64'), axis=0).T   # (5, B * A)
    f = [gt[k + 1].reshape(B, A) for k in range(4)]
    ax, ay = (anc_t[0] + anc_t[2]) * 0.5, (anc_t[1] + anc_t[3]) * 0.5   # (A,)
    gw, gh = f[2] - f[0], f[3] - f[1]
    gx, gy = (f[0] + f[2]) * 0.5, (f[1] + f[3]) * 0.5
    v = [float(onp.float32(x)) for x in variances]
    off = np.stack([(gx - ax) / aw[0] / v[0] * pos, (gy - ay) / aw[1] / v[1] * pos,
                    np.log(gw / aw[0]) / v[2] * pos, np.log(gh / aw[1]) / v[3] * pos],
                   axis=-1)                                      # (B, A, 4)
    mask = np.broadcast_to(pos.reshape(B, A, 1), (B, A, 4))
    background = np.where(gt_ok[0] == 0, float(ignore_label), 0.)   # (B,): no box at all
    cls = pos * (gt[0].reshape(B, A) + 1) + (1 - pos) * background[:, None]
    return off.reshape(B, 4 * A), mask.reshape(B, 4 * A), cls


# ---------------------------------------------------------------------------------------
# 13.4.4 Non-maximum suppression
def nms(boxes, scores, iou_threshold, classes=None):
    """Greedy NMS for one image: indices of the kept boxes, by decreasing score.

    ``boxes (N, 4)``, ``scores (N,)``, optional ``classes (N,)`` (then only boxes of one class
    suppress each other). A box is removed when its IoU with a kept, higher-scoring box is
    ``>= iou_threshold``; equal scores keep their input order. Returns ``(K,)`` int64.
    """
    b, s = host(boxes), host(scores)
    _check_last(b, 4, 'boxes')
    if b.ndim != 2 or s.shape != b.shape[:1]:
        raise ValueError(f'nms takes boxes (N, 4) and scores (N,), got {b.shape}, {s.shape}')
    c = onp.zeros(len(s)) if classes is None else host(classes)
    order = onp.argsort(-s, kind='stable')
    keep = _nms_sorted(b[order][None], None if classes is None else c[order][None],
                       onp.ones((1, len(s)), bool), iou_threshold)[0]
    return order[keep]


def _nms_sorted(boxes, cls, alive, thr, block=32):
    """Greedy NMS over rows already sorted by score, for a batch.

    ``boxes (B, S, 4)``, ``cls (B, S)``, ``alive (B, S)`` (rows taking part) -> ``keep (B, S)``.
    Rows are taken in blocks of ``block`` positions (a loop over blocks, not boxes): a block's
    rows are first tested against the boxes kept so far (all images at once), and then
    resolved among themselves by iterating ``keep = alive & ~any(kept earlier row of the
    block suppresses it)`` to its fixed point, which is exactly the sequential greedy result
    (each row depends only on earlier rows, so the iteration settles row by row).
    """
    B, S = alive.shape
    keep = onp.zeros((B, S), bool)
    # Coordinate planes (4, B, S): contiguous rows make the pairwise tests fast.
    planes = onp.ascontiguousarray(onp.moveaxis(boxes, -1, 0), dtype='float32')
    area = (planes[2] - planes[0]) * (planes[3] - planes[1])
    one_class = cls is None
    # The kept boxes so far, packed to the left per image: coordinates, area, class.
    cap = 64
    kept = onp.zeros((6, B, cap), 'float32')
    kept_n = onp.zeros(B, onp.int64)
    tri = onp.triu(onp.ones((block, block), bool), 1)            # earlier row i < later row j
    for start in range(0, S, block):
        sl = slice(start, min(start + block, S))
        n = sl.stop - sl.start
        bp, ba, al = planes[:, :, sl], area[:, sl], alive[:, sl].copy()
        bc = None if one_class else cls[:, sl]
        k = int(kept_n.max())
        if k:
            hit = _overlaps(bp, ba, kept[:4, :, :k], kept[4, :, :k], thr)   # (B, n, k)
            if not one_class:
                hit &= bc[:, :, None] == kept[5, :, None, :k]
            al &= ~hit.any(axis=2)
        sup = _overlaps(bp, ba, bp, ba, thr) & tri[:n, :n]              # (B, n, n)
        if not one_class:
            sup &= bc[:, :, None] == bc[:, None, :]
        sup &= al[:, :, None]
        kb = al
        while True:                                                   # at most n rounds
            new = al & ~(sup & kb[:, :, None]).any(axis=1)
            if (new == kb).all():
                break
            kb = new
        keep[:, sl] = kb
        # Append this block's survivors to each image's kept list.
        cnt = kb.sum(axis=1)
        need = int((kept_n + cnt).max())
        if need > cap:
            cap = max(need, 2 * cap)
            kept = onp.concatenate([kept, onp.zeros((6, B, cap - kept.shape[2]), 'float32')],
                                   axis=2)
        bi, ji = onp.nonzero(kb)
        pos = kept_n[bi] + (onp.cumsum(kb, axis=1) - 1)[bi, ji]
        kept[:4, bi, pos] = bp[:, bi, ji]
        kept[4, bi, pos] = ba[bi, ji]
        if not one_class:
            kept[5, bi, pos] = bc[bi, ji]
        kept_n += cnt
    return keep


def _overlaps(p1, a1, p2, a2, thr):
    """``IoU >= thr`` (``thr > 0``) for planes ``p1 (4, B, n)``, areas ``a1 (B, n)`` against
    ``p2 (4, B, k)``, ``a2 (B, k)`` -> (B, n, k) bool, with the operators' formula."""
    iw = onp.minimum(p1[2][:, :, None], p2[2][:, None, :])
    iw -= onp.maximum(p1[0][:, :, None], p2[0][:, None, :])
    ih = onp.minimum(p1[3][:, :, None], p2[3][:, None, :])
    ih -= onp.maximum(p1[1][:, :, None], p2[1][:, None, :])
    # No clipping at 0 (numpy's scalar maximum is slow): where iw > 0 and ih > 0 this is the
    # operator's exact value; ih <= 0 gives IoU <= 0 (or NaN) < thr; iw <= 0 is masked below.
    inter = iw * ih
    union = onp.add(a1[:, :, None], a2[:, None, :], out=ih)
    union -= inter
    with onp.errstate(divide='ignore', invalid='ignore'):
        inter /= union
    hit = inter >= thr
    hit &= iw > 0
    return hit


def multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=0.5, threshold=0.01,
                       clip=True, force_suppress=False, variances=VARIANCES, nms_topk=-1,
                       impl=None):
    """Predicted boxes after per-class NMS, as ``npx.multibox_detection``.

    Parameters
    ----------
    cls_probs : (B, C + 1, A), class 0 is background.
    offset_preds : (B, 4A) predicted offsets; anchors : (1, A, 4).
    nms_threshold : suppress a box whose IoU with a kept box of its class is >= this
        (no NMS, and no sorting, if it is <= 0 or > 1). threshold : drop scores below it.
    force_suppress : suppress across classes. nms_topk : only the best k enter NMS (-1: all).

    Returns
    -------
    (B, A, 6) float32 rows ``(class, score, x1, y1, x2, y2)``: per image the rows scoring at
    least ``threshold`` sorted by decreasing score (ties keep anchor order), suppressed rows
    with class -1, then rows of all -1. ``class`` counts from 0 without the background.
    """
    if get_impl(impl) == 'npx' or on_gpu(cls_probs):
        # (d2lcv's runs on the host: GPU arrays stay on the GPU with the operator)
        from mxnet import npx
        out = npx.multibox_detection(as_mx(cls_probs), as_mx(offset_preds), as_mx(anchors),
                                     nms_threshold=nms_threshold, threshold=threshold,
                                     clip=clip, force_suppress=force_suppress,
                                     variances=tuple(variances), nms_topk=nms_topk)
        return out if hasattr(cls_probs, 'asnumpy') else out.asnumpy()
    cp, op, anc = host(cls_probs), host(offset_preds), host(anchors)
    if anc.ndim == 2:
        anc = anc[None]
    _check_last(anc, 4, 'anchors')
    if cp.ndim != 3 or cp.shape[1] < 2:
        raise ValueError(f'cls_probs must have shape (B, C + 1, A), got {cp.shape}')
    B, _, A = cp.shape
    if anc.shape != (1, A, 4):
        raise ValueError(f'anchors {anc.shape} do not fit cls_probs {cp.shape}: '
                         f'expected (1, {A}, 4)')
    if op.shape != (B, 4 * A):
        raise ValueError(f'offset_preds {op.shape} do not fit cls_probs {cp.shape}: '
                         f'expected ({B}, {4 * A})')
    kernel = _detection_kernel()
    if kernel is None:            # no Numba: the vectorised NumPy version
        out = _multibox_detection(cp, op.reshape(B, A, 4), anc[0], nms_threshold, threshold,
                                  clip, force_suppress, variances, nms_topk)
    else:
        out = _multibox_detection_loops(cp, op.reshape(B, A, 4), anc[0], nms_threshold,
                                        threshold, clip, force_suppress, variances, nms_topk,
                                        kernel)
    return like(out, cls_probs, share=True)


def _multibox_detection_loops(cp, off, anc, nms_threshold, threshold, clip, force_suppress,
                              variances, nms_topk, kernel=None):
    """:func:`_multibox_detection` as the loops of :func:`_detect_loops` (compiled by Numba
    as ``kernel``; ``None`` runs the same loops in Python: slow)."""
    f32 = onp.float32
    B, _, A = cp.shape
    out = onp.full((B, A, 6), -1, f32)
    with onp.errstate(divide='ignore', invalid='ignore'):   # 0 / 0 is no overlap, as compiled
        (kernel or _detect_loops)(
            onp.ascontiguousarray(cp, f32), onp.ascontiguousarray(off, f32),
            onp.ascontiguousarray(anc, f32), out, f32(threshold), 0 < nms_threshold <= 1,
            f32(nms_threshold), int(nms_topk), bool(clip), bool(force_suppress),
            onp.asarray(variances, f32))
    return out


def _detect_loops(cp, off, anc, out, threshold, do_nms, nms_threshold, nms_topk, clip,
                  force_suppress, v):
    """``multibox_detection`` as plain loops over images, rows and kept boxes (compiled by
    Numba: :func:`_detection_kernel`).

    ``cp`` (B, C + 1, A) class probabilities; ``off`` (B, A, 4); ``anc`` (A, 4); ``out``
    (B, A, 6) filled with -1, written in place. Float32 throughout, in the operator's order
    of operations.
    """
    f0, f1, f2 = onp.float32(0), onp.float32(1), onp.float32(2)
    B, C, A = cp.shape
    rows = onp.empty(A, onp.int64)
    score, cls = onp.empty(A, onp.float32), onp.empty(A, onp.float32)
    # The boxes kept so far, one coordinate per array (contiguous: the inner loop below
    # compiles to SIMD instructions).
    kx1, ky1, kx2, ky2, karea, kcls = [onp.empty(A, onp.float32) for _ in range(6)]
    for b in range(B):
        # Each anchor's best foreground class (the first, on ties) and its probability.
        score[:] = cp[b, 1]
        cls[:] = 0
        for c in range(2, C):
            for i in range(A):
                if cp[b, c, i] > score[i]:
                    score[i], cls[i] = cp[b, c, i], c - 1
        # The rows scoring at least `threshold`, in anchor order.
        n = 0
        for i in range(A):
            if score[i] >= threshold:
                rows[n] = i
                n += 1
        k = 0                     # rows taking part in NMS: the first k after sorting
        if do_nms:
            k = n if nms_topk <= 0 else min(n, nms_topk)
            # By decreasing score, ties in anchor order; beyond the top k the operator
            # leaves the unsorted rows (and suppresses them).
            order = onp.argsort(-score[rows[:n]], kind='mergesort')
            rows[:k] = rows[:n][order[:k]]
        for p in range(n):        # decode (offset_inverse) and clip
            i = rows[p]
            aw, ah = anc[i, 2] - anc[i, 0], anc[i, 3] - anc[i, 1]
            ax, ay = (anc[i, 0] + anc[i, 2]) / f2, (anc[i, 1] + anc[i, 3]) / f2
            ox = off[b, i, 0] * v[0] * aw + ax
            oy = off[b, i, 1] * v[1] * ah + ay
            ow = onp.exp(off[b, i, 2] * v[2]) * aw / f2
            oh = onp.exp(off[b, i, 3] * v[3]) * ah / f2
            o = out[b, p]
            o[0], o[1], o[2], o[3], o[4], o[5] = (cls[i], score[i],
                                                  ox - ow, oy - oh, ox + ow, oy + oh)
            if clip:
                for j in range(2, 6):
                    o[j] = min(max(o[j], f0), f1)
        # Greedy NMS, taken the other way round: a row is suppressed if a kept row (higher
        # in the order) of its class has IoU >= nms_threshold with it, else it is kept.
        # Same result as suppressing forward from each kept row (the operator's loop).
        nk = 0
        for q in range(k):
            c, x1, y1, x2, y2 = out[b, q, 0], out[b, q, 2], out[b, q, 3], out[b, q, 4], \
                out[b, q, 5]
            area = (x2 - x1) * (y2 - y1)
            hit = False
            for start in range(0, nk, 64):  # blocks of 64 without a branch, then test
                for j in range(start, min(start + 64, nk)):
                    iw = min(x2, kx2[j]) - max(x1, kx1[j])
                    ih = min(y2, ky2[j]) - max(y1, ky1[j])
                    inter = iw * ih
                    iou = inter / (area + karea[j] - inter)
                    hit |= (iw > f0) & (iou >= nms_threshold) & (
                        (kcls[j] == c) | force_suppress)
                if hit:
                    break
            if hit:
                out[b, q, 0] = -1
            else:
                kx1[nk], ky1[nk], kx2[nk], ky2[nk] = x1, y1, x2, y2
                karea[nk], kcls[nk] = area, c
                nk += 1
        if do_nms:
            for p in range(k, n):
                out[b, p, 0] = -1


_KERNEL = []


def _detection_kernel():
    """:func:`_detect_loops` compiled by Numba (once per process; cached on disk), or None
    without Numba."""
    if not _KERNEL:
        try:
            import numba
        except ImportError:
            _KERNEL.append(None)
        else:
            # error_model='numpy': x / 0 gives inf or nan (as NumPy and the operator), no
            # exception; no fastmath: float32 operations in the written order.
            _KERNEL.append(numba.njit(cache=True, error_model='numpy', nogil=True)(
                _detect_loops))
    return _KERNEL[0]


def _multibox_detection(cp, off, anc, nms_threshold, threshold, clip, force_suppress,
                        variances, nms_topk):
    B, _, A = cp.shape
    fg = cp[:, 1:, :]                                             # (B, C, A)
    score = fg.max(axis=1)                                        # (B, A)
    valid = score >= threshold
    nvalid = valid.sum(axis=1)                                    # (B,)
    S = int(nvalid.max()) if B else 0
    # Compact each image's valid rows to the front, in anchor order: (B, S) anchor indices.
    bi, ai = onp.nonzero(valid)
    pos = onp.arange(S)[None, :]
    live = pos < nvalid[:, None]                                  # (B, S)
    idx = onp.zeros((B, S), onp.int64)
    idx[live] = ai                                                # row-major, like nonzero
    bidx = onp.arange(B)[:, None]
    do_nms = 0 < nms_threshold <= 1
    if do_nms:
        # by decreasing score, ties in anchor order (a stable sort of the compacted rows)
        key = onp.where(live, -score[bidx, idx], onp.inf)
        order = onp.argsort(key, axis=1, kind='stable')
        nkeep = nvalid if nms_topk <= 0 else onp.minimum(nvalid, nms_topk)
        in_nms = pos < nkeep[:, None]
        # Beyond the top k the operator leaves the compacted, unsorted rows (marked -1).
        idx = onp.where(in_nms, onp.take_along_axis(idx, order, axis=1), idx)
    # Only the S rows per image that can appear in the output are decoded.
    cls = fg[bidx, :, idx].argmax(axis=-1).astype('float32')     # (B, S), first maximum
    boxes = _offset_inverse(anc[idx], off[bidx, idx], variances, clip)   # (B, S, 4)
    rows = onp.concatenate([cls[..., None], score[bidx, idx][..., None], boxes], axis=-1)
    if do_nms:
        c = None if force_suppress or cp.shape[1] == 2 else rows[..., 0]
        keep = _nms_sorted(rows[..., 2:], c, in_nms, nms_threshold)
        rows[..., 0] = onp.where(keep, rows[..., 0], -1)
    out = onp.full((B, A, 6), -1, 'float32')
    out[:, :S] = onp.where(live[..., None], rows, -1)
    return out


# ---------------------------------------------------------------------------------------
# 13.5 Multiscale anchors
def display_anchors(fmap_w, fmap_h, s, img=None, ratios=(1, 2, 0.5), ax=None, impl=None):
    """Draw the anchors of an ``fmap_h x fmap_w`` feature map (sizes ``s``) on ``img``.

    ``img`` (H, W, 3), default the cat-and-dog image ``img/catdog.jpg``. Returns the axes.
    """
    from .bbox import read_image, show_bboxes
    from .plot import plt, set_figsize
    if img is None:
        img = read_image('catdog.jpg')
    img = host(img, dtype=None)
    h, w = img.shape[:2]
    if ax is None:
        set_figsize()
        ax = plt.figure().gca()
        ax.imshow(img)
    else:
        ax.imshow(img)
    # The values of the first two dimensions do not affect the output.
    fmap = onp.zeros((1, 10, fmap_h, fmap_w), 'float32')
    anchors = multibox_prior(fmap, sizes=s, ratios=list(ratios), impl=impl)
    bbox_scale = onp.array((w, h, w, h), 'float32')
    show_bboxes(ax, anchors[0] * bbox_scale)
    return ax
