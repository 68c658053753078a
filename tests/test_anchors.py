"""13.4 / 13.5: anchors, IoU, labelling, offsets, NMS, detection.

Oracles: the chapter's printed outputs, MXNet's operators (npx.multibox_*), and the loop
versions in R. Random cases use fixed seeds; half of them put coordinates on a
1/16 grid so IoUs tie exactly and land exactly on the thresholds (0.5 = 1/2 is then computed
without rounding by every implementation).
"""
import numpy as onp
import pytest
import mxnet as mx
from mxnet import np, npx

import d2lcv
from d2lcv import anchors as A
import anchors_ref as R  # the slow loop oracle, tests/anchors_ref.py

npx.set_np()


pytestmark = pytest.mark.usefixtures('d2lcv_anchors_impl')

GT = [[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]]
ANCHORS_13_4_3 = [[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                  [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]]
ANCHORS_13_4_4 = [[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95],
                  [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]]
CLS_13_4_4 = [[0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]]


# --------------------------------------------------------------------------- the chapter
@pytest.mark.parametrize('impl', A.IMPLS)
def test_multibox_prior_chapter(impl):
    X = np.random.uniform(size=(1, 3, 561, 728))
    Y = A.multibox_prior(X, sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5], impl=impl)
    assert isinstance(Y, np.ndarray) and Y.shape == (1, 2042040, 4)
    boxes = Y.reshape(561, 728, 5, 4)
    onp.testing.assert_allclose(onp.round(boxes[250, 250, 0, :].asnumpy(), 2),
                                [0.06, 0.07, 0.63, 0.82], rtol=0, atol=1e-6)


def test_multibox_prior_matches_operator_bitwise():
    for h, w, sizes, ratios in [(561, 728, [0.75, 0.5, 0.25], [1, 2, 0.5]),
                                (5, 3, [0.2], [1]), (1, 1, [0.8, 0.3], [3, 1, 0.25]),
                                (32, 32, [0.2, 0.272], [1, 2, 0.5])]:
        X = np.zeros((1, 2, h, w))
        ours = A.multibox_prior(X, sizes, ratios, impl='d2lcv').asnumpy()
        op = npx.multibox_prior(X, sizes=sizes, ratios=ratios).asnumpy()
        onp.testing.assert_array_equal(ours, op)
    ref = R.multibox_prior_ref(3, 4, [0.5, 0.25], [1, 2, 0.5])
    onp.testing.assert_array_equal(A.multibox_prior(onp.zeros((1, 1, 3, 4)), [0.5, 0.25],
                                                    [1, 2, 0.5]), ref)


@pytest.mark.parametrize('impl', A.IMPLS)
def test_multibox_target_chapter(impl):
    labels = A.multibox_target(np.expand_dims(np.array(ANCHORS_13_4_3), axis=0),
                               np.expand_dims(np.array(GT), axis=0), np.zeros((1, 3, 5)),
                               impl=impl)
    assert all(isinstance(x, np.ndarray) and x.dtype == onp.float32 for x in labels)
    onp.testing.assert_array_equal(labels[2].asnumpy(), [[0, 1, 2, 0, 2]])
    onp.testing.assert_array_equal(labels[1].asnumpy(),
                                   [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0,
                                     1, 1, 1, 1]])
    printed = [0, 0, 0, 0, 1.40e+00, 1.00e+01, 2.59e+00, 7.18e+00, -1.20e+00, 2.69e-01,
               1.68e+00, -1.57e+00, 0, 0, 0, 0, -5.71e-01, -1.00e+00, -8.94e-07, 6.26e-01]
    got = labels[0].asnumpy()[0]
    # The chapter prints three significant digits.
    onp.testing.assert_allclose(got, printed, rtol=5e-3, atol=1e-8)


@pytest.mark.parametrize('impl', A.IMPLS)
def test_multibox_detection_chapter(impl):
    output = A.multibox_detection(np.expand_dims(np.array(CLS_13_4_4), axis=0),
                                  np.expand_dims(np.zeros(16), axis=0),
                                  np.expand_dims(np.array(ANCHORS_13_4_4), axis=0),
                                  nms_threshold=0.5, impl=impl)
    expected = [[0, 0.9, 0.1, 0.08, 0.52, 0.92], [1, 0.9, 0.55, 0.2, 0.9, 0.88],
                [-1, 0.8, 0.08, 0.2, 0.56, 0.95], [-1, 0.7, 0.15, 0.3, 0.62, 0.91]]
    assert output.shape == (1, 4, 6)
    onp.testing.assert_allclose(output.asnumpy()[0], expected, atol=1e-6)


def test_nms_chapter_order():
    boxes, scores = onp.array(ANCHORS_13_4_4), onp.array([0.9, 0.8, 0.7, 0.9])
    onp.testing.assert_array_equal(A.nms(boxes, scores, 0.5), [0, 3])
    onp.testing.assert_array_equal(A.nms(boxes, scores, 0.5, classes=[0, 0, 0, 1]), [0, 3])


# --------------------------------------------------------------------------- IoU
def test_box_iou_exact_table():
    b1 = onp.array([[0, 0, 1, 1], [0, 0, 2, 2], [2, 2, 3, 3]], 'float32')
    b2 = onp.array([[0, 0, 1, 1], [1, 1, 2, 2], [0, 0, 0.5, 1], [5, 5, 5, 6]], 'float32')
    want = [[1, 0, 0.5, 0], [0.25, 0.25, 0.125, 0], [0, 0, 0, 0]]
    onp.testing.assert_array_equal(A.box_iou(b1, b2), want)
    got = A.box_iou(np.array(b1), np.array(b2))
    assert isinstance(got, np.ndarray)
    onp.testing.assert_array_equal(got.asnumpy(), want)


def _random_boxes(rng, n, grid=False):
    xy = rng.uniform(0, 0.8, (n, 2))
    wh = rng.uniform(0.02, 0.5, (n, 2))
    if grid:
        xy, wh = onp.round(xy * 16) / 16, onp.round(wh * 16) / 16
    return onp.concatenate([xy, xy + wh], axis=1).astype('float32')


def test_box_iou_properties_and_reference():
    rng = onp.random.RandomState(0)
    for t in range(50):
        b1, b2 = _random_boxes(rng, 7, t % 2 == 0), _random_boxes(rng, 5, t % 2 == 0)
        iou = A.box_iou(b1, b2)
        assert iou.shape == (7, 5) and iou.dtype == onp.float32
        # against the slow one-pair-at-a-time loop, and float32 against float64
        ref = onp.array([[R.iou_ref(a, b) for b in b2] for a in b1])
        onp.testing.assert_allclose(iou, ref, rtol=1e-6, atol=1e-7)
        onp.testing.assert_allclose(iou, A.box_iou(b1, b2, dtype='float64'), rtol=1e-5, atol=1e-6)
        onp.testing.assert_array_equal(iou, A.box_iou(b2, b1).T)
        # a box with itself: 1, unless it has no area (rounding to the grid can make some)
        area = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
        onp.testing.assert_allclose(onp.diag(A.box_iou(b1, b1)), area > 0, rtol=1e-6)
        ref = [[R.iou_ref(a, b) for b in b2] for a in b1]
        onp.testing.assert_allclose(iou, ref, rtol=1e-6, atol=1e-7)
    # batched: (B, N, 4) x (B, M, 4) -> (B, N, M), image by image
    b1, b2 = _random_boxes(rng, 12, False).reshape(3, 4, 4), _random_boxes(rng, 6, False)
    b2 = b2.reshape(3, 2, 4)
    got = A.box_iou(b1, b2)
    assert got.shape == (3, 4, 2)
    for i in range(3):
        onp.testing.assert_array_equal(got[i], A.box_iou(b1[i], b2[i]))


def test_box_iou_degenerate_and_empty():
    point = onp.array([[0.5, 0.5, 0.5, 0.5]], 'float32')
    onp.testing.assert_array_equal(A.box_iou(point, point), [[0]])
    assert A.box_iou(onp.zeros((0, 4)), point).shape == (0, 1)


# --------------------------------------------------------------------------- offsets
def test_offsets_roundtrip_and_values():
    rng = onp.random.RandomState(1)
    anc, bb = _random_boxes(rng, 200), _random_boxes(rng, 200)
    off = A.offset_boxes(anc, bb)
    onp.testing.assert_allclose(A.offset_inverse(anc, off), bb, rtol=1e-5, atol=1e-6)
    # the chapter's definition, written out for one box
    a, b = anc[0].astype(float), bb[0].astype(float)
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    wa, wb = a[2:] - a[:2], b[2:] - b[:2]
    want = onp.concatenate([(cb - ca) / wa / 0.1, onp.log(wb / wa) / 0.2])
    onp.testing.assert_allclose(off[0], want, rtol=1e-4, atol=1e-5)
    # and MXNet arrays in, MXNet arrays out
    m = A.offset_inverse(np.array(anc), np.array(off))
    assert isinstance(m, np.ndarray)
    onp.testing.assert_allclose(m.asnumpy(), bb, rtol=1e-5, atol=1e-6)


def test_offset_inverse_of_zero_is_anchor():
    anc = onp.array(ANCHORS_13_4_4, 'float32')
    onp.testing.assert_allclose(A.offset_inverse(anc, onp.zeros_like(anc)), anc, atol=1e-7)


# --------------------------------------------------------------------------- labelling
def _random_target_case(rng, grid, B=4, M=4, n_random=24):
    prior = A.multibox_prior(onp.zeros((1, 1, 4, 4)), [0.375, 0.25], [1, 2, 0.5])[0]
    anchors = onp.concatenate([prior, _random_boxes(rng, n_random, grid)])[None]
    labels = -onp.ones((B, M, 5), 'float32')
    for b in range(B):
        n = rng.randint(0, M + 1)
        labels[b, :n, 0] = rng.randint(0, 3, n)
        boxes = _random_boxes(rng, n, grid)
        if n and grid:
            # copies of anchors make exact ties and IoU exactly 1 / exactly 0.5 cases
            k = rng.randint(0, anchors.shape[1])
            boxes[0] = anchors[0, k]
            if n > 1:                   # half the width of an anchor: IoU exactly 0.5
                a = anchors[0, rng.randint(0, anchors.shape[1])]
                boxes[1] = [a[0], a[1], (a[0] + a[2]) / 2, a[3]]
        labels[b, :n, 1:] = boxes
    return anchors.astype('float32'), labels


def test_multibox_target_random_vs_operator_and_loop():
    rng = onp.random.RandomState(2)
    for t in range(200):
        anchors, labels = _random_target_case(rng, grid=t % 2 == 0)
        thr = [0.5, 0.5, 0.3, 0.7][t % 4]
        ours = A.multibox_target(anchors, labels, overlap_threshold=thr, impl='d2lcv')
        op = A.multibox_target(np.array(anchors), np.array(labels), overlap_threshold=thr,
                               impl='npx')
        for name, a, b in zip(('offset', 'mask', 'class'), ours, op):
            onp.testing.assert_allclose(a, b.asnumpy(), rtol=1e-5, atol=1e-5,
                                        err_msg=f'case {t}: {name}')
        if t % 4 == 0:
            ref = R.multibox_target_ref(anchors, labels, overlap_threshold=thr)
            for a, b in zip(ours, ref):
                onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f'case {t}')


def test_multibox_target_on_device_equals_host_and_operator():
    # MXNet arrays are labelled with MXNet operations where they live (here cpu(1)): the
    # same classes and masks as the NumPy path, offsets within the last bit of `log`.
    rng = onp.random.RandomState(5)
    dev = mx.cpu(1)
    for t in range(60):
        anchors, labels = _random_target_case(rng, grid=t % 2 == 0)
        thr = [0.5, 0.3, 0.7][t % 3]
        host = A.multibox_target(anchors, labels, overlap_threshold=thr, impl='d2lcv')
        ours = A.multibox_target(np.array(anchors, ctx=dev), np.array(labels, ctx=dev),
                                 overlap_threshold=thr, impl='d2lcv')
        op = npx.multibox_target(np.array(anchors), np.array(labels),
                                 np.zeros((labels.shape[0], 2, anchors.shape[1])),
                                 overlap_threshold=thr)
        for name, h, d, o in zip(('offset', 'mask', 'class'), host, ours, op):
            assert isinstance(d, np.ndarray) and d.ctx == dev and d.dtype == onp.float32
            d = d.asnumpy()
            if name == 'offset':
                onp.testing.assert_allclose(d, h, rtol=3e-7, atol=1e-12, err_msg=f'case {t}')
            else:
                onp.testing.assert_array_equal(d, h, err_msg=f'case {t}: {name}')
            onp.testing.assert_allclose(d, o.asnumpy(), rtol=1e-5, atol=1e-5,
                                        err_msg=f'case {t}: {name}')


def test_multibox_target_on_device_edge_cases():
    anchors = onp.array([ANCHORS_13_4_3], 'float32')
    pad = [-1] * 5
    labels = onp.array([[GT[0], GT[1], pad], [pad, pad, pad], [GT[1], pad, GT[0]],
                        [[0, 0.1, 0.08, 0.1, 0.92], pad, pad]], 'float32')
    host = A.multibox_target(anchors, labels)
    for lab in (np.array(labels), mx.nd.array(labels)):          # both array kinds
        anc = np.array(anchors) if isinstance(lab, np.ndarray) else mx.nd.array(anchors)
        off, mask, cls = A.multibox_target(anc, lab)
        assert isinstance(off, type(lab))
        onp.testing.assert_allclose(off.asnumpy(), host[0], rtol=3e-7, atol=1e-12)
        onp.testing.assert_array_equal(mask.asnumpy(), host[1])
        onp.testing.assert_array_equal(cls.asnumpy(), host[2])
    # no ground-truth rows at all, and degenerate anchors (never positive, offsets 0)
    off, mask, cls = A.multibox_target(np.array(anchors), np.zeros((2, 0, 5)))
    assert cls.shape == (2, 5) and (cls.asnumpy() == -1).all() and not mask.asnumpy().any()
    flat = onp.array([[[0, 0, 0, 1], [0.1, 0.1, 0.5, 0.5]]], 'float32')   # zero width
    out = A.multibox_target(np.array(flat), np.array([[[0, 0.1, 0.1, 0.5, 0.5]]]))
    onp.testing.assert_array_equal(out[2].asnumpy(), [[0, 1]])
    assert onp.isfinite(out[0].asnumpy()).all()
    # values are checked on request (a read to the host), shapes always
    with pytest.raises(ValueError, match=r'labels\[0, 1\].*padding'):
        A.multibox_target(np.array(anchors), np.array([[GT[0], [-1, 0.5, 0.5, 0.6, 0.6]]]),
                          check=True)
    with pytest.raises(ValueError, match=r'labels must have shape \(\.\.\., 5\)'):
        A.multibox_target(np.array(anchors), np.zeros((1, 2, 4)))


def test_multibox_target_padding_and_empty_images():
    anchors = onp.array([ANCHORS_13_4_3], 'float32')
    pad = [-1] * 5
    labels = onp.array([[GT[0], GT[1], pad],
                        [pad, pad, pad],                       # no object at all
                        [GT[1], pad, GT[0]],                   # rows after padding ignored
                        [[0, 0.1, 0.08, 0.1, 0.92], pad, pad]],  # zero-width box
                       'float32')
    off, mask, cls = A.multibox_target(anchors, labels)
    op = npx.multibox_target(np.array(anchors), np.array(labels), np.zeros((4, 3, 5)))
    for a, b in zip((off, mask, cls), op):
        onp.testing.assert_allclose(a, b.asnumpy(), rtol=1e-5, atol=1e-6)
    onp.testing.assert_array_equal(cls[0], [0, 1, 2, 0, 2])
    onp.testing.assert_array_equal(cls[1], [-1] * 5)           # operator: all ignored
    assert (mask[1] == 0).all() and (off[1] == 0).all()
    onp.testing.assert_array_equal(cls[2], [0, 0, 2, 0, 2])    # only the cat counts
    onp.testing.assert_array_equal(cls[3], [0] * 5)            # degenerate: never matched


def test_multibox_target_default_cls_preds_and_assign():
    anchors = onp.array([ANCHORS_13_4_3], 'float32')
    off, mask, cls = A.multibox_target(anchors, onp.array([GT], 'float32'))
    onp.testing.assert_array_equal(cls, [[0, 1, 2, 0, 2]])
    match = A.assign_anchor_to_bbox(onp.array(GT)[:, 1:], onp.array(ANCHORS_13_4_3))
    onp.testing.assert_array_equal(match, [-1, 0, 1, -1, 1])


def test_assign_greedy_tie_goes_to_lower_anchor():
    # two identical anchors, one box equal to both: the first anchor gets it greedily,
    # the second through the threshold pass
    anc = onp.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], 'float32')
    gt = onp.array([[0, 0, 0.5, 0.5]], 'float32')
    onp.testing.assert_array_equal(A.assign_anchor_to_bbox(gt, anc), [0, 0, -1])
    onp.testing.assert_array_equal(A.assign_anchor_to_bbox(gt, anc, iou_threshold=1.0),
                                   [0, -1, -1])


def test_threshold_is_strict():
    # IoU exactly 0.5 is not above the 0.5 threshold
    anc = onp.array([[0, 0, 1, 1], [0, 0, 0.5, 1]], 'float32')
    gt = onp.array([[0, 0, 1, 1]], 'float32')
    onp.testing.assert_array_equal(A.assign_anchor_to_bbox(gt, anc), [0, -1])
    onp.testing.assert_array_equal(A.assign_anchor_to_bbox(gt, anc, iou_threshold=0.49),
                                   [0, 0])


# --------------------------------------------------------------------------- detection
def _random_detection_case(rng, grid, B=3, n_cls=3, n_anc=40):
    anchors = _random_boxes(rng, n_anc, grid)[None]
    probs = rng.uniform(0, 1, (B, n_cls + 1, n_anc))
    if grid:
        probs = onp.round(probs * 8) / 8                     # many equal scores
    probs /= onp.maximum(probs.sum(axis=1, keepdims=True), 1e-3)
    offsets = rng.randn(B, 4 * n_anc) * 0.5
    if grid:
        offsets[:, ::2] = 0
    return probs.astype('float32'), offsets.astype('float32'), anchors


@pytest.mark.parametrize('kwargs', [{}, {'nms_threshold': 0.3}, {'nms_threshold': 0.7},
                                    {'force_suppress': True}, {'clip': False},
                                    {'nms_topk': 5}, {'nms_threshold': 0},
                                    {'threshold': 0.2}])
def test_multibox_detection_random_vs_operator(kwargs):
    rng = onp.random.RandomState(3)
    for t in range(40):
        cp, op, anc = _random_detection_case(rng, grid=t % 2 == 0)
        ours = A.multibox_detection(cp, op, anc, impl='d2lcv', **kwargs)
        theirs = A.multibox_detection(np.array(cp), np.array(op), np.array(anc), impl='npx',
                                      **kwargs).asnumpy()
        onp.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5,
                                    err_msg=f'case {t} {kwargs}')


def test_multibox_detection_vs_loop_and_no_overlap_left():
    rng = onp.random.RandomState(4)
    for t in range(30):
        cp, op, anc = _random_detection_case(rng, grid=t % 2 == 1)
        thr = [0.5, 0.3, 0.6][t % 3]
        ours = A.multibox_detection(cp, op, anc, nms_threshold=thr)
        onp.testing.assert_allclose(ours, R.multibox_detection_ref(cp, op, anc, thr),
                                    rtol=1e-5, atol=1e-5, err_msg=f'case {t}')
        for img in ours:
            kept = img[img[:, 0] >= 0]
            assert (onp.diff(img[img[:, 1] >= 0][:, 1]) <= 0).all()   # sorted by score
            for c in onp.unique(kept[:, 0]):
                boxes = kept[kept[:, 0] == c, 2:]
                iou = A.box_iou(boxes, boxes)
                assert (iou[~onp.eye(len(boxes), dtype=bool)] < thr).all()


@pytest.mark.parametrize('kwargs', [{}, {'nms_threshold': 0.3}, {'force_suppress': True},
                                    {'clip': False}, {'nms_topk': 5}, {'nms_threshold': 0},
                                    {'threshold': 0.2}])
def test_compiled_detection_equals_python_loops_operator_and_numpy(kwargs):
    # The Numba kernel, the same loops run by Python, the vectorised NumPy fallback and the
    # operator: row for row (kernel and operator bit for bit).
    assert A._detection_kernel() is not None, 'numba is a dependency of d2lcv'
    rng = onp.random.RandomState(7)
    full = dict(dict(nms_threshold=0.5, threshold=0.01, clip=True, force_suppress=False,
                     nms_topk=-1), **kwargs)
    for t in range(12):
        cp, op, anc = _random_detection_case(rng, grid=t % 2 == 1)
        args = (cp, op.reshape(cp.shape[0], -1, 4), anc[0], full['nms_threshold'],
                full['threshold'], full['clip'], full['force_suppress'], A.VARIANCES,
                full['nms_topk'])
        compiled = A._multibox_detection_loops(*args, kernel=A._detection_kernel())
        onp.testing.assert_array_equal(A.multibox_detection(cp, op, anc, **kwargs), compiled)
        # (in Python, NumPy's float32 exp may differ from the compiled one in the last bit)
        python = A._multibox_detection_loops(*args)
        onp.testing.assert_array_equal(python[..., :2], compiled[..., :2])
        onp.testing.assert_allclose(python, compiled, rtol=1e-6, atol=1e-7)
        onp.testing.assert_allclose(A._multibox_detection(*args), compiled, rtol=1e-6,
                                    atol=1e-6, err_msg=f'case {t}')
        theirs = npx.multibox_detection(np.array(cp), np.array(op), np.array(anc),
                                        **kwargs).asnumpy()
        onp.testing.assert_array_equal(compiled, theirs, err_msg=f'case {t}')


def test_compiled_detection_tinyssd_worst_case_bitwise():
    # every anchor of TinySSD enters NMS (the benchmark's worst case, 2 images)
    sizes = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
    anchors = onp.concatenate([A.multibox_prior(onp.zeros((1, 1, s, s)), sizes[i], [1, 2, 0.5])
                               for i, s in enumerate([32, 16, 8, 4, 1])], axis=1)
    rng = onp.random.RandomState(8)
    logits = rng.randn(2, 2, anchors.shape[1])
    probs = (onp.exp(logits) / onp.exp(logits).sum(axis=1, keepdims=True)).astype('float32')
    offsets = (0.1 * rng.randn(2, 4 * anchors.shape[1])).astype('float32')
    ours = A.multibox_detection(probs, offsets, anchors)
    theirs = npx.multibox_detection(np.array(probs), np.array(offsets), np.array(anchors),
                                    nms_threshold=0.5).asnumpy()
    assert (ours[:, :, 1] >= 0.01).sum() > 5000 and (ours[:, :, 0] >= 0).sum() > 100
    onp.testing.assert_array_equal(ours, theirs)


def test_nms_random_vs_loop_ties_and_threshold():
    rng = onp.random.RandomState(5)
    for t in range(30):
        n = 150
        boxes = _random_boxes(rng, n, grid=t % 2 == 0)
        scores = onp.round(rng.uniform(0, 1, n) * (4 if t % 2 == 0 else 1e6)).astype('float32')
        thr = [0.5, 0.25, 0.75][t % 3]
        onp.testing.assert_array_equal(A.nms(boxes, scores, thr),
                                       R.nms_ref(boxes, scores, thr))
    # a box exactly at the threshold is suppressed (>=), just below it survives
    boxes = onp.array([[0, 0, 1, 1], [0, 0, 0.5, 1], [0, 0, 0.25, 1]], 'float32')
    onp.testing.assert_array_equal(A.nms(boxes, onp.array([3, 2, 1.]), 0.5), [0, 2])
    onp.testing.assert_array_equal(A.nms(boxes, onp.array([3, 2, 1.]), 0.5 + 1e-6),
                                   [0, 1, 2])
    assert A.nms(onp.zeros((0, 4)), onp.zeros(0), 0.5).shape == (0,)


def test_nms_blocks_boundaries():
    # more boxes than one block, in a chain where each suppresses the next: exercises the
    # fixed point inside a block and the kept list across blocks
    n = 200
    x = onp.arange(n, dtype='float32') * 0.1
    boxes = onp.stack([x, onp.zeros(n), x + 0.25, onp.ones(n)], axis=1).astype('float32')
    scores = onp.linspace(1, 0, n).astype('float32')
    onp.testing.assert_array_equal(A.nms(boxes, scores, 0.3), R.nms_ref(boxes, scores, 0.3))


# --------------------------------------------------------------------------- errors
def test_bad_input_errors():
    good = onp.array([[0, 0, 1, 1]], 'float32')
    bad = onp.array([[0, 0, 1, 1], [0.6, 0, 0.5, 1]], 'float32')
    with pytest.raises(ValueError, match=r'boxes2\[1\].*x2 < x1'):
        A.box_iou(good, bad)
    with pytest.raises(ValueError, match=r'shape \(\.\.\., 4\)'):
        A.box_iou(good, onp.zeros((2, 5)))
    with pytest.raises(ValueError, match='same B'):
        A.box_iou(onp.zeros((2, 3, 4)), onp.zeros((3, 3, 4)))
    anchors = onp.array([ANCHORS_13_4_3], 'float32')
    labels = onp.array([[[0, 0.5, 0.1, 0.4, 0.3]]], 'float32')
    with pytest.raises(ValueError, match=r'labels\[\.\.\., 1:\]\[0, 0\].*x2 < x1'):
        A.multibox_target(anchors, labels)
    with pytest.raises(ValueError, match=r'anchors\[0, 1\].*y2 < y1'):
        A.multibox_target(onp.array([[[0, 0, 1, 1], [0, 0.5, 1, 0.4]]], 'float32'),
                          onp.array([GT], 'float32'))
    with pytest.raises(ValueError, match=r'labels must have shape \(\.\.\., 5\)'):
        A.multibox_target(anchors, onp.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match='cls_preds'):
        A.multibox_target(anchors, onp.array([GT], 'float32'), onp.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r'labels\[0, 1\].*padding'):
        A.multibox_target(anchors, onp.array([[GT[0], [-1, 0.5, 0.5, 0.6, 0.6]]], 'float32'))
    cp = onp.full((2, 3, 4), 0.3, 'float32')
    with pytest.raises(ValueError, match='offset_preds'):
        A.multibox_detection(cp, onp.zeros((1, 16)), onp.array([ANCHORS_13_4_4]))
    with pytest.raises(ValueError, match='anchors'):
        A.multibox_detection(cp, onp.zeros((2, 16)), onp.array([ANCHORS_13_4_4[:3]]))
    with pytest.raises(ValueError, match='impl'):
        A.multibox_prior(onp.zeros((1, 1, 2, 2)), [0.5], [1], impl='gluon')


def test_impl_default_is_switchable():
    before = A.get_impl()                  # 'd2lcv' unless $D2LCV_ANCHORS_IMPL says otherwise
    try:
        A.set_impl('npx')
        assert A.get_impl() == 'npx' and A.get_impl('d2lcv') == 'd2lcv'
        out = A.multibox_prior(np.zeros((1, 1, 2, 2)), [0.5], [1])
        assert out.shape == (1, 4, 4)
        A.set_impl('d2lcv')
        assert A.get_impl() == 'd2lcv'
    finally:
        A.set_impl(before)


# --------------------------------------------------------------------------- 13.5
def test_display_anchors_draws_every_anchor():
    ax = A.display_anchors(fmap_w=4, fmap_h=2, s=[0.15])
    assert len(ax.patches) == 4 * 2 * 3
    h, w = d2lcv.bbox.read_image('catdog.jpg').shape[:2]
    assert (h, w) == (561, 728)
    # the 1 x 1 map's anchors are centred on the image
    ax = A.display_anchors(fmap_w=1, fmap_h=1, s=[0.8])
    for p in ax.patches:
        cx, cy = p.get_x() + p.get_width() / 2, p.get_y() + p.get_height() / 2
        assert abs(cx - w / 2) < 1e-3 and abs(cy - h / 2) < 1e-3
    d2lcv.plt.close('all')


def test_multibox_prior_in_hybridized_block():
    from mxnet.gluon import nn

    class Prior(nn.HybridBlock):
        def hybrid_forward(self, F, x):
            return A.multibox_prior(x, sizes=[0.2, 0.272], ratios=[1, 2, 0.5])

    net = Prior()
    net.hybridize()
    X = np.zeros((2, 3, 4, 5))
    onp.testing.assert_array_equal(net(X).asnumpy(),
                                   A.multibox_prior(X, [0.2, 0.272], [1, 2, 0.5]).asnumpy())


def test_edge_cases_empty_and_all_below_threshold():
    anchors = onp.array([ANCHORS_13_4_3], 'float32')
    off, mask, cls = A.multibox_target(anchors, onp.zeros((2, 0, 5), 'float32'))
    assert off.shape == (2, 20) and (cls == -1).all() and (mask == 0).all()
    assert (A.assign_anchor_to_bbox(onp.zeros((0, 4)), anchors[0]) == -1).all()
    cp = onp.array([CLS_13_4_4], 'float32')
    for kwargs in ({'threshold': 0.95}, {'threshold': 0.95, 'nms_threshold': 0}):
        ours = A.multibox_detection(cp, onp.zeros((1, 16)), onp.array([ANCHORS_13_4_4]),
                                    **kwargs)
        op = npx.multibox_detection(np.array(cp), np.zeros((1, 16)),
                                    np.array([ANCHORS_13_4_4]), **kwargs).asnumpy()
        onp.testing.assert_array_equal(ours, op)
        assert (ours == -1).all()
    one = A.multibox_detection(cp[:, :, :1], onp.zeros((1, 4)), onp.array([ANCHORS_13_4_4[:1]]))
    onp.testing.assert_allclose(one[0, 0], [0, 0.9] + ANCHORS_13_4_4[0], atol=1e-6)


def test_tinyssd_sized_workload_vs_operator():
    # 2 images, the 5,444 anchors of TinySSD, 1-3 objects each; detection with most anchors
    # entering NMS (many blocks, a long kept list)
    sizes = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
    anchors = onp.concatenate([A.multibox_prior(onp.zeros((1, 1, s, s)), sizes[i], [1, 2, 0.5])
                               for i, s in enumerate([32, 16, 8, 4, 1])], axis=1)
    rng = onp.random.RandomState(6)
    labels = -onp.ones((2, 3, 5), 'float32')
    for b, n in enumerate([1, 3]):
        xy = rng.uniform(0, 0.7, (n, 2))
        labels[b, :n] = onp.concatenate([onp.zeros((n, 1)), xy, xy + rng.uniform(0.1, 0.3, (n, 2))],
                                        axis=1)
    ours = A.multibox_target(anchors, labels)
    op = npx.multibox_target(np.array(anchors), np.array(labels), np.zeros((2, 2, 5444)))
    for a, b in zip(ours, op):
        onp.testing.assert_allclose(a, b.asnumpy(), rtol=1e-5, atol=1e-5)
    logits = rng.randn(2, 3, 5444)
    probs = (onp.exp(logits) / onp.exp(logits).sum(axis=1, keepdims=True)).astype('float32')
    offsets = (0.1 * rng.randn(2, 4 * 5444)).astype('float32')
    for thr in (0.5, 0.3):
        ours = A.multibox_detection(probs, offsets, anchors, nms_threshold=thr)
        op = npx.multibox_detection(np.array(probs), np.array(offsets), np.array(anchors),
                                    nms_threshold=thr).asnumpy()
        onp.testing.assert_allclose(ours, op, rtol=1e-5, atol=1e-5)
