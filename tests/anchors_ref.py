"""Slow, obvious loop versions of the algorithms of 13.4 (anchors, labelling, NMS) and 13.8
(RoI pooling, RoIAlign): the oracle the tests compare :mod:`d2lcv.anchors` and
:mod:`d2lcv.rcnn` against (``benchmarks/bench_anchors.py`` compares with the operators).

Plain Python loops over images, boxes and anchors, written straight from the text (float32
scalars, in the operators' order of operations). Same inputs and outputs as the fast
functions, on NumPy arrays. Not for real use.
"""
import math

import numpy as onp

__all__ = ['iou_ref', 'multibox_prior_ref', 'multibox_target_ref', 'multibox_detection_ref',
           'nms_ref', 'roi_pool_ref', 'roi_align_ref']

f32 = onp.float32


def iou_ref(a, b):
    """IoU of two boxes ``(x1, y1, x2, y2)``, as a float32 scalar."""
    a, b = onp.asarray(a, f32), onp.asarray(b, f32)
    w = max(f32(0), min(a[2], b[2]) - max(a[0], b[0]))
    h = max(f32(0), min(a[3], b[3]) - max(a[1], b[1]))
    inter = f32(w * h)
    union = f32((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    return f32(0) if union <= 0 else f32(inter / union)


def multibox_prior_ref(in_height, in_width, sizes, ratios):
    """(1, H*W*(n+m-1), 4), one anchor at a time."""
    out = []
    for r in range(in_height):
        cy = (f32(r) + f32(0.5)) * (f32(1) / f32(in_height))
        for c in range(in_width):
            cx = (f32(c) + f32(0.5)) * (f32(1) / f32(in_width))
            shapes = [(s, ratios[0]) for s in sizes] + [(sizes[0], q) for q in ratios[1:]]
            for s, q in shapes:
                q = onp.sqrt(f32(q))
                w = f32(s) * f32(in_height) / f32(in_width) * q / f32(2)
                h = f32(s) / q / f32(2)
                out.append([cx - w, cy - h, cx + w, cy + h])
    return onp.array(out, f32)[None]


def multibox_target_ref(anchors, labels, overlap_threshold=0.5, ignore_label=-1,
                        variances=(0.1, 0.1, 0.2, 0.2)):
    """Per image: greedy matching over the IoU table, then the threshold pass."""
    anchors, labels = onp.asarray(anchors, f32)[0], onp.asarray(labels, f32)
    B, A = labels.shape[0], anchors.shape[0]
    offsets = onp.zeros((B, A * 4), f32)
    masks = onp.zeros((B, A * 4), f32)
    classes = onp.zeros((B, A), f32)
    for b in range(B):
        gts = []
        for row in labels[b]:
            if row[0] == -1:
                break
            gts.append(row)
        if not gts:
            classes[b, :] = ignore_label
            continue
        table = [[iou_ref(anchors[i], g[1:]) for g in gts] for i in range(A)]
        match = [-1] * A
        gt_done = [False] * len(gts)
        while not all(gt_done):
            best, bi, bj = f32(1e-6), -1, -1
            for i in range(A):
                if match[i] >= 0:
                    continue
                for j in range(len(gts)):
                    if not gt_done[j] and table[i][j] > best:
                        best, bi, bj = table[i][j], i, j
            if bi < 0:
                break
            match[bi], gt_done[bj] = bj, True
        for i in range(A):
            if match[i] >= 0:
                continue
            best, bj = f32(-1), -1
            for j in range(len(gts)):
                if table[i][j] > best:
                    best, bj = table[i][j], j
            if best > overlap_threshold:
                match[i] = bj
        for i in range(A):
            if match[i] < 0:
                continue
            g, a = gts[match[i]], anchors[i]
            classes[b, i] = g[0] + 1
            aw, ah = a[2] - a[0], a[3] - a[1]
            ax, ay = (a[0] + a[2]) * f32(0.5), (a[1] + a[3]) * f32(0.5)
            gw, gh = g[3] - g[1], g[4] - g[2]
            gx, gy = (g[1] + g[3]) * f32(0.5), (g[2] + g[4]) * f32(0.5)
            v = [f32(x) for x in variances]
            offsets[b, 4 * i:4 * i + 4] = [(gx - ax) / aw / v[0], (gy - ay) / ah / v[1],
                                           onp.log(gw / aw) / v[2], onp.log(gh / ah) / v[3]]
            masks[b, 4 * i:4 * i + 4] = 1
    return offsets, masks, classes


def nms_ref(boxes, scores, iou_threshold, classes=None):
    """Indices kept by greedy NMS, one comparison at a time."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])   # sorted() is stable
    keep, removed = [], set()
    for p, i in enumerate(order):
        if i in removed:
            continue
        keep.append(i)
        for j in order[p + 1:]:
            if j in removed or (classes is not None and classes[i] != classes[j]):
                continue
            if iou_ref(boxes[i], boxes[j]) >= iou_threshold:
                removed.add(j)
    return onp.array(keep, onp.int64)


def multibox_detection_ref(cls_probs, offset_preds, anchors, nms_threshold=0.5,
                           threshold=0.01, clip=True, variances=(0.1, 0.1, 0.2, 0.2)):
    """Per image, per anchor: decode, pick the class, then greedy per-class NMS."""
    cls_probs, offset_preds = onp.asarray(cls_probs, f32), onp.asarray(offset_preds, f32)
    anchors = onp.asarray(anchors, f32)[0]
    B, C1, A = cls_probs.shape
    v = [f32(x) for x in variances]
    out = -onp.ones((B, A, 6), f32)
    for b in range(B):
        rows = []
        for i in range(A):
            cls, score = 0, f32(-1)
            for j in range(1, C1):
                if cls_probs[b, j, i] > score:
                    cls, score = j, cls_probs[b, j, i]
            if score < threshold:
                continue
            a, p = anchors[i], offset_preds[b, 4 * i:4 * i + 4]
            aw, ah = a[2] - a[0], a[3] - a[1]
            ax, ay = (a[0] + a[2]) / f32(2), (a[1] + a[3]) / f32(2)
            ox, oy = p[0] * v[0] * aw + ax, p[1] * v[1] * ah + ay
            ow, oh = onp.exp(p[2] * v[2]) * aw / f32(2), onp.exp(p[3] * v[3]) * ah / f32(2)
            box = [ox - ow, oy - oh, ox + ow, oy + oh]
            if clip:
                box = [min(max(x, f32(0)), f32(1)) for x in box]
            rows.append([cls - 1, score] + box)
        if 0 < nms_threshold <= 1:
            rows.sort(key=lambda r: -r[1])
            for p, r in enumerate(rows):
                if r[0] < 0:
                    continue
                for q in rows[p + 1:]:
                    if q[0] == r[0] and iou_ref(r[2:], q[2:]) >= nms_threshold:
                        q[0] = -1
        for p, r in enumerate(rows):
            out[b, p] = r
    return out


def roi_pool_ref(X, rois, pooled_size, spatial_scale):
    """RoI max pooling, one output cell at a time (``npx.roi_pooling``'s rounding)."""
    X, rois = onp.asarray(X, f32), onp.asarray(rois, f32)
    ph, pw = pooled_size
    N, C, H, W = X.shape
    out = onp.zeros((len(rois), C, ph, pw), f32)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        x1, y1, x2, y2 = (int(math.floor(float(v) * spatial_scale + 0.5)) if v >= 0 else
                          int(math.ceil(float(v) * spatial_scale - 0.5)) for v in roi[1:])
        rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        bh, bw = rh / ph, rw / pw
        for i in range(ph):
            for j in range(pw):
                hs = min(max(int(math.floor(i * bh)) + y1, 0), H)
                he = min(max(int(math.ceil((i + 1) * bh)) + y1, 0), H)
                ws = min(max(int(math.floor(j * bw)) + x1, 0), W)
                we = min(max(int(math.ceil((j + 1) * bw)) + x1, 0), W)
                for c in range(C):
                    if he <= hs or we <= ws:
                        out[r, c, i, j] = 0
                    else:
                        out[r, c, i, j] = X[b, c, hs:he, ws:we].max()
    return out


def _bilinear(img, y, x):
    H, W = img.shape
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= H - 1:
        y0 = y1 = H - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= W - 1:
        x0 = x1 = W - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * img[y0, x0] + hy * lx * img[y0, x1] + ly * hx * img[y1, x0]
            + ly * lx * img[y1, x1])


def roi_align_ref(X, rois, pooled_size, spatial_scale, sample_ratio=-1, aligned=False):
    """RoIAlign (bilinear, averaged over a grid of samples per cell), one sample at a time."""
    X, rois = onp.asarray(X, onp.float64), onp.asarray(rois, onp.float64)
    ph, pw = pooled_size
    N, C, H, W = X.shape
    out = onp.zeros((len(rois), C, ph, pw), f32)
    off = 0.5 if aligned else 0.0
    for r, roi in enumerate(rois):
        b = int(roi[0])
        x1, y1, x2, y2 = (v * spatial_scale - off for v in roi[1:])
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph, rw / pw
        gh = sample_ratio if sample_ratio > 0 else int(math.ceil(rh / ph))
        gw = sample_ratio if sample_ratio > 0 else int(math.ceil(rw / pw))
        count = max(gh * gw, 1)
        for c in range(C):
            for i in range(ph):
                for j in range(pw):
                    acc = 0.0
                    for iy in range(gh):
                        y = y1 + i * bh + (iy + 0.5) * bh / gh
                        for ix in range(gw):
                            x = x1 + j * bw + (ix + 0.5) * bw / gw
                            acc += _bilinear(X[b, c], y, x)
                    out[r, c, i, j] = acc / count
    return out
