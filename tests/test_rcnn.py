"""13.8: RoI pooling and RoIAlign against the chapter, MXNet's operators and loops."""
import mxnet as mx
import numpy as onp
import pytest
from mxnet import np, npx

import anchors_ref as R  # the slow loop oracle, tests/anchors_ref.py
from d2lcv import rcnn

npx.set_np()


pytestmark = pytest.mark.usefixtures('d2lcv_anchors_impl')


@pytest.mark.parametrize('impl', ['d2lcv', 'npx'])
def test_roi_pool_chapter(impl):
    X = np.arange(16).reshape(1, 1, 4, 4)
    rois = np.array([[0, 0, 0, 20, 20], [0, 0, 10, 30, 30]])
    out = rcnn.roi_pool(X, rois, pooled_size=(2, 2), spatial_scale=0.1, impl=impl)
    assert isinstance(out, np.ndarray)
    onp.testing.assert_array_equal(out.asnumpy(), [[[[5, 6], [9, 10]]], [[[9, 11], [13, 15]]]])


def test_roi_pool_rounds_half_away_from_zero():
    X = onp.arange(36, dtype='float32').reshape(1, 1, 6, 6)
    # corners 15 * 0.1 = 1.5 -> 2 and 25 * 0.1 = 2.5 -> 3 (half away from zero; rounding half
    # to even would give 2 and 2, and the maximum X[2, 2] instead of X[3, 3])
    out = rcnn.roi_pool(X, onp.array([[0, 15, 15, 25, 25]], 'float32'), (1, 1), 0.1)
    onp.testing.assert_array_equal(out, [[[[X[0, 0, 3, 3]]]]])
    op = npx.roi_pooling(np.array(X), np.array([[0, 15, 15, 25, 25]]), pooled_size=(1, 1),
                         spatial_scale=0.1).asnumpy()
    onp.testing.assert_array_equal(out, op)


def _case(rng, t):
    N, C, H, W = 2, 3, rng.randint(1, 12), rng.randint(1, 12)
    x = rng.randn(N, C, H, W).astype('float32')
    n = rng.randint(1, 6)
    xy = rng.uniform(-20, 120, (n, 2))
    wh = rng.uniform(10, 80, (n, 2))
    if t % 3 == 0:                     # on a 5-pixel grid: x.5 after scaling, ties for max
        xy, wh = onp.round(xy / 5) * 5, onp.round(wh / 5) * 5
        x = onp.round(x)
    rois = onp.concatenate([rng.randint(0, N, (n, 1)), xy, xy + wh], 1).astype('float32')
    pooled = (rng.randint(1, 5), rng.randint(1, 5))
    scale = [0.1, 0.125, 0.0625, 0.25][t % 4]
    return x, rois, pooled, scale


def test_roi_pool_random_vs_operator_and_loop():
    rng = onp.random.RandomState(0)
    for t in range(200):
        x, rois, pooled, scale = _case(rng, t)
        ours = rcnn.roi_pool(x, rois, pooled, scale)
        op = npx.roi_pooling(np.array(x), np.array(rois), pooled_size=pooled,
                             spatial_scale=scale).asnumpy()
        onp.testing.assert_array_equal(ours, op, err_msg=f'case {t}')
        if t % 5 == 0:
            onp.testing.assert_array_equal(ours, R.roi_pool_ref(x, rois, pooled, scale))


def test_roi_align_random_vs_operator_and_loop():
    rng = onp.random.RandomState(1)
    for t in range(200):
        x, rois, pooled, scale = _case(rng, t)
        sr, aligned = [-1, 2, 1][t % 3], bool(t % 2)
        ours = rcnn.roi_align(x, rois, pooled, scale, sample_ratio=sr, aligned=aligned)
        op = mx.nd.contrib.ROIAlign(mx.nd.array(x), mx.nd.array(rois), pooled_size=pooled,
                                    spatial_scale=scale, sample_ratio=sr,
                                    aligned=aligned).asnumpy()
        onp.testing.assert_allclose(ours, op, rtol=1e-5, atol=1e-5, err_msg=f'case {t}')
        if t % 5 == 0:
            ref = R.roi_align_ref(x, rois, pooled, scale, sample_ratio=sr, aligned=aligned)
            onp.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_roi_align_constant_map_and_npx_impl():
    X = np.ones((1, 2, 5, 5))
    rois = np.array([[0, 0, 0, 4, 4], [-1, 0, 0, 4, 4]])
    out = rcnn.roi_align(X, rois, (2, 2), 1.0)
    onp.testing.assert_allclose(out.asnumpy()[0], 1, rtol=1e-6)   # averages of ones
    onp.testing.assert_array_equal(out.asnumpy()[1], 0)           # batch index -1: zeros
    # (MXNet 1.9.1's ROIAlign mishandles a negative batch index: it zeroes an element of
    # another region and leaves its own output unwritten. So compare the valid region only.)
    op = rcnn.roi_align(X, rois[:1], (2, 2), 1.0, impl='npx')
    assert isinstance(op, np.ndarray)
    onp.testing.assert_allclose(out.asnumpy()[:1], op.asnumpy(), atol=1e-6)


def test_errors():
    X = onp.zeros((1, 1, 4, 4), 'float32')
    with pytest.raises(ValueError, match=r'rois\[1\].*x2 < x1'):
        rcnn.roi_pool(X, onp.array([[0, 0, 0, 2, 2], [0, 3, 0, 2, 2]]), (2, 2), 1.0)
    with pytest.raises(ValueError, match='batch index 1'):
        rcnn.roi_pool(X, onp.array([[1, 0, 0, 2, 2]]), (2, 2), 1.0)
    with pytest.raises(ValueError, match=r'\(R, 5\)'):
        rcnn.roi_align(X, onp.array([[0, 0, 2, 2]]), (2, 2), 1.0)
    with pytest.raises(ValueError, match='no area'):
        rcnn.roi_align(X, onp.array([[0, 1, 1, 1, 3]]), (2, 2), 1.0, aligned=True)
    with pytest.raises(ValueError, match=r'\(N, C, H, W\)'):
        rcnn.roi_pool(onp.zeros((4, 4)), onp.array([[0, 0, 0, 2, 2]]), (2, 2), 1.0)


# ----------------------------------------------------------------------------------------
# TinyFasterRCNN: every stage against the chapter's operators, shapes, training
# ----------------------------------------------------------------------------------------

from d2lcv import anchors as A  # noqa: E402


def _labels():
    # two images: two boxes (classes 0 and 2), one box + a padding row
    return np.array([[[0, .1, .1, .4, .5], [2, .5, .4, .9, .9]],
                     [[0, .3, .2, .7, .6], [-1, -1, -1, -1, -1]]])


def test_rpn_targets_equal_multibox_target():
    anchors = A.multibox_prior(np.zeros((1, 3, 8, 8)), [0.2, 0.4], [1, 2, 0.5])
    labels = _labels()
    ours = rcnn.rpn_targets(anchors, labels)
    objectness = labels.asnumpy().copy()
    objectness[..., 0] = onp.where(objectness[..., 0] >= 0, 0, -1)
    # exactly the default implementation's labels; the operator's to float32 rounding
    ref = A.multibox_target(anchors, np.array(objectness))
    for o, r in zip(ours, ref):
        onp.testing.assert_array_equal(o.asnumpy(), r.asnumpy())
    ref = A.multibox_target(anchors, np.array(objectness), impl='npx')
    for o, r in zip(ours, ref):
        onp.testing.assert_allclose(o.asnumpy(), r.asnumpy(), rtol=1e-6, atol=1e-6)
    cls = ours[2].asnumpy()
    assert set(onp.unique(cls)) == {0, 1}          # object / background, whatever the class
    assert (cls[0] == 1).sum() >= 2 and (cls[1] == 1).sum() >= 1


@pytest.mark.parametrize('top_k', [-1, 30])
def test_propose_against_multibox_detection(top_k):
    rng = onp.random.RandomState(0)
    anchors = A.multibox_prior(np.zeros((1, 3, 6, 6)), [0.3, 0.5], [1, 2, 0.5])
    B, num = 3, anchors.shape[1]
    rpn_cls = np.array(rng.randn(B, num, 2).astype('float32'))
    rpn_box = np.array(rng.randn(B, 4 * num).astype('float32') * 0.5)
    boxes, scores = rcnn.propose(rpn_cls, rpn_box, anchors, 20, nms_threshold=0.7,
                                 pre_nms_top_k=top_k)
    assert boxes.shape == (B, 20, 4) and scores.shape == (B, 20)
    probs = npx.softmax(rpn_cls).transpose(0, 2, 1)
    ref = npx.multibox_detection(probs, rpn_box, anchors, nms_threshold=0.7, threshold=0.0,
                                 clip=True, nms_topk=top_k).asnumpy()
    for b in range(B):
        kept = ref[b][ref[b, :, 0] >= 0]
        k = min(len(kept), 20)
        onp.testing.assert_allclose(boxes[b, :k], kept[:k, 2:], atol=1e-6)
        onp.testing.assert_allclose(scores[b, :k], kept[:k, 1], atol=1e-6)
        if k < 20:   # the rest: the best suppressed boxes, by score
            rest = ref[b][ref[b, :, 0] < 0][:20 - k]
            onp.testing.assert_allclose(boxes[b, k:], rest[:, 2:], atol=1e-6)


def test_propose_exact_nms():
    # three anchors; the first two overlap (IoU 0.6), zero offsets: NMS at 0.5 drops the
    # weaker of the two, which then comes after the kept ones
    anchors = np.array([[[0, 0, .5, .5], [0, .1, .5, .6], [.6, .6, 1, 1]]])
    logits = np.array([[[0, 2.], [0, 3.], [0, 1.]]])
    boxes, scores = rcnn.propose(logits, np.zeros((1, 12)), anchors, 3, nms_threshold=0.5)
    onp.testing.assert_allclose(boxes[0], [[0, .1, .5, .6], [.6, .6, 1, 1], [0, 0, .5, .5]],
                                atol=1e-6)
    onp.testing.assert_allclose(scores[0], 1 / (1 + onp.exp(-onp.array([3., 1, 2]))),
                                rtol=1e-6)


def test_label_proposals_exact():
    props = onp.array([[[.1, .1, .4, .5], [.12, .1, .4, .5], [.6, .6, .7, .7]],
                       [[.3, .2, .7, .6], [0, 0, .05, .05], [0, 0, 0, 0]]], 'float32')
    boxes, cls, off, gt, valid = rcnn.label_proposals(props, _labels())
    assert boxes.shape == (2, 5, 4)
    onp.testing.assert_array_equal(cls, [[1, 1, 0, 1, 3], [1, 0, 0, 1, 0]])
    onp.testing.assert_array_equal(gt, [[0, 0, -1, 0, 1], [0, -1, -1, 0, -1]])
    onp.testing.assert_array_equal(valid, [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    onp.testing.assert_allclose(off[0, 0], 0, atol=1e-6)     # the box itself
    ref = A.offset_boxes(props[0, 1], onp.array([.1, .1, .4, .5], 'float32'))
    onp.testing.assert_allclose(off[0, 1], ref, rtol=1e-5)
    onp.testing.assert_array_equal(off[0, 2], 0)
    # without the ground truth appended, the zero-area proposal is background, no NaN
    _, cls2, off2, _, _ = rcnn.label_proposals(props, _labels(), add_ground_truth=False)
    onp.testing.assert_array_equal(cls2, [[1, 1, 0], [1, 0, 0]])
    assert onp.isfinite(off2).all()


def test_sample_proposals_counts():
    classes = onp.zeros((3, 12), 'float32')
    classes[0, :5] = 1                # 5 positives, 7 negatives
    classes[1, :1] = 1                # 1 positive, 11 negatives
    valid = onp.ones((3, 12), bool)
    valid[2, 3:] = False              # 3 candidates only (negatives)
    idx, w = rcnn.sample_proposals(classes, valid, 8, 0.25, onp.random.default_rng(0))
    assert idx.shape == w.shape == (3, 8)
    for b in range(3):
        assert len(set(idx[b].tolist())) == 8         # no proposal twice
    picked = onp.take_along_axis(classes, idx, 1) * w
    onp.testing.assert_array_equal((picked > 0).sum(1), [2, 1, 0])
    onp.testing.assert_array_equal(w.sum(1), [8, 8, 3])
    assert onp.take_along_axis(valid, idx, 1)[w > 0].all()


@pytest.mark.parametrize('method', ['align', 'pool'])
def test_roi_features_against_roi_align_and_pool(method):
    rng = onp.random.RandomState(3)
    feat = np.array(rng.randn(2, 5, 8, 8).astype('float32'))
    boxes = onp.array([[[.1, .1, .6, .5], [0, 0, 1, 1]], [[.3, .2, .9, .95], [.5, .5, .6, .6]]],
                      'float32')
    out = rcnn.roi_features(feat, boxes, (64, 64), (4, 4), method)
    rois = onp.array([[0, 6.4, 6.4, 38.4, 32], [0, 0, 0, 64, 64], [1, 19.2, 12.8, 57.6, 60.8],
                      [1, 32, 32, 38.4, 38.4]], 'float32')
    if method == 'align':
        ref = rcnn.roi_align(feat.asnumpy(), rois, (4, 4), 0.125, sample_ratio=2,
                             impl='d2lcv')
    else:
        ref = rcnn.roi_pool(feat.asnumpy(), rois, (4, 4), 0.125, impl='d2lcv')
    assert out.shape == (4, 5, 4, 4)
    onp.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='same stride'):
        rcnn.roi_features(feat, boxes, (64, 32), (4, 4))


def test_decode_detections_against_per_image_multibox_detection():
    rng = onp.random.RandomState(4)
    B, N, q = 3, 10, 2
    xy = rng.uniform(0, .6, (B, N, 2))
    props = onp.concatenate([xy, xy + rng.uniform(.1, .4, (B, N, 2))], -1).astype('float32')
    logits = rng.randn(B, N, q + 1).astype('float32') * 2
    probs = onp.exp(logits) / onp.exp(logits).sum(-1, keepdims=True)
    off = (rng.randn(B, N, 4) * 0.5).astype('float32')
    det = rcnn.decode_detections(probs, off, props, nms_threshold=0.5, threshold=0.05)
    assert det.shape == (B, N, 6)
    for b in range(B):   # the slow obvious reference: one operator call per image
        ref = npx.multibox_detection(np.array(probs[b].T[None]), np.array(off[b].reshape(1, -1)),
                                     np.array(props[b][None]), nms_threshold=0.5,
                                     threshold=0.05).asnumpy()[0]
        kept = ref[ref[:, 0] >= 0]
        onp.testing.assert_allclose(det[b, :len(kept)], kept, atol=1e-6)
        assert (det[b, len(kept):] == -1).all()


def test_paste_masks_and_mask_targets_exact():
    # a filled-box instance: its target in its own box is all ones, pasted back it is the box
    gt = onp.zeros((1, 2, 16, 16), 'float32')
    gt[0, 1, 4:12, 2:10] = 1
    box = onp.array([[2 / 16, 4 / 16, 10 / 16, 12 / 16]], 'float32')
    t = rcnn.mask_targets(np.array(gt), box, onp.array([1]), onp.array([0]), (6, 6))
    onp.testing.assert_array_equal(t.asnumpy(), onp.ones((1, 6, 6)))
    pasted = rcnn.paste_masks(t.asnumpy(), box, (16, 16))
    onp.testing.assert_allclose(pasted[0], gt[0, 1], atol=1e-6)
    # the left half of a 2x2 mask pasted into the whole image: a bilinear ramp between
    # pixel columns 3.5 .. 11.5 (cell centres 4 and 12 of 16 pixels), 1 left, 0 right
    m = onp.array([[[1, 0], [1, 0]]], 'float32')
    row = rcnn.paste_masks(m, onp.array([[0, 0, 1, 1]], 'float32'), (16, 16))[0, 0]
    onp.testing.assert_allclose(row, onp.clip((11.5 - onp.arange(16)) / 8, 0, 1), atol=1e-6)


def test_mask_iou_exact():
    a = onp.zeros((2, 4, 4), bool)
    b = onp.zeros((2, 4, 4), bool)
    a[0, :2] = True
    b[0, 1:3] = True          # overlap 4 of union 12
    onp.testing.assert_allclose(rcnn.mask_iou(a, b), [4 / 12, 0])


def test_shapes_of_every_stage_at_the_chapters_size():
    net = rcnn.TinyFasterRCNN(num_classes=2, mask=True)
    net.initialize(init=mx.init.Xavier())
    X = np.random.uniform(size=(2, 3, 256, 256))
    anchors, rpn_cls, rpn_box, feat, fine = net.rpn(X)
    num = (32 ** 2 + 16 ** 2 + 8 ** 2) * 4
    assert anchors.shape == (1, num, 4) and rpn_cls.shape == (2, num, 2)
    assert rpn_box.shape == (2, 4 * num) and feat.shape == (2, 64, 32, 32)
    assert fine.shape == (2, 32, 64, 64)
    props, scores = rcnn.propose(rpn_cls, rpn_box, anchors, 16)
    assert props.shape == (2, 16, 4) and scores.shape == (2, 16)
    Z = rcnn.roi_features(fine, props, (256, 256), net.roi_size)
    assert Z.shape == (32, 32, 4, 4)
    cls, box = net.box_head(Z)
    assert cls.shape == (32, 3) and box.shape == (32, 4)
    assert net.mask_head(np.zeros((5, 32, 7, 7))).shape == (5, 2, 14, 14)
    det, masks = rcnn.detect(net, X, threshold=0.0)
    assert det.shape == (2, 16, 6) and masks.shape == (2, 16, 256, 256)
    assert net(X).shape == (2, 16, 6)
    labels = np.array([[[1, .1, .1, .5, .5]], [[0, .4, .3, .9, .8]]])
    gt_masks = np.zeros((2, 1, 256, 256))
    with mx.autograd.record():
        loss, sums = rcnn.faster_rcnn_loss(net, X, labels, gt_masks)
    assert loss.shape == (2,) and len(sums) == 6


def test_banana_masks_twin_roundtrip(tmp_path):
    from PIL import Image

    from d2lcv.synth import banana_masks as bm
    images, boxes, masks = bm.render_banana_masks(6, edge=32, seed=3)   # train: 2 * seed + 1
    bm.make_banana_masks(str(tmp_path), seed=1, num_train=6, num_val=2, edge=32)
    folder = tmp_path / 'banana-masks' / 'bananas_train'
    I, L, M = bm.read_banana_masks(str(folder))
    onp.testing.assert_array_equal(I, images)
    for i in range(6):
        k = len(boxes[i])
        onp.testing.assert_array_equal(M[i, :k], masks[i])
        onp.testing.assert_allclose(L[i, :k, 1:] * 32, boxes[i], atol=1e-5)
        # each box is the tight extent of its mask
        ys, xs = onp.nonzero(masks[i][0])
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == tuple(boxes[i][0])
    ids = onp.asarray(Image.open(folder / 'masks' / '0.png')).copy()
    ids[ids == 1] = 0
    Image.fromarray(ids).save(folder / 'masks' / '0.png')
    with pytest.raises(ValueError, match=r'masks/0.png: no pixel for object 1 \(line 2'):
        bm.read_banana_masks(str(folder))


def test_train_one_batch_on_two_devices_csv_layout(two_cpus, tmp_path):
    from d2lcv.bananas import load_data_bananas_csv
    from d2lcv.synth.bananas import make_banana_detection
    make_banana_detection(str(tmp_path), num_train=8, num_val=4, edge=32)
    train_iter, val_iter = load_data_bananas_csv(4, str(tmp_path / 'banana-detection'))
    net = rcnn.TinyFasterRCNN(1, sizes=rcnn.RPN_SIZES[:2], ratios=rcnn.RPN_RATIOS[:2])
    r = rcnn.train_faster_rcnn(net, train_iter, 1, devices=two_cpus, val_iter=val_iter,
                               max_batches=1, verbose=False, save_path=str(tmp_path / 'a.png'))
    assert onp.isfinite(r['loss_history'][0]) and r['val_map'] is not None


@pytest.mark.slow
def test_loss_falls(tmp_path):
    mx.random.seed(0)
    train_iter, _ = rcnn.load_data_banana_masks(16, num_train=48, num_val=4, edge=32,
                                                max_objects=1)
    net = rcnn.TinyFasterRCNN(1, sizes=rcnn.RPN_SIZES[:2], ratios=rcnn.RPN_RATIOS[:2],
                              mask=True, mask_size=(4, 4))
    r = rcnn.train_faster_rcnn(net, train_iter, 4, devices=[mx.cpu()], lr=3e-3,
                               verbose=False, save_path=str(tmp_path / 'a.png'), seed=0)
    # measured: 16.0, 9.4, 7.6, 6.8 (RPN + head + mask loss per image)
    assert r['loss_history'][-1] < 0.6 * r['loss_history'][0]


def test_box_head_on_the_coarse_map_and_roi_pooling():
    for kw in ({'box_map': 'coarse'}, {'roi': 'pool'}):
        net = rcnn.TinyFasterRCNN(1, **kw)
        net.initialize(init=mx.init.Xavier())
        X = np.random.uniform(size=(2, 3, 64, 64))
        with mx.autograd.record():
            loss, _ = rcnn.faster_rcnn_loss(net, X, np.array([[[0, .1, .1, .5, .5]]] * 2))
        loss.backward()
        grad = net.body.blk_0[0][0].weight.grad().asnumpy()
        assert onp.abs(grad).sum() > 0          # the loss reaches the backbone
        assert net(X).shape == (2, 16, 6)
    with pytest.raises(ValueError, match="box_map must be 'coarse' or 'fine'"):
        rcnn.TinyFasterRCNN(1, box_map='stride4')
