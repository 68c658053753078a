"""Section 13.8, region-based CNNs: RoI pooling (Fast R-CNN) and RoIAlign (Mask R-CNN).

``roi_pool`` is max pooling over a ``pooled_size`` grid of sub-windows of each region, as
``npx.roi_pooling``; ``roi_align`` averages bilinear samples instead, as
``mx.nd.contrib.ROIAlign``. Both take ``impl='d2lcv'`` (the vectorised NumPy version here,
the default) or ``impl='npx'`` (MXNet's operator), which compute the same thing.

A region is a row ``(batch_index, x1, y1, x2, y2)`` in image pixels; ``spatial_scale`` maps
them onto the feature map (the chapter's text calls column 0 the "object category": it is the
index of the image in the batch, see ERRATA).

Beyond the chapter's code, a Faster R-CNN and a Mask R-CNN head small enough to train on a
CPU next to TinySSD (13.7), each piece named after the paragraph of 13.8 it implements:

=============================  ============================================================
``RPNBody``                    13.8.2 step 1 (the CNN on the whole image: TinySSD's base
                               net + down-samplers) and 13.8.3 steps 1 and 3 (3x3 conv with
                               c channels, objectness and offsets per anchor), several scales
``rpn_targets``                13.8.3 step 2: anchors labelled object / background
                               (``multibox_target`` with every class set to 0)
``propose``                    13.8.3 step 4: decode + NMS (``multibox_detection``), the
                               best ``N`` boxes per image become the regions of interest
``label_proposals``            training labels of the proposals (class, offsets, instance)
``sample_proposals``           a fixed number of proposals per image, <= 25% positives
``roi_features``               13.8.2 step 2 / 13.8.4: RoIAlign (default) or RoI pooling
``BoxHead``                    13.8.2 steps 3 and 4: FC to ``n x d``, then ``n x (q+1)``
                               class scores and ``n x 4`` offsets
``decode_detections``          head outputs -> ``(B, N, 6)`` rows as ``multibox_detection``
``mask_head`` / ``mask_targets`` / ``paste_masks``   13.8.4: a small FCN on RoIAlign
                               features, its targets, and its masks pasted into the image
``TinyFasterRCNN``             the model (``mask=True``: with the mask head)
``train_faster_rcnn``          training on the bananas (either layout) or the mask twin
``detect`` / ``predict`` / ``display`` / ``evaluate_rcnn``   as 13.7
=============================  ============================================================

Every box is ``(x1, y1, x2, y2)`` in [0, 1] (the chapter's anchor convention), except RoI
rows, which are in pixels.
"""
import numpy as onp
from mxnet import autograd, gluon, init, np, npx
from mxnet.gluon import nn

from . import anchors as _anchors
from ._arrays import as_mx, host, like
from ._util import initialized
from .anchors import get_impl

__all__ = ['roi_pool', 'roi_align', 'RPN_SIZES', 'RPN_RATIOS', 'RPNBody', 'rpn_targets',
           'propose', 'label_proposals', 'sample_proposals', 'roi_features', 'BoxHead',
           'head_loss', 'decode_detections', 'mask_head', 'mask_targets', 'paste_masks',
           'TinyFasterRCNN', 'faster_rcnn_loss', 'train_faster_rcnn', 'detect', 'predict',
           'display', 'evaluate_rcnn', 'mask_iou', 'load_data_banana_masks']

_F32 = onp.float32


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
    return onp.where(x >= 0, onp.floor(x + _F32(0.5)), onp.ceil(x - _F32(0.5)))


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
        out = npx.roi_pooling(as_mx(X), as_mx(rois), pooled_size=(ph, pw),
                              spatial_scale=spatial_scale)
        return out if hasattr(X, 'asnumpy') else out.asnumpy()
    x, r = host(X), host(rois)
    _check(x, r)
    b = r[:, 0].astype(onp.int64)
    if ((b < 0) | (b >= x.shape[0])).any():
        i = int(onp.argmax((b < 0) | (b >= x.shape[0])))
        raise ValueError(f'rois[{i}] has batch index {r[i, 0]:g}, but X holds {x.shape[0]} '
                         'images')
    outs = [_roi_pool(x, r[s:s + chunk], ph, pw, _F32(spatial_scale))
            for s in range(0, max(len(r), 1), chunk)]
    return like(onp.concatenate(outs, axis=0), X)


def _pool_windows(start, length, pooled, size):
    """Sub-window masks ``(R, pooled, size)`` along one axis (float32, as the operator)."""
    bin_size = length.astype(_F32) / _F32(pooled)                       # (R,)
    i = onp.arange(pooled, dtype=_F32)
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
    return onp.where(onp.isneginf(out), 0, out).astype(_F32)


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
        data = X.as_nd_ndarray() if hasattr(X, 'as_nd_ndarray') else mx.nd.array(host(X))
        rr = rois.as_nd_ndarray() if hasattr(rois, 'as_nd_ndarray') else mx.nd.array(
            host(rois))
        out = mx.nd.contrib.ROIAlign(data, rr, pooled_size=(ph, pw),
                                     spatial_scale=spatial_scale, sample_ratio=sample_ratio,
                                     aligned=aligned)
        if not hasattr(X, 'asnumpy'):
            return out.asnumpy()
        from mxnet import np
        return out.as_np_ndarray() if isinstance(X, np.ndarray) else out
    x, r = host(X), host(rois)
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
    return like(out.astype(_F32), X)


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


# ----------------------------------------------------------------------------------------
# 13.8.3 Faster R-CNN: backbone and region proposal network
# ----------------------------------------------------------------------------------------

#: anchor sizes and ratios of the RPN's three scales (TinySSD's first three)
RPN_SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619]]
RPN_RATIOS = [[1, 2, 0.5]] * 3


class RPNBody(nn.HybridBlock):
    """The CNN on the whole image and the region proposal network, hybridizable.

    Scale 0 is TinySSD's ``base_net`` (stride 8, 64 channels), each further scale a ``down_sample_blk(128)``. On every scale a 3x3 conv with
    ``channels`` outputs and ReLU (13.8.3 step 1), then per anchor two scores (background,
    object) and four offsets (step 3), as TinySSD's ``cls_predictor(a, 1)`` and
    ``bbox_predictor(a)``.

    ``body(X)`` with ``X (B, 3, H, W)`` returns ``(rpn_cls (B, A, 2), rpn_box (B, 4A),
    feat_0 (B, 64, H/8, W/8), feat_1 (B, 128, H/16, W/16), ..., fine (B, 32, H/4, W/4))``;
    ``fine`` is the output of the base net's second block, the finer map the RoI heads
    sample (a banana of 20 pixels spans 2.5 cells at stride 8: too few for its crescent).
    """

    def __init__(self, num_scales=3, num_anchors=4, channels=64, **kwargs):
        super().__init__(**kwargs)
        from .ssd import base_net, bbox_predictor, cls_predictor, down_sample_blk
        self.num_scales = num_scales
        with self.name_scope():
            for i in range(num_scales):
                setattr(self, f'blk_{i}', base_net() if i == 0 else down_sample_blk(128))
                setattr(self, f'conv_{i}', nn.Conv2D(channels, 3, padding=1,
                                                     activation='relu'))
                setattr(self, f'cls_{i}', cls_predictor(num_anchors, 1))
                setattr(self, f'box_{i}', bbox_predictor(num_anchors))

    def hybrid_forward(self, F, X):
        from .ssd import concat_preds
        feats, cls_preds, box_preds = [], [], []
        for i in range(self.num_scales):
            if i == 0:
                X = self.blk_0[1](self.blk_0[0](X))
                fine = X
                X = self.blk_0[2](X)
            else:
                X = getattr(self, f'blk_{i}')(X)
            feats.append(X)
            Y = getattr(self, f'conv_{i}')(X)
            cls_preds.append(getattr(self, f'cls_{i}')(Y))
            box_preds.append(getattr(self, f'box_{i}')(Y))
        rpn_cls = F.npx.reshape(concat_preds(cls_preds, F), (-2, -1, 2))
        return (rpn_cls, concat_preds(box_preds, F)) + tuple(feats) + (fine,)


def rpn_targets(anchors, labels, overlap_threshold=0.5):
    """13.8.3 step 2: label every anchor "object" or "background" and with offsets.

    ``anchors (1, A, 4)``, ``labels (B, M, 5)`` (class -1 rows are padding) ->
    ``(bbox_labels (B, 4A), bbox_masks (B, 4A), cls_labels (B, A))``: exactly
    ``multibox_target`` on the labels with every class set to 0, so ``cls_labels`` is 1 for
    an object, 0 for background. (Faster R-CNN's paper also ignores anchors with IoU between
    0.3 and 0.7; the chapter's labelling has no ignore band, and the tests pin that this is
    the chapter's.)
    """
    cls = labels[:, :, :1]
    objectness = np.concatenate([np.minimum(cls, 0), labels[:, :, 1:]], axis=-1)
    return _anchors.multibox_target(anchors, objectness, overlap_threshold=overlap_threshold)


def propose(rpn_cls, rpn_box, anchors, num_proposals, nms_threshold=0.7, pre_nms_top_k=-1):
    """13.8.3 step 4: decode the RPN's offsets, suppress overlaps, keep the best boxes.

    ``rpn_cls (B, A, 2)`` logits, ``rpn_box (B, 4A)``, ``anchors (1, A, 4)`` ->
    ``(boxes (B, N, 4), scores (B, N))`` host NumPy arrays, ``N = num_proposals``: one
    ``multibox_detection`` call (objectness as the only class, corners clipped to [0, 1],
    NMS at ``nms_threshold`` among the ``pre_nms_top_k`` best), then per image the kept
    boxes by decreasing objectness; if fewer than ``N`` survive NMS, the best suppressed
    ones fill the list (so every image has ``N`` regions and the batch stays rectangular).
    """
    probs = npx.softmax(rpn_cls).transpose(0, 2, 1)                  # (B, 2, A)
    out = host(_anchors.multibox_detection(probs, rpn_box, anchors,
                                            nms_threshold=nms_threshold, threshold=0.0,
                                            clip=True, nms_topk=pre_nms_top_k))   # (B, A, 6)
    # kept rows first; both groups stay in multibox_detection's score order
    order = onp.argsort(out[..., 0] < 0, axis=1, kind='stable')[:, :num_proposals]
    rows = onp.take_along_axis(out, order[..., None], axis=1)         # (B, N, 6)
    return rows[..., 2:], rows[..., 1]


# ----------------------------------------------------------------------------------------
# Training labels of the proposals
# ----------------------------------------------------------------------------------------

def label_proposals(proposals, labels, iou_threshold=0.5, add_ground_truth=True):
    """Class, offsets and instance of every proposal (the targets of 13.8.2 step 4).

    Parameters
    ----------
    proposals : (B, N, 4) boxes in [0, 1]. labels : (B, M, 5), class -1 rows are padding.
    add_ground_truth : append the ground-truth boxes to the proposals (early in training the
        RPN proposes little that overlaps an object; the true boxes give the head positives).

    Returns
    -------
    boxes (B, S, 4), classes (B, S) (0 background, ``c + 1`` for class c), offsets
    (B, S, 4) (of the matched box, the chapter's encoding; 0 for background), gt_index
    (B, S) (the matched label row, -1 for background) and valid (B, S) bool (False for the
    appended padding rows); ``S = N + M`` with ``add_ground_truth``, else ``N``. A proposal
    is positive when its best IoU with a box is >= ``iou_threshold``.
    """
    props, lab = host(proposals), host(labels)
    B, N = props.shape[:2]
    gt_ok = lab[..., 0] >= 0                                          # (B, M)
    if add_ground_truth:
        boxes = onp.concatenate([props, onp.where(gt_ok[..., None], lab[..., 1:], 0)], 1)
        valid = onp.concatenate([onp.ones((B, N), bool), gt_ok], 1)
    else:
        boxes, valid = props, onp.ones((B, N), bool)
    S, M = boxes.shape[1], lab.shape[1]
    classes = onp.zeros((B, S), onp.float32)
    offsets = onp.zeros((B, S, 4), onp.float32)
    gt_index = onp.full((B, S), -1, onp.int64)
    if M == 0:
        return boxes, classes, offsets, gt_index, valid
    iou = host(_anchors.box_iou(boxes, onp.where(gt_ok[..., None], lab[..., 1:], 0)))
    iou = onp.where(gt_ok[:, None, :], iou, -1)                       # (B, S, M)
    best = iou.argmax(axis=-1)
    pos = (iou.max(axis=-1) >= iou_threshold) & valid
    bi, si = onp.nonzero(pos)
    matched = lab[bi, best[bi, si]]                                   # (P, 5)
    classes[bi, si] = matched[:, 0] + 1
    # only positives are encoded: background proposals may have no area
    offsets[bi, si] = host(_anchors.offset_boxes(boxes[bi, si], matched[:, 1:]))
    gt_index[bi, si] = best[bi, si]
    return boxes, classes, offsets, gt_index, valid


def sample_proposals(classes, valid, num_samples, positive_fraction=0.25, rng=None):
    """Choose ``num_samples`` proposals per image: at most ``positive_fraction`` positives,
    the rest background, each group drawn at random (Fast R-CNN's mini-batch sampling).

    ``classes (B, S)`` (0 = background), ``valid (B, S)`` -> ``(index (B, K), weight (B,
    K))`` with ``K = min(num_samples, S)``: indices into ``S`` and 1.0 for a sampled
    proposal, 0.0 where an image had too few (such slots point at a discarded proposal).
    """
    rng = rng if rng is not None else onp.random.default_rng()
    B, S = classes.shape
    K = min(num_samples, S)
    key = rng.random((B, S))                                          # in [0, 1)
    pos = (classes > 0) & valid
    # random rank of each positive among its image's positives
    pos_rank = onp.argsort(onp.argsort(onp.where(pos, key, 2.0), axis=1), axis=1)
    max_pos = int(round(K * positive_fraction))
    # group 0: kept positives, 1: background, 2: unusable; the key orders within a group
    group = onp.where(pos & (pos_rank < max_pos), 0, onp.where(valid & ~pos, 1, 2))
    index = onp.argsort(group + key, axis=1)[:, :K]
    weight = (onp.take_along_axis(group, index, axis=1) < 2).astype(onp.float32)
    return index, weight


# ----------------------------------------------------------------------------------------
# 13.8.2 / 13.8.4: features of each region, and the heads
# ----------------------------------------------------------------------------------------

def _rois(boxes, image_size, ctx):
    """``boxes (B, S, 4)`` in [0, 1] -> RoI rows ``(B*S, 5)`` ``(b, x1, y1, x2, y2)`` in pixels."""
    b = host(boxes)
    B, S = b.shape[:2]
    H, W = image_size
    px = b.reshape(-1, 4) * onp.array([W, H, W, H], onp.float32)
    rows = onp.concatenate([onp.repeat(onp.arange(B, dtype=onp.float32), S)[:, None], px], 1)
    return np.array(rows, ctx=ctx)


def roi_features(feat, boxes, image_size, pooled_size, method='align', sample_ratio=2):
    """The regions' features, all of one shape: ``(B, C, h, w)`` and ``boxes (B, S, 4)`` in
    [0, 1] of an ``image_size = (H, W)`` image -> ``(B*S, C, ph, pw)``, row ``b * S + s``.

    ``method='align'``: RoIAlign (13.8.4, bilinear, ``sample_ratio`` samples per bin side);
    ``'pool'``: RoI pooling (13.8.2). MXNet's operators (``impl='npx'`` of :func:`roi_align`
    / :func:`roi_pool`) run here, on ``feat``'s device and with gradients.
    """
    H, W = image_size
    scale = feat.shape[2] / H
    if abs(feat.shape[3] / W - scale) > 1e-6:
        raise ValueError(f'feature map {feat.shape[2:]} and image {(H, W)} must have the same '
                         'stride along both axes')
    rois = _rois(boxes, image_size, feat.ctx)
    if method == 'align':
        return roi_align(feat, rois, pooled_size, scale, sample_ratio=sample_ratio,
                         impl='npx')
    if method == 'pool':
        return roi_pool(feat, rois, pooled_size, scale, impl='npx')
    raise ValueError(f"method must be 'align' or 'pool', got {method!r}")


class BoxHead(nn.HybridBlock):
    """13.8.2 steps 3 and 4: fully connected layers turn each region's ``(c, h2, w2)``
    features into ``d`` values, then into ``q + 1`` class scores and 4 box offsets.

    ``head(Z)`` with ``Z (n, c, h2, w2)`` returns ``(scores (n, q+1), offsets (n, 4))``; the
    offsets (one set for every class) are relative to the region, in the chapter's encoding.
    """

    def __init__(self, num_classes, hidden=128, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.fc1 = nn.Dense(hidden, activation='relu')
            self.fc2 = nn.Dense(hidden, activation='relu')
            self.cls = nn.Dense(num_classes + 1)
            self.box = nn.Dense(4)

    def hybrid_forward(self, F, Z):
        Y = self.fc2(self.fc1(Z))
        return self.cls(Y), self.box(Y)


def head_loss(cls_preds, box_preds, classes, offsets, weights):
    """Loss of the box head per image, ``(B,)``.

    ``cls_preds (B, K, q+1)``, ``box_preds (B, K, 4)``, ``classes (B, K)``, ``offsets (B, K,
    4)``, ``weights (B, K)`` (1 for a sampled region): cross-entropy over the sampled
    regions plus smooth L1 on the positives' offsets, both divided by the number sampled.
    """
    ce = -npx.pick(npx.log_softmax(cls_preds, axis=-1), classes, axis=-1) * weights
    pos = (classes > 0).astype(weights.dtype) * weights
    box = npx.smooth_l1(box_preds - offsets, scalar=1.0).sum(axis=-1) * pos
    n = np.maximum(weights.sum(axis=1), 1)
    return (ce.sum(axis=1) + box.sum(axis=1)) / n


def decode_detections(cls_probs, box_preds, proposals, nms_threshold=0.5, threshold=0.01):
    """Head outputs -> detections, in ``multibox_detection``'s format.

    ``cls_probs (B, N, q+1)``, ``box_preds (B, N, 4)``, ``proposals (B, N, 4)`` -> ``(B, N,
    6)`` rows ``(class, score, x1, y1, x2, y2)``: per image the kept detections by
    decreasing score, then rows of -1. One ``multibox_detection`` call serves the whole
    batch: its anchors are the ``B * N`` proposals, and image ``b``'s class ``c`` becomes
    class ``b * q + c``, so per-class NMS never lets two images suppress each other.
    """
    p, off, props = host(cls_probs), host(box_preds), host(proposals)
    B, N, Q = p.shape
    q = Q - 1
    probs = onp.zeros((1, 1 + B * q, B * N), onp.float32)
    probs[0, 0] = p[..., 0].ravel()
    cols = 1 + onp.repeat(onp.arange(B), N)[:, None] * q + onp.arange(q)[None]   # (B*N, q)
    probs[0, cols, onp.arange(B * N)[:, None]] = p[..., 1:].reshape(B * N, q)
    out = host(_anchors.multibox_detection(probs, off.reshape(1, -1), props.reshape(1, -1, 4),
                                            nms_threshold=nms_threshold,
                                            threshold=threshold))[0]   # (B*N, 6)
    kept = out[out[:, 0] >= 0]                                        # by decreasing score
    img = (kept[:, 0] // q).astype(onp.int64)
    kept[:, 0] = kept[:, 0] % q
    order = onp.argsort(img, kind='stable')
    img, kept = img[order], kept[order]
    slot = onp.arange(len(img)) - onp.searchsorted(img, img)         # rank within its image
    det = onp.full((B, N, 6), -1, onp.float32)
    det[img, slot] = kept
    return det


def mask_head(num_classes, channels=64):
    """13.8.4: a small fully convolutional network on RoIAlign features.

    ``(n, c, m, m) -> (n, q, 2m, 2m)`` mask logits, one plane per class: two 3x3 convs, a
    2x transposed convolution (13.10), a 1x1 conv.
    """
    net = nn.HybridSequential()
    net.add(nn.Conv2D(channels, 3, padding=1, activation='relu'),
            nn.Conv2D(channels, 3, padding=1, activation='relu'),
            nn.Conv2DTranspose(channels, 2, strides=2, activation='relu'),
            nn.Conv2D(num_classes, 1))
    return net


def mask_targets(gt_masks, boxes, gt_index, batch_index, size):
    """Each positive region's instance mask, resampled into the region's grid.

    ``gt_masks (B, M, H, W)`` 0/1 on a device, ``boxes (P, 4)`` in [0, 1], ``gt_index (P,)``
    and ``batch_index (P,)`` (which image and which of its instances) -> ``(P, mh, mw)`` 0/1
    targets: RoIAlign of the masks at scale 1 with ``aligned=True`` (pixel ``i`` covers
    ``[i, i + 1)``, as :func:`paste_masks` assumes), thresholded at 0.5. Positive regions
    overlap a box, so they have an area (the operator aborts on an empty aligned region).
    """
    B, M, H, W = gt_masks.shape
    px = host(boxes).reshape(-1, 4) * onp.array([W, H, W, H], onp.float32)
    rois = np.array(onp.concatenate([host(batch_index)[:, None], px], 1), ctx=gt_masks.ctx)
    out = roi_align(gt_masks, rois, size, 1.0, sample_ratio=2, aligned=True,
                    impl='npx')                                       # (P, M, mh, mw)
    onehot = npx.one_hot(np.array(host(gt_index), ctx=gt_masks.ctx), M)
    return ((out * onehot[:, :, None, None]).sum(axis=1) >= 0.5).astype('float32')


def paste_masks(masks, boxes, image_size):
    """Masks in their boxes' frames -> image masks.

    ``masks (K, m, m)`` (probabilities), ``boxes (K, 4)`` in [0, 1] -> ``(K, H, W)``: each
    pixel centre inside a box samples its mask bilinearly, pixels outside get 0. Separable:
    ``Wy (K, H, m) @ mask @ Wx (K, m, W)``.
    """
    m, b = host(masks), host(boxes)
    H, W = image_size
    wy = _paste_weights(b[:, 1] * H, b[:, 3] * H, m.shape[1], H)
    wx = _paste_weights(b[:, 0] * W, b[:, 2] * W, m.shape[2], W)
    return wy @ m @ wx.transpose(0, 2, 1)


def _paste_weights(lo, hi, m, size):
    """``(K, size, m)``: interpolation weights of each pixel centre on the box's ``m`` cells."""
    c = onp.arange(size, dtype=onp.float32) + 0.5                    # pixel centres
    u = (c[None] - lo[:, None]) / onp.maximum(hi - lo, 1e-6)[:, None] * m - 0.5
    inside = (c[None] >= lo[:, None]) & (c[None] < hi[:, None])      # (K, size)
    u = onp.clip(u, 0, m - 1)
    i0 = onp.floor(u).astype(onp.int64)
    i1 = onp.minimum(i0 + 1, m - 1)
    f = (u - i0)[..., None]
    cells = onp.arange(m)
    w = (cells == i0[..., None]) * (1 - f) + (cells == i1[..., None]) * f
    return (w * inside[..., None]).astype(onp.float32)


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------

class TinyFasterRCNN(nn.Block):
    """A Faster R-CNN as small as TinySSD (``mask=True``: with a Mask R-CNN head).

    Parameters
    ----------
    num_classes : q object classes. sizes, ratios : anchors per scale (default
        :data:`RPN_SIZES`, :data:`RPN_RATIOS`; one scale per list entry).
    roi : ``'align'`` (RoIAlign) or ``'pool'`` (RoI pooling). roi_size : ``(h2, w2)`` of the
        box head's features. num_proposals : ``(training, prediction)`` regions per image.
    rpn_nms : NMS threshold of the proposals, among the ``pre_nms_top_k`` best anchors
        (NMS runs on the host: this bounds its cost at the chapter's 256x256, 5376
        anchors). num_samples, positive_fraction : regions per
        image that train the box head (:func:`sample_proposals`). fg_iou : IoU that makes
        a proposal positive. mask : add :func:`mask_head` on ``mask_size`` RoIAlign
        features (masks of ``2 * mask_size`` cells). box_map : the map the box head
        samples: ``'fine'`` (stride 4, 32 channels, also the mask head's; the default: at
        64x64 a banana spans 2-3 cells of the stride-8 map, and bench_rcnn.py measured
        mAP@0.5 0.86 against 0.71 with it) or ``'coarse'`` (stride 8, 64 channels, the map
        the RPN's first scale sees, as in the original single-map Faster R-CNN).

    ``net(X)`` with ``X (B, 3, H, W)`` (H, W multiples of 8 * 2^(scales-1)) returns the
    detections ``(B, N, 6)`` of :func:`detect`. The stages are also methods:
    ``net.rpn(X) -> (anchors (1, A, 4), rpn_cls (B, A, 2), rpn_box (B, 4A), feat (B, 64,
    H/8, W/8), fine (B, 32, H/4, W/4))`` (``fine`` feeds the mask head, and the box head
    unless ``box_map='coarse'``); ``net.box_head``, ``net.mask_head``.
    """

    def __init__(self, num_classes, sizes=None, ratios=None, roi='align', roi_size=(4, 4),
                 num_proposals=(32, 16), rpn_nms=0.7, pre_nms_top_k=300, num_samples=32,
                 positive_fraction=0.25, fg_iou=0.5, mask=False, mask_size=(7, 7),
                 box_map='fine', **kwargs):
        super().__init__(**kwargs)
        from .ssd import SSDLoss
        self.num_classes = num_classes
        self.sizes = [list(s) for s in (sizes or RPN_SIZES)]
        self.ratios = [list(r) for r in (ratios or RPN_RATIOS)]
        num_anchors = len(self.sizes[0]) + len(self.ratios[0]) - 1
        self.roi, self.roi_size = roi, tuple(roi_size)
        self.num_proposals, self.rpn_nms = tuple(num_proposals), rpn_nms
        self.pre_nms_top_k = pre_nms_top_k
        self.num_samples, self.positive_fraction = num_samples, positive_fraction
        self.fg_iou, self.mask, self.mask_size = fg_iou, mask, tuple(mask_size)
        if box_map not in ('coarse', 'fine'):
            raise ValueError(f"box_map must be 'coarse' or 'fine', got {box_map!r}")
        self.box_map = box_map
        # the RPN is a one-class SSD: the SSD loss with the exercises' options
        self.rpn_loss = SSDLoss(box='smooth_l1', negative_ratio=3, normalize='positives')
        self._anchor_cache = {}
        with self.name_scope():
            self.body = RPNBody(len(self.sizes), num_anchors)
            self.box_head = BoxHead(num_classes)
            self.mask_head = mask_head(num_classes) if mask else None

    def anchors_for(self, feats):
        """Anchors ``(1, A, 4)`` of the feature maps (cached by shapes and device)."""
        key = (tuple(f.shape[2:] for f in feats), str(feats[0].ctx))
        if key not in self._anchor_cache:
            self._anchor_cache[key] = np.concatenate(
                [np.array(host(_anchors.multibox_prior(f, s, r)), ctx=f.ctx)
                 for f, s, r in zip(feats, self.sizes, self.ratios)], axis=1)
        return self._anchor_cache[key]

    def rpn(self, X):
        """``X (B, 3, H, W)`` -> ``(anchors (1, A, 4), rpn_cls (B, A, 2), rpn_box (B, 4A),
        feat (B, 64, H/8, W/8), fine (B, 32, H/4, W/4))``."""
        rpn_cls, rpn_box, *feats, fine = self.body(X)
        return self.anchors_for(feats), rpn_cls, rpn_box, feats[0], fine

    def proposals(self, X, num_proposals=None):
        """The regions the RPN proposes at prediction: ``(boxes (B, N, 4), scores (B, N))``."""
        anchors, rpn_cls, rpn_box, _, _ = self.rpn(X)
        return propose(rpn_cls, rpn_box, anchors, num_proposals or self.num_proposals[1],
                       self.rpn_nms, self.pre_nms_top_k)

    def forward(self, X):
        return detect(self, X)[0]


def faster_rcnn_loss(net, X, Y, masks=None, rng=None):
    """One forward pass for training: ``(loss (B,), metric sums)``.

    ``X (B, 3, H, W)``, ``Y (B, M, 5)``, ``masks (B, M, H, W)`` or None. The loss per image
    is RPN loss + box-head loss (+ the mean mask loss of the batch's positive regions).
    Metric sums (device scalars): RPN loss, head loss, mask loss, correctly classified
    sampled regions, sampled regions, positive regions.
    """
    anchors, rpn_cls, rpn_box, feat, fine = net.rpn(X)
    B = X.shape[0]
    ctx = X.ctx
    with autograd.pause():
        rpn_box_labels, rpn_box_masks, rpn_cls_labels = rpn_targets(anchors, Y)
        props, _ = propose(rpn_cls, rpn_box, anchors, net.num_proposals[0], net.rpn_nms,
                           net.pre_nms_top_k)
        boxes, classes, offsets, gt_index, valid = label_proposals(props, Y, net.fg_iou)
        idx, weight = sample_proposals(classes, valid, net.num_samples,
                                       net.positive_fraction, rng)
        boxes, classes, offsets, gt_index = (_gather(a, idx)
                                             for a in (boxes, classes, offsets, gt_index))
    l_rpn = net.rpn_loss(rpn_cls, rpn_cls_labels, rpn_box, rpn_box_labels, rpn_box_masks)
    K = boxes.shape[1]
    Z = roi_features(fine if net.box_map == 'fine' else feat, boxes, X.shape[2:],
                     net.roi_size, net.roi)
    cls_preds, box_preds = net.box_head(Z)
    cls_preds = cls_preds.reshape(B, K, -1)
    cls_t, w_t = np.array(classes, ctx=ctx), np.array(weight, ctx=ctx)
    l_head = head_loss(cls_preds, box_preds.reshape(B, K, 4), cls_t,
                       np.array(offsets, ctx=ctx), w_t)
    loss = l_rpn + l_head
    l_mask = np.zeros((), ctx=ctx)
    if net.mask_head is not None and masks is not None:
        pos = (classes > 0) & (weight > 0)
        bi, ki = onp.nonzero(pos)
        if len(bi):
            targets = mask_targets(masks, boxes[bi, ki], gt_index[bi, ki], bi,
                                   tuple(2 * s for s in net.mask_size))
            Zm = _mask_features(net, fine, boxes[bi, ki], bi, X.shape[2:])
            logits = net.mask_head(Zm)                                # (P, q, mh, mw)
            onehot = npx.one_hot(np.array(classes[bi, ki] - 1, ctx=ctx), net.num_classes)
            logits = (logits * onehot[:, :, None, None]).sum(axis=1)
            l_mask = _bce(logits, targets).mean()
            loss = loss + l_mask
    correct = ((cls_preds.argmax(axis=-1).astype('float32') == cls_t) * w_t).sum()
    sums = (l_rpn.sum(), l_head.sum(), l_mask * B, correct, w_t.sum(),
            float(((classes > 0) & (weight > 0)).sum()))
    return loss, sums


_bce = gluon.loss.SigmoidBinaryCrossEntropyLoss()


def _gather(a, idx):
    """``a (B, S, ...)`` at ``idx (B, K)`` along axis 1 -> ``(B, K, ...)``."""
    return onp.take_along_axis(a, idx.reshape(idx.shape + (1,) * (a.ndim - 2)), axis=1)


def _mask_features(net, feat, boxes, batch_index, image_size):
    """RoIAlign features ``(P, C, m, m)`` of regions ``boxes (P, 4)`` in images
    ``batch_index (P,)``, for the mask head."""
    H, W = image_size
    px = host(boxes).reshape(-1, 4) * onp.array([W, H, W, H], onp.float32)
    rois = np.array(onp.concatenate([onp.asarray(batch_index, onp.float32)[:, None], px], 1),
                    ctx=feat.ctx)
    return roi_align(feat, rois, net.mask_size, feat.shape[2] / H, sample_ratio=2, impl='npx')


# ----------------------------------------------------------------------------------------
# Prediction
# ----------------------------------------------------------------------------------------

def _net_device(net):
    return list(net.collect_params().values())[0].list_ctx()[0]


def detect(net, X, device=None, nms_threshold=0.5, threshold=0.01):
    """Detections (and masks) for a batch ``X (B, 3, H, W)``.

    Returns ``(detections (B, N, 6), masks)`` as host NumPy arrays: rows ``(class, score,
    x1, y1, x2, y2)`` (corners in [0, 1]) per image by decreasing score, then rows of -1
    (:func:`decode_detections`); ``masks (B, N, H, W)`` probabilities pasted into the image
    for a model with a mask head (zeros on the -1 rows), else None.
    """
    device = device or _net_device(net)
    X = X.as_in_ctx(device)
    B, _, H, W = X.shape
    anchors, rpn_cls, rpn_box, feat, fine = net.rpn(X)
    props, _ = propose(rpn_cls, rpn_box, anchors, net.num_proposals[1], net.rpn_nms,
                       net.pre_nms_top_k)
    cls_preds, box_preds = net.box_head(roi_features(fine if net.box_map == 'fine' else feat,
                                                     props, (H, W), net.roi_size, net.roi))
    N = props.shape[1]
    det = decode_detections(npx.softmax(cls_preds).reshape(B, N, -1),
                            box_preds.reshape(B, N, 4), props, nms_threshold, threshold)
    if net.mask_head is None:
        return det, None
    bi, ni = onp.nonzero(det[..., 0] >= 0)
    masks = onp.zeros((B, N, H, W), onp.float32)
    if len(bi):
        logits = net.mask_head(_mask_features(net, fine, det[bi, ni, 2:], bi, (H, W)))
        probs = npx.sigmoid(logits).asnumpy()                         # (P, q, mh, mw)
        probs = probs[onp.arange(len(bi)), det[bi, ni, 0].astype(onp.int64)]
        masks[bi, ni] = paste_masks(probs, det[bi, ni, 2:], (H, W))
    return det, masks


def predict(X, net, device=None, nms_threshold=0.5):
    """The chapter's ``predict`` (13.7) for this model: the kept detections of the first
    image, ``(k, 6)`` rows by decreasing score (and, with a mask head, their masks ``(k, H,
    W)``: then a pair ``(rows, masks)``)."""
    det, masks = detect(net, X[:1], device, nms_threshold)
    keep = det[0, :, 0] >= 0
    return det[0, keep] if masks is None else (det[0, keep], masks[0, keep])


def display(img, output, threshold, ax=None, masks=None):
    """As 13.7's ``display`` (boxes of ``output (k, 6)`` scoring >= ``threshold`` on ``img
    (H, W, 3)``), with ``masks (k, H, W)`` drawn over the image where >= 0.5."""
    from .ssd import display as show_boxes
    ax = show_boxes(img, output, threshold, ax)
    if masks is not None:
        out = host(output)
        m = onp.asarray(masks)[out[:, 1] >= threshold] >= 0.5
        if len(m):
            overlay = onp.zeros(m.shape[1:] + (4,), onp.float32)
            overlay[m.any(axis=0)] = (0.1, 0.4, 1.0, 0.55)
            ax.imshow(overlay)
    return ax


def mask_iou(pred, true):
    """IoU of binary masks, pairwise along the leading axes: ``(..., H, W)`` twice ->
    ``(...)``; 0 where both are empty."""
    pred, true = onp.asarray(pred, bool), onp.asarray(true, bool)
    inter = (pred & true).sum(axis=(-2, -1))
    union = (pred | true).sum(axis=(-2, -1))
    return onp.where(union > 0, inter / onp.maximum(union, 1), 0.0)


def _match_masks(det, masks, labels, gt_masks):
    """Per ground-truth instance: the mask IoU of the best-scoring detection whose box has
    IoU >= 0.5 with it (0 if none), and that of the detection's filled box (the baseline).
    Shapes ``det (B, N, 6)``, ``masks (B, N, H, W)``, ``labels (B, M, 5)``, ``gt_masks (B,
    M, H, W)`` -> two ``(number of instances,)`` arrays."""
    B, N, H, W = masks.shape
    iou = _anchors.box_iou(labels[..., 1:], det[..., 2:], dtype='float64')  # (B, M, N)
    ok = (iou >= 0.5) & (det[:, None, :, 0] == labels[..., :1]) & (labels[..., :1] >= 0)
    first = ok.argmax(axis=-1)                                        # rows are by score
    found = ok.any(axis=-1)                                           # (B, M)
    b = onp.arange(B)[:, None]
    pred = masks[b, first] >= 0.5                                     # (B, M, H, W)
    boxes = det[b, first, 2:]                                         # (B, M, 4)
    cy = (onp.arange(H) + 0.5) / H
    cx = (onp.arange(W) + 0.5) / W
    filled = ((cy[:, None] >= boxes[..., 1, None, None]) & (cy[:, None] < boxes[..., 3, None, None])
              & (cx[None] >= boxes[..., 0, None, None]) & (cx[None] < boxes[..., 2, None, None]))
    valid = labels[..., 0] >= 0
    ours = onp.where(found, mask_iou(pred, gt_masks), 0.0)[valid]
    base = onp.where(found, mask_iou(filled, gt_masks), 0.0)[valid]
    return ours, base


def _unpack(batch):
    """``(X, Y, masks or None, pad)`` from an ``ImageDetIter`` batch or a DataLoader tuple."""
    if hasattr(batch, 'data') and hasattr(batch, 'label'):
        return batch.data[0], batch.label[0], None, batch.pad or 0
    return batch[0], batch[1], (batch[2] if len(batch) > 2 else None), 0


def evaluate_rcnn(net, data_iter, devices=None, nms_threshold=0.5, max_batches=None,
                  iou_thresholds=None, interpolation='coco'):
    """Detect on every batch and score: :func:`mean_average_precision`'s dict (``map50``,
    ``map`` = mAP@0.5:0.95, ...), plus, when the batches carry masks and the model has a
    mask head, ``mask_iou`` (mean over true instances of the mask IoU of its best-scoring
    detection with box IoU >= 0.5, 0 if missed) and ``mask_iou_box`` (the same detections'
    filled boxes as masks: the trivial baseline)."""
    from .detection_metrics import mean_average_precision
    from .devices import resolve_devices
    device = resolve_devices(devices)[0]
    dets, labels, ours, base = [], [], [], []
    if hasattr(data_iter, 'reset'):
        data_iter.reset()
    for i, batch in enumerate(data_iter):
        if max_batches and i >= max_batches:
            break
        X, Y, M, pad = _unpack(batch)
        keep = X.shape[0] - pad
        det, masks = detect(net, X, device, nms_threshold)
        lab = host(Y)[:keep]
        dets.append(det[:keep])
        labels.append(lab)
        if M is not None and masks is not None:
            o, b = _match_masks(det[:keep], masks[:keep], lab, host(M)[:keep])
            ours.append(o)
            base.append(b)
    m = max(l.shape[1] for l in labels)
    labels = [onp.concatenate([l, -onp.ones((l.shape[0], m - l.shape[1], 5), l.dtype)], 1)
              for l in labels]
    result = mean_average_precision(onp.concatenate(dets), onp.concatenate(labels),
                                    iou_thresholds=iou_thresholds, interpolation=interpolation)
    if ours:
        result['mask_iou'] = float(onp.concatenate(ours).mean())
        result['mask_iou_box'] = float(onp.concatenate(base).mean())
    return result


def load_data_banana_masks(batch_size, data_dir=None, **sizes):
    """The bananas-with-masks twin (:mod:`d2lcv.synth.banana_masks`) as two DataLoaders.

    Batches are ``(X (B, 3, H, W) float32 in [0, 255], Y (B, m, 5), masks (B, m, H, W))``;
    training shuffled, validation in order. ``data_dir``: the ``banana-masks`` folder
    (default: the twin, generated on first use with ``sizes``: ``num_train``,
    ``num_val``, ``edge``, ``max_objects``).
    """
    import os

    from .hub import data_dir as data_dir_
    from .hub import synth_twin
    from .synth.banana_masks import read_banana_masks
    if data_dir is None:
        # one folder per size, so that a smaller twin never stands in for a larger one
        name = '-'.join(['banana-masks'] + [f'{k}{v}' for k, v in sorted(sizes.items())])
        data_dir = synth_twin('banana-masks', root=os.path.join(data_dir_(), 'tiny', name),
                              **sizes)
    loaders = []
    for split in ('train', 'val'):
        images, labels, masks = read_banana_masks(os.path.join(data_dir, f'bananas_{split}'))
        ds = gluon.data.ArrayDataset(images.transpose(0, 3, 1, 2).astype(onp.float32), labels,
                                     masks)
        loaders.append(gluon.data.DataLoader(ds, batch_size, shuffle=split == 'train',
                                             last_batch='keep'))
    return tuple(loaders)


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------

def train_faster_rcnn(net, train_iter, num_epochs, trainer=None, devices=None, val_iter=None,
                      lr=1e-3, wd=5e-4, *, optimizer='adam', hybridize=True, map_every=None,
                      animator=None, save_path=None, verbose=True, max_batches=None, seed=0):
    """Train a :class:`TinyFasterRCNN` end to end (RPN and heads together, as 13.8.3 says).

    ``train_iter`` yields bananas batches of either layout (``load_data_bananas``'s
    ``ImageDetIter`` or ``load_data_bananas_csv``'s DataLoader: ``X (B, 3, H, W)``, ``Y (B,
    m, 5)``) or the mask twin's ``(X, Y, masks (B, m, H, W))``
    (:func:`load_data_banana_masks`), which also trains the mask head. The loop is
    ``train_ssd``'s: Xavier init on ``devices`` if needed, the batch split across
    ``devices``, Adam (lr 1e-3, ``optimizer`` and ``trainer`` as there), metric sums kept
    on the device and read once an epoch, ``examples/sec`` over the training loop, the
    validation mAP@0.5 every ``map_every`` epochs (default: after the last), an Animator.

    Returns a dict: ``rpn_loss``, ``head_loss``, ``mask_loss``, ``head_err`` (class error of
    the sampled regions), all of the last epoch, ``examples_per_sec``, ``seconds``,
    ``epochs``, ``val_map``, ``map_history``, ``loss_history`` (total loss per image per
    epoch), ``mask_iou`` / ``mask_iou_box`` (last validation, with masks) and ``history``.
    """
    from .devices import resolve_devices
    from .train import fit
    devices = resolve_devices(devices)
    if not initialized(net):
        net.initialize(init=init.Xavier(), ctx=devices)
    if hybridize:
        net.hybridize(static_alloc=True)
    if trainer is None:
        trainer = gluon.Trainer(net.collect_params(), optimizer,
                                {'learning_rate': lr, 'wd': wd})
    rng = onp.random.default_rng(seed)

    def step(batch, trainer):
        X, Y, M = batch if len(batch) > 2 else (*batch, None)
        with autograd.record():
            outs = [faster_rcnn_loss(net, *s, rng=rng) for s in _split(X, Y, M, devices)]
        for loss, _ in outs:
            loss.backward()
        trainer.step(X.shape[0])
        # rpn, head, mask loss sums, correct regions, sampled regions, positives, examples
        return [sum(s.as_in_ctx(devices[0]) if hasattr(s, 'as_in_ctx') else s
                    for s in column) for column in zip(*(sums for _, sums in outs))] + \
            [X.shape[0]]

    def metrics(s):
        n = max(s[6], 1)
        point = {'rpn_loss': s[0] / n, 'head_loss': s[1] / n, 'mask_loss': s[2] / n,
                 'head_err': 1 - s[3] / np.maximum(s[4], 1)}
        return dict(point, loss=point['rpn_loss'] + point['head_loss'] + point['mask_loss'])

    def evaluate(net):
        val = evaluate_rcnn(net, val_iter, devices)
        return {k: val[k] for k in ('map50', 'mask_iou', 'mask_iou_box') if k in val}

    def summary(r):
        lines = [f"rpn loss {r['rpn_loss']:.3f}, head loss {r['head_loss']:.3f}, "
                 f"head class err {r['head_err']:.3f}"
                 + (f", mask loss {r['mask_loss']:.3f}" if net.mask_head is not None else '')]
        if r.get('map50') is not None:
            lines.append(f"val mAP@0.5 {r['map50']:.3f}" + (
                f", mask IoU {r['mask_iou']:.3f} (filled boxes: {r['mask_iou_box']:.3f})"
                if 'mask_iou' in r else ''))
        return lines

    r = fit(net, train_iter, step, trainer, epochs=num_epochs, devices=devices,
            metrics=metrics, curves={'rpn_loss': 'rpn loss', 'head_loss': 'head loss',
                                     'head_err': 'head class err'},
            evaluate=evaluate if val_iter is not None else None,
            eval_curves={'map50': 'val mAP@0.5'}, eval_every=map_every or num_epochs,
            summary=summary, animator=animator, reports_per_epoch=1,
            animator_kw={'xlim': [1, max(num_epochs, 2)]}, save_path=save_path,
            max_batches=max_batches, progress=False, verbose=verbose)
    val = [(e['epoch'], e['map50']) for e in r['log'] if e.get('map50') is not None]
    last = r['log'][-1]
    result = {k: r[k] for k in ('rpn_loss', 'head_loss', 'mask_loss', 'head_err',
                                'examples_per_sec', 'seconds', 'history')}
    result.update(epochs=num_epochs, val_map=val[-1][1] if val else None, map_history=val,
                  loss_history=[e['loss'] for e in r['log']])
    if 'mask_iou' in last:
        result.update(mask_iou=last['mask_iou'], mask_iou_box=last['mask_iou_box'])
    return result


def _split(X, Y, M, devices):
    """Shards ``[(X, Y, masks or None)]``, one per device (the chapter's ``split_batch``)."""
    from .devices import split_batch
    Xs, Ys = split_batch(X, Y, devices)
    if M is None:
        return [(x, y, None) for x, y in zip(Xs, Ys)]
    Ms = gluon.utils.split_and_load(M, devices[:len(Xs)], even_split=False)
    return list(zip(Xs, Ys, Ms))
