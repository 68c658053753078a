"""Tests of d2lcv.detection_metrics: exact small cases, a slow reference, pycocotools."""
import contextlib
import io

import numpy as onp
import pytest

from d2lcv.anchors import box_iou
from d2lcv.detection_metrics import mean_average_precision


# ----------------------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------------------

def coco_stats(dets, labels, num_classes):
    """pycocotools' COCOeval (bbox) on the same detections: stats[0..2] = AP, AP50, AP75."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    images, anns, res = [], [], []
    for i, (d, g) in enumerate(zip(dets, labels)):
        images.append({'id': i + 1, 'width': 1, 'height': 1})
        for row in g:
            if row[0] < 0:
                continue
            x1, y1, x2, y2 = map(float, row[1:5])
            anns.append({'id': len(anns) + 1, 'image_id': i + 1,
                         'category_id': int(row[0]) + 1, 'bbox': [x1, y1, x2 - x1, y2 - y1],
                         'area': (x2 - x1) * (y2 - y1), 'iscrowd': 0})
        for row in d:
            if row[0] < 0:
                continue
            x1, y1, x2, y2 = map(float, row[2:6])
            res.append({'image_id': i + 1, 'category_id': int(row[0]) + 1,
                        'bbox': [x1, y1, x2 - x1, y2 - y1], 'score': float(row[1])})
    gt = COCO()
    gt.dataset = {'images': images, 'annotations': anns,
                  'categories': [{'id': c + 1} for c in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(res)
        ev = COCOeval(gt, dt, 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def slow_ap(dets, labels, cls, thr, interpolation):
    """Plain-loop AP of one class: greedy matching per image, then the interpolation."""
    scored = []  # (score, image, order) of every detection of the class
    num_gt = 0
    for i, (d, g) in enumerate(zip(dets, labels)):
        gts = [list(r[1:5]) for r in g if r[0] == cls]
        num_gt += len(gts)
        mine = [r for r in d if r[0] == cls]
        mine = sorted(mine, key=lambda r: -r[1])[:100]  # sorted() is stable
        taken = [False] * len(gts)
        for r in mine:
            best, best_j = min(thr, 1 - 1e-10), -1
            for j, gbox in enumerate(gts):
                if taken[j]:
                    continue
                iou = box_iou([r[2:6]], [gbox], dtype='float64')[0, 0]
                if iou >= best:
                    best, best_j = iou, j
            if best_j >= 0:
                taken[best_j] = True
            scored.append((r[1], best_j >= 0))
    if num_gt == 0:
        return None
    scored = sorted(scored, key=lambda s: -s[0])
    tp = fp = 0
    rec, prec = [], []
    for _, hit in scored:
        tp += hit
        fp += not hit
        rec.append(tp / num_gt)
        prec.append(tp / (tp + fp))
    if interpolation == 'voc':
        ap, prev_r = 0.0, 0.0
        for k in range(len(rec)):
            p_env = max(prec[k:])
            ap += (rec[k] - prev_r) * p_env
            prev_r = rec[k]
        return ap
    total = 0.0
    # exact float comparison, as pycocotools (0.3 from linspace is 0.30000000000000004)
    for t in onp.linspace(0, 1, 101):
        ps = [p for r, p in zip(rec, prec) if r >= t]
        total += max(ps) if ps else 0.0
    return total / 101


def random_case(rng, n_img=8, num_classes=3, max_gt=4, max_det=25, noise=0.03,
                round_scores=True):
    labels = -onp.ones((n_img, max_gt, 5))
    dets = -onp.ones((n_img, max_det, 6))
    for i in range(n_img):
        k = int(rng.integers(0, max_gt + 1))
        xy = rng.uniform(0, 0.7, (k, 2))
        labels[i, :k, 0] = rng.integers(0, num_classes, k)
        labels[i, :k, 1:3] = xy
        labels[i, :k, 3:5] = xy + rng.uniform(0.05, 0.3, (k, 2))
        nd = int(rng.integers(0, max_det + 1))
        if k:
            src = rng.integers(0, k, nd)
            boxes = labels[i, src, 1:5] + rng.normal(0, noise, (nd, 4))
            cls = onp.where(rng.uniform(size=nd) < 0.85, labels[i, src, 0],
                            rng.integers(0, num_classes, nd))
        else:
            boxes = onp.tile([0.2, 0.2, 0.4, 0.4], (nd, 1)) + rng.normal(0, 0.1, (nd, 4))
            cls = rng.integers(0, num_classes, nd)
        spurious = rng.uniform(size=nd) < 0.25
        xy = rng.uniform(0, 0.7, (nd, 2))
        boxes[spurious] = onp.concatenate([xy, xy + 0.2], axis=1)[spurious]
        boxes[:, 2:] = onp.maximum(boxes[:, 2:], boxes[:, :2] + 0.01)
        scores = rng.uniform(0, 1, nd)
        dets[i, :nd, 0] = cls
        dets[i, :nd, 1] = onp.round(scores, 1) if round_scores else scores  # ties
        dets[i, :nd, 2:] = boxes
    return dets, labels


# ----------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------

def test_box_iou_small_table():
    boxes1 = [[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300]]
    boxes2 = [[0, 0, 100, 100], [0, 0, 25, 100], [0, 0, 0, 0]]
    expected = [[1.0, 0.25, 0.0], [0.25, 1 / 3, 0.0], [0.0, 0.0, 0.0]]
    iou = box_iou(boxes1, boxes2, dtype='float64')
    assert iou.dtype == onp.float64
    onp.testing.assert_allclose(iou, expected, rtol=1e-12)
    assert box_iou(onp.zeros((0, 4)), boxes2, dtype='float64').shape == (0, 3)


def test_exact_small_cases():
    gt = onp.array([[[0, 0.1, 0.1, 0.5, 0.5]]])
    # a perfect detection
    perfect = onp.array([[[0, 0.9, 0.1, 0.1, 0.5, 0.5]]])
    r = mean_average_precision(perfect, gt)
    assert r['map50'] == pytest.approx(1.0) and r['map'] == pytest.approx(1.0)
    # a higher-scored false positive before the true positive: precision 1/2 at recall 1
    fp_first = onp.array([[[0, 0.9, 0.6, 0.6, 0.9, 0.9], [0, 0.8, 0.1, 0.1, 0.5, 0.5]]])
    for interp in ('coco', 'voc', 'voc07'):
        assert mean_average_precision(fp_first, gt, 0.5, interp)['map50'] == \
            pytest.approx(0.5)
    # a duplicate of the same object is a false positive, ranked after: AP stays 1
    dup = onp.array([[[0, 0.9, 0.1, 0.1, 0.5, 0.5], [0, 0.8, 0.1, 0.1, 0.5, 0.5]]])
    assert mean_average_precision(dup, gt, 0.5, 'voc')['map50'] == pytest.approx(1.0)
    # no detection at all; detections of a class that has no ground truth are left out
    none = -onp.ones((1, 3, 6))
    assert mean_average_precision(none, gt, 0.5)['map50'] == 0.0
    other = onp.array([[[1, 0.9, 0.1, 0.1, 0.5, 0.5]]])
    r = mean_average_precision(other, gt, 0.5)
    assert r['classes'] == [0] and r['map50'] == 0.0


def test_iou_exactly_on_threshold_matches():
    gt = onp.array([[[0, 0.0, 0.0, 1.0, 1.0]]])
    half = onp.array([[[0, 0.9, 0.0, 0.0, 1.0, 0.5]]])  # IoU exactly 0.5
    assert mean_average_precision(half, gt, 0.5)['map50'] == pytest.approx(1.0)
    assert mean_average_precision(half, gt, 0.55)['ap'][0, 0] == 0.0


def test_padding_rows_and_ragged_lists_agree():
    rng = onp.random.default_rng(3)
    dets, labels = random_case(rng)
    a = mean_average_precision(dets, labels)
    ragged_d = [d[d[:, 0] >= 0] for d in dets]
    ragged_l = [g[g[:, 0] >= 0] for g in labels]
    b = mean_average_precision(ragged_d, ragged_l)
    onp.testing.assert_allclose(a['ap'], b['ap'])


def test_no_ground_truth_gives_nan():
    r = mean_average_precision(onp.array([[[0, 0.9, 0, 0, 1, 1]]]), -onp.ones((1, 1, 5)))
    assert onp.isnan(r['map'])


@pytest.mark.parametrize('seed', range(12))
def test_agrees_with_pycocotools(seed):
    rng = onp.random.default_rng(seed)
    num_classes = int(rng.integers(1, 4))
    dets, labels = random_case(rng, n_img=int(rng.integers(1, 12)),
                               num_classes=num_classes, noise=[0.01, 0.03, 0.06][seed % 3],
                               round_scores=seed % 2 == 0)
    if not (labels[..., 0] >= 0).any():
        labels[0, 0] = [0, 0.1, 0.1, 0.3, 0.3]
    stats = coco_stats(dets, labels, num_classes)
    r = mean_average_precision(dets, labels, num_classes=num_classes)
    assert r['map'] == pytest.approx(stats[0], abs=1e-12)
    assert r['map50'] == pytest.approx(stats[1], abs=1e-12)
    assert r['map75'] == pytest.approx(stats[2], abs=1e-12)


def test_max_dets_cap_agrees_with_pycocotools():
    rng = onp.random.default_rng(11)
    dets, labels = random_case(rng, n_img=3, num_classes=1, max_gt=4, max_det=140)
    stats = coco_stats(dets, labels, 1)
    assert mean_average_precision(dets, labels)['map'] == pytest.approx(stats[0], abs=1e-12)


@pytest.mark.parametrize('interpolation', ['coco', 'voc'])
@pytest.mark.parametrize('seed', range(4))
def test_matches_slow_reference(seed, interpolation):
    rng = onp.random.default_rng(100 + seed)
    dets, labels = random_case(rng, num_classes=2)
    r = mean_average_precision(dets, labels, [0.5, 0.7], interpolation, num_classes=2)
    for t, thr in enumerate([0.5, 0.7]):
        for c in range(2):
            ref = slow_ap(dets, labels, c, thr, interpolation)
            if ref is None:
                assert onp.isnan(r['ap'][t, c])
            else:
                assert r['ap'][t, c] == pytest.approx(ref, abs=1e-9)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match='detections'):
        mean_average_precision(onp.zeros((2, 3, 4)), -onp.ones((2, 1, 5)))
    with pytest.raises(ValueError, match='images'):
        mean_average_precision(onp.zeros((2, 3, 6)), -onp.ones((3, 1, 5)))
