"""Detection metrics: average precision, VOC-style (IoU 0.5) and COCO-style (IoU 0.5:0.95).

``mean_average_precision(detections, labels)`` scores detector outputs in the shapes the
chapter uses: ``detections (N, A, 6)`` rows ``(class, score, x1, y1, x2, y2)`` (the output of
``multibox_detection``; class -1 rows are ignored) and ``labels (N, m, 5)`` rows
``(class, x1, y1, x2, y2)`` (class -1 rows are padding). Ragged lists of per-image arrays
are accepted too.

Matching follows the COCO evaluation (pycocotools' ``COCOeval`` with ``iouType='bbox'``,
area range "all", no crowd boxes): per image and class, detections in descending score
order (stable for ties, at most ``max_dets``) each take the still-unmatched ground truth of
the same class with the highest IoU >= the threshold (on equal IoU, the later ground
truth); then all detections of a class are ranked by score across images. Precision is
interpolated with ``interpolation='coco'`` (101 recall points, as pycocotools: the tests
check agreement to 1e-12), ``'voc'`` (area under the monotone precision envelope, VOC2010+)
or ``'voc07'`` (11 recall points). Classes without any ground truth are left out of the mean.

The matching is vectorised over images, thresholds and ground truths; the only loop runs
over detection ranks (at most ``max_dets``), since greedy matching is sequential in rank.
"""
import numpy as onp

from ._arrays import host
from .anchors import box_iou

__all__ = ['mean_average_precision', 'COCO_IOU_THRESHOLDS']

COCO_IOU_THRESHOLDS = onp.linspace(.5, 0.95, int(onp.round((0.95 - .5) / .05)) + 1)
_COCO_RECALLS = onp.linspace(.0, 1.00, int(onp.round((1.00 - .0) / .01)) + 1)


def _as_list(arrays, width, name):
    if hasattr(arrays, 'asnumpy'):
        arrays = arrays.asnumpy()
    if isinstance(arrays, onp.ndarray):
        if arrays.ndim != 3 or arrays.shape[2] < width:
            raise ValueError(f'{name} must have shape (N, k, {width}), got {arrays.shape}')
        return [a for a in arrays]
    out = []
    for i, a in enumerate(arrays):
        a = host(a, onp.float64)
        a = a.reshape(-1, a.shape[-1] if a.size else width)
        if a.shape[1] < width:
            raise ValueError(f'{name}[{i}] must have rows of {width} values, got {a.shape}')
        out.append(a)
    return out


def _pad(rows_per_image, width, fill):
    """Stack ragged ``[(k_i, width)]`` into ``(N, max k, width)`` and a validity mask."""
    n = len(rows_per_image)
    k = max([len(r) for r in rows_per_image] + [0])
    out = onp.full((n, k, width), fill, onp.float64)
    valid = onp.zeros((n, k), bool)
    for i, r in enumerate(rows_per_image):
        out[i, :len(r)] = r[:, :width]
        valid[i, :len(r)] = True
    return out, valid


def _interpolate(tp, fp, num_gt, interpolation):
    """AP of one class at one threshold from score-ranked ``tp``/``fp`` flags."""
    if num_gt == 0:
        return onp.nan
    tp_sum = onp.cumsum(tp).astype(float)
    fp_sum = onp.cumsum(fp).astype(float)
    rc = tp_sum / num_gt
    pr = tp_sum / (fp_sum + tp_sum + onp.spacing(1))
    if len(pr):
        pr = onp.maximum.accumulate(pr[::-1])[::-1]  # monotone envelope from the right
    if interpolation == 'coco':
        inds = onp.searchsorted(rc, _COCO_RECALLS, side='left')
        q = onp.zeros(len(_COCO_RECALLS))
        ok = inds < len(pr)
        q[ok] = pr[inds[ok]]
        return float(onp.mean(q))
    if interpolation == 'voc':
        mrec = onp.concatenate([[0.0], rc, [1.0]])
        mpre = onp.concatenate([[0.0], pr, [0.0]])
        mpre = onp.maximum.accumulate(mpre[::-1])[::-1]
        i = onp.nonzero(mrec[1:] != mrec[:-1])[0]
        return float(onp.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
    if interpolation == 'voc07':
        ap = 0.0
        for t in onp.arange(0.0, 1.1, 0.1):
            ap += (pr[rc >= t].max() if (rc >= t).any() else 0.0) / 11
        return float(ap)
    raise ValueError(f"interpolation must be 'coco', 'voc' or 'voc07', got {interpolation!r}")


def _match_class(det_boxes, det_valid, gt_boxes, gt_valid, thresholds):
    """Greedy COCO matching for one class, vectorised over images and thresholds.

    ``det_boxes (N, D, 4)`` sorted by descending score per image, ``gt_boxes (N, G, 4)``.
    Returns ``matched (T, N, D)`` bool.
    """
    T, (N, D), G = len(thresholds), det_valid.shape, gt_valid.shape[1]
    matched = onp.zeros((T, N, D), bool)
    if D == 0 or G == 0:
        return matched
    iou = box_iou(det_boxes, gt_boxes, dtype='float64')           # (N, D, G)
    iou = onp.where(gt_valid[:, None, :], iou, -1.0)
    thr = onp.minimum(thresholds, 1 - 1e-10)[:, None, None]       # (T, 1, 1)
    taken = onp.zeros((T, N, G), bool)
    t_idx, n_idx = onp.meshgrid(onp.arange(T), onp.arange(N), indexing='ij')
    for d in range(D):  # greedy in score rank: each step is vectorised over T, N, G
        cand = onp.broadcast_to(iou[None, :, d, :], (T, N, G))
        ok = (cand >= thr) & ~taken
        scores = onp.where(ok, cand, -onp.inf)
        # the last of equal maxima, as pycocotools (it replaces on >=)
        j = G - 1 - onp.argmax(scores[..., ::-1], axis=-1)        # (T, N)
        hit = ok.any(axis=-1) & det_valid[None, :, d]
        matched[:, :, d] = hit
        taken[t_idx[hit], n_idx[hit], j[hit]] = True
    return matched


def mean_average_precision(detections, labels, iou_thresholds=None, interpolation='coco',
                           max_dets=100, num_classes=None):
    """Mean average precision of ``detections`` against ``labels``.

    Parameters
    ----------
    detections : ``(N, A, 6)`` rows ``(class, score, x1, y1, x2, y2)``, class -1 ignored;
        or a list of ``(k_i, 6)``.
    labels : ``(N, m, 5)`` rows ``(class, x1, y1, x2, y2)``, class -1 is padding; or a list.
    iou_thresholds : default COCO's 0.5, 0.55, ..., 0.95.
    interpolation : ``'coco'`` (101 points), ``'voc'`` (all points) or ``'voc07'``.
    max_dets : detections kept per image and class, highest scores first.
    num_classes : if given, classes ``0 .. num_classes - 1`` (else those in ``labels``).

    Returns
    -------
    dict with ``map`` (mean over thresholds and classes), ``map50`` and ``map75`` (None
    if not among the thresholds), ``ap`` ``(T, K)`` (NaN for classes without ground truth),
    ``classes``, ``iou_thresholds``, ``num_gt`` per class, ``num_det`` per class.
    """
    thresholds = onp.asarray(COCO_IOU_THRESHOLDS if iou_thresholds is None
                             else onp.atleast_1d(iou_thresholds), onp.float64)
    dets = _as_list(detections, 6, 'detections')
    gts = _as_list(labels, 5, 'labels')
    if len(dets) != len(gts):
        raise ValueError(f'{len(dets)} images of detections but {len(gts)} of labels')
    dets = [d[d[:, 0] >= 0] for d in dets]
    gts = [g[g[:, 0] >= 0] for g in gts]
    if num_classes is None:
        found = onp.concatenate([g[:, 0] for g in gts] + [onp.zeros(0)])
        classes = onp.unique(found.astype(int))
    else:
        classes = onp.arange(num_classes)
    ap = onp.full((len(thresholds), len(classes)), onp.nan)
    num_gt, num_det = [], []
    for k, c in enumerate(classes):
        det_c, gt_c = [], []
        for d, g in zip(dets, gts):
            d = d[d[:, 0].astype(int) == c]
            # descending score, stable for ties (pycocotools uses a mergesort)
            d = d[onp.argsort(-d[:, 1], kind='mergesort')][:max_dets]
            det_c.append(d)
            gt_c.append(g[g[:, 0].astype(int) == c])
        det_arr, det_valid = _pad(det_c, 6, 0.0)
        gt_arr, gt_valid = _pad(gt_c, 5, 0.0)
        n_gt = int(gt_valid.sum())
        num_gt.append(n_gt)
        num_det.append(int(det_valid.sum()))
        if n_gt == 0:
            continue
        matched = _match_class(det_arr[..., 2:6], det_valid, gt_arr[..., 1:5], gt_valid,
                               thresholds)                          # (T, N, D)
        # rank every valid detection of the class across images (image order, then rank)
        scores = det_arr[..., 1][det_valid]
        order = onp.argsort(-scores, kind='mergesort')
        for t in range(len(thresholds)):
            tp = matched[t][det_valid][order]
            ap[t, k] = _interpolate(tp, ~tp, n_gt, interpolation)
    with onp.errstate(invalid='ignore'):
        per_t = onp.nanmean(ap, axis=1) if onp.isfinite(ap).any() \
            else onp.full(len(thresholds), onp.nan)

    def at(x):
        hit = onp.nonzero(onp.isclose(thresholds, x))[0]
        return float(per_t[hit[0]]) if len(hit) else None

    return {'map': float(onp.nanmean(ap)) if onp.isfinite(ap).any() else float('nan'),
            'map50': at(0.5), 'map75': at(0.75), 'ap': ap, 'classes': classes.tolist(),
            'iou_thresholds': thresholds.tolist(), 'num_gt': num_gt, 'num_det': num_det}
