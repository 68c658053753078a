"""Tests of section 13.7: TinySSD's shapes, its anchors, the losses, training, prediction."""
import os
import subprocess
import sys

import numpy as onp
import pytest

import mxnet as mx
from mxnet import autograd, gluon, init, np, npx

import d2lcv as d2l
from d2lcv import ssd
from d2lcv.bananas import load_data_bananas


def forward(x, block):
    block.initialize()
    return block(x)


def impls():
    """Both implementations of the anchor operators."""
    return ['npx', 'd2lcv']


@pytest.fixture(scope='module')
def tiny_twin(tmp_path_factory):
    root = tmp_path_factory.mktemp('ssd') / 'bananas'
    return d2l.hub.synth_twin('bananas', root=str(root), num_train=48, num_val=16, edge=64)


# ----------------------------------------------------------------------------------------
# the chapter's printed shapes
# ----------------------------------------------------------------------------------------

def test_chapter_shapes():
    Y1 = forward(np.zeros((2, 8, 20, 20)), ssd.cls_predictor(5, 10))
    Y2 = forward(np.zeros((2, 16, 10, 10)), ssd.cls_predictor(3, 10))
    assert (Y1.shape, Y2.shape) == ((2, 55, 20, 20), (2, 33, 10, 10))
    assert ssd.concat_preds([Y1, Y2]).shape == (2, 25300)
    assert forward(np.zeros((2, 3, 20, 20)), ssd.down_sample_blk(10)).shape == (2, 10, 10, 10)
    assert forward(np.zeros((2, 3, 256, 256)), ssd.base_net()).shape == (2, 64, 32, 32)


def test_tiny_ssd_shapes_hybridized_or_not():
    net = ssd.TinySSD(num_classes=1)
    net.initialize()
    X = np.zeros((32, 3, 256, 256))
    anchors, cls_preds, bbox_preds = net(X)
    assert anchors.shape == (1, 5444, 4)
    assert cls_preds.shape == (32, 5444, 2)
    assert bbox_preds.shape == (32, 21776)
    X = np.random.uniform(size=(2, 3, 256, 256))
    plain = net(X)
    net.hybridize()
    hybrid = net(X)
    for a, b in zip(plain, hybrid):
        onp.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-6)


def test_flatten_pred_keeps_each_anchor_together():
    # channel i(q+1)+j at (y, x) must land at anchor (y*w + x)*a + i, class j
    a, q, h, w = 2, 2, 3, 4
    pred = np.arange(a * (q + 1) * h * w, dtype='float32').reshape(1, a * (q + 1), h, w)
    flat = ssd.flatten_pred(pred).reshape(1, -1, q + 1).asnumpy()
    p = pred.asnumpy()
    for y in range(h):
        for x in range(w):
            for i in range(a):
                for j in range(q + 1):
                    assert flat[0, (y * w + x) * a + i, j] == p[0, i * (q + 1) + j, y, x]


@pytest.mark.parametrize('impl', impls())
def test_anchors_equal_the_chapter_blk_forward(impl):
    net = ssd.TinySSD(num_classes=2, impl=impl)
    net.initialize()
    X = np.random.uniform(size=(1, 3, 128, 96))
    anchors, cls_preds, bbox_preds = net(X)
    # the chapter's forward: blk_forward at each scale, anchors from npx.multibox_prior
    per_scale, Y = [], X
    for i in range(5):
        Y, a, c, b = ssd.blk_forward(Y, getattr(net, f'blk_{i}'), ssd.SSD_SIZES[i],
                                     ssd.SSD_RATIOS[i], getattr(net, f'cls_{i}'),
                                     getattr(net, f'bbox_{i}'), impl='npx')
        per_scale.append((a, c, b))
    ref = np.concatenate([a for a, _, _ in per_scale], axis=1)
    onp.testing.assert_allclose(anchors.asnumpy(), ref.asnumpy(), atol=1e-6)
    ref_cls = ssd.concat_preds([c for _, c, _ in per_scale]).reshape(1, -1, 3)
    onp.testing.assert_allclose(cls_preds.asnumpy(), ref_cls.asnumpy(), rtol=1e-5, atol=1e-6)
    # the cache hands back the same array for the same input shape, a new one otherwise
    assert net(X)[0] is anchors
    assert net(np.zeros((1, 3, 64, 64)))[0].shape[1] != anchors.shape[1]


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="impl must be one of \\('d2lcv', 'npx'\\), got 'cuda'"):
        ssd.detection_ops('cuda')


# ----------------------------------------------------------------------------------------
# losses and metrics
# ----------------------------------------------------------------------------------------

def _random_targets(rng, B=3, A=7, q=2):
    cls_preds = np.array(rng.normal(size=(B, A, q + 1)), dtype='float32')
    cls_labels = np.array(rng.integers(0, q + 1, (B, A)), dtype='float32')
    bbox_preds = np.array(rng.normal(size=(B, 4 * A)), dtype='float32')
    bbox_labels = np.array(rng.normal(size=(B, 4 * A)), dtype='float32')
    pos = onp.repeat(cls_labels.asnumpy() > 0, 4, axis=1).astype('float32')
    return cls_preds, cls_labels, bbox_preds, bbox_labels, np.array(pos)


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - onp.log(onp.exp(x).sum(axis=-1, keepdims=True))


def test_calc_loss_and_ssdloss_default_match_numpy():
    rng = onp.random.default_rng(0)
    args = _random_targets(rng)
    cp, cl, bp, bl, bm = (a.asnumpy() for a in args)
    logp = _log_softmax(cp.astype(onp.float64))
    ce = -onp.take_along_axis(logp, cl.astype(int)[..., None], axis=-1)[..., 0].mean(axis=1)
    l1 = onp.abs(bp * bm - bl * bm).mean(axis=1)
    onp.testing.assert_allclose(ssd.calc_loss(*args).asnumpy(), ce + l1, rtol=1e-5)
    onp.testing.assert_allclose(ssd.SSDLoss()(*args).asnumpy(), ce + l1, rtol=1e-5)


def test_ssdloss_options_match_formulas():
    rng = onp.random.default_rng(1)
    args = _random_targets(rng)
    cp, cl, bp, bl, bm = (a.asnumpy().astype(onp.float64) for a in args)
    logp = onp.take_along_axis(_log_softmax(cp), cl.astype(int)[..., None], axis=-1)[..., 0]
    p = onp.exp(logp)
    d = (bp - bl) * bm
    sigma = 2.0
    smooth = onp.where(onp.abs(d) < 1 / sigma ** 2, (sigma * d) ** 2 / 2,
                       onp.abs(d) - 0.5 / sigma ** 2)
    gamma, alpha = 2.0, 0.25
    a = onp.where(cl > 0, alpha, 1 - alpha)
    focal = (-a * (1 - p) ** gamma * logp).mean(axis=1)
    got = ssd.SSDLoss(cls='focal', box='smooth_l1', sigma=sigma, gamma=gamma, alpha=alpha,
                      cls_weight=2.0, box_weight=0.5)(*args).asnumpy()
    onp.testing.assert_allclose(got, 2.0 * focal + 0.5 * smooth.mean(axis=1), rtol=1e-5)
    # normalised by the number of positive anchors instead of the number of anchors
    npos = onp.maximum((cl > 0).sum(axis=1), 1)
    got = ssd.SSDLoss(normalize='positives')(*args).asnumpy()
    onp.testing.assert_allclose(got, (-logp).sum(axis=1) / npos + onp.abs(d).sum(axis=1) / npos,
                                rtol=1e-5)


def test_hard_negative_weights_exact():
    ce = np.array([[0.1, 0.9, 0.5, 0.7, 0.3, 0.2]])
    labels = np.array([[1, 0, 0, 0, 2, 0]], dtype='float32')
    w = ssd._hard_negative_weights(ce, labels, 1).asnumpy()
    # two positives -> the two hardest negatives (losses 0.9 and 0.7) are kept
    assert w.tolist() == [[1, 1, 0, 1, 1, 0]]
    # an image without positives still keeps `ratio` negatives
    w = ssd._hard_negative_weights(ce, np.zeros((1, 6)), 2).asnumpy()
    assert w.tolist() == [[0, 1, 0, 1, 0, 0]]


def test_cls_eval_and_bbox_eval_exact():
    cls_preds = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
    cls_labels = np.array([[0, 1, 1]], dtype='float32')
    assert ssd.cls_eval(cls_preds, cls_labels) == 2.0
    bbox_preds = np.array([[1.0, -2.0, 3.0, 0.5]])
    bbox_labels = np.array([[0.5, 0.0, 3.0, 1.0]])
    masks = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert ssd.bbox_eval(bbox_preds, bbox_labels, masks) == 2.5


# ----------------------------------------------------------------------------------------
# training and prediction
# ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_training_loss_falls(tiny_twin):
    mx.random.seed(0)
    train_iter, val_iter = load_data_bananas(16, 64, data_dir=tiny_twin)
    net = ssd.TinySSD(1)
    result = ssd.train_ssd(net, train_iter, 4, devices=[mx.cpu()], val_iter=val_iter,
                           progress=False, verbose=False)
    losses = result['loss_history']
    assert len(losses) == 4 and losses[-1] < 0.7 * losses[0]
    assert losses[-1] < losses[1]  # still learning after the first epoch
    assert result['bbox_mae'] > 0
    # the reported mAP is the evaluator's on the trained net (levels: tests/test_quality.py)
    assert result['val_map'] == pytest.approx(
        ssd.evaluate_ssd_map(net, val_iter, devices=[mx.cpu()])['map50'])
    assert result['examples_per_sec'] > 0


@pytest.mark.slow
@pytest.mark.parametrize('impl', impls())
def test_training_with_loss_options_on_two_devices(tiny_twin, impl):
    mx.random.seed(1)
    train_iter, _ = load_data_bananas(16, 64, data_dir=tiny_twin)
    net = ssd.TinySSD(1, impl=impl)
    loss = ssd.SSDLoss(cls='focal', box='smooth_l1', negative_ratio=3, normalize='positives')
    result = ssd.train_ssd(net, train_iter, 3, devices=[mx.cpu(0), mx.cpu(1)], loss=loss,
                           optimizer='adam', lr=1e-3, progress=False, verbose=False)
    assert result['loss_history'][-1] < result['loss_history'][0]


def test_train_step_equals_the_chapter_step(tiny_twin):
    """One d2lcv step (hybridized, device-side metrics) == the chapter's loop body."""
    train_iter, _ = load_data_bananas(8, 64, data_dir=tiny_twin)
    X, Y = next(ssd.batches(train_iter))
    nets = []
    for hybrid in (False, True):
        mx.random.seed(7)
        net = ssd.TinySSD(1)
        net.initialize(init=init.Xavier())
        net(X)  # finish the deferred initialisation
        if hybrid:
            net.hybridize(static_alloc=True, static_shape=True)
        nets.append(net)
    ref, new = nets
    for p, q in zip(ref.collect_params().values(), new.collect_params().values()):
        q.set_data(p.data())
    t_ref = gluon.Trainer(ref.collect_params(), 'sgd', {'learning_rate': 0.2, 'wd': 5e-4})
    with autograd.record():
        anchors, cls_preds, bbox_preds = ref(X)
        bbox_labels, bbox_masks, cls_labels = npx.multibox_target(
            anchors, Y, cls_preds.transpose(0, 2, 1))
        l = ssd.calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
    l.backward()
    t_ref.step(8)
    expected = (ssd.cls_eval(cls_preds, cls_labels), ssd.bbox_eval(bbox_preds, bbox_labels,
                                                                   bbox_masks))
    t_new = gluon.Trainer(new.collect_params(), 'sgd', {'learning_rate': 0.2, 'wd': 5e-4})
    sums = ssd._train_step(new, X, Y, ssd.calc_loss, t_new, [mx.cpu()],
                           ssd.detection_ops('npx'))
    assert float(sums[0]) == expected[0]
    assert float(sums[2]) == pytest.approx(expected[1], rel=1e-4)
    assert float(sums[4]) == pytest.approx(float(l.sum()), rel=1e-5)
    for (k, p), q in zip(ref.collect_params().items(), new.collect_params().values()):
        onp.testing.assert_allclose(p.data().asnumpy(), q.data().asnumpy(), rtol=1e-4,
                                    atol=1e-5, err_msg=k)


def test_predict_and_display(tiny_twin):
    net = ssd.TinySSD(1)
    net.initialize(init=init.Xavier())
    _, val_iter = load_data_bananas(4, 64, data_dir=tiny_twin)
    X = val_iter.next().data[0]
    out = ssd.detect(net, X)
    assert out.shape == (4, 344, 6)
    kept = ssd.predict(X[:1], net)
    assert kept.shape[1] == 6 and (kept[:, 0].asnumpy() != -1).all()
    assert kept.shape[0] == int((out[0, :, 0] != -1).sum())
    img = X[0].transpose(1, 2, 0) / 255
    ax = ssd.display(img, kept, threshold=0.0)
    assert len(ax.patches) == kept.shape[0]
    d2l.plt.close('all')


def test_evaluate_ssd_map_of_an_oracle(monkeypatch, tiny_twin):
    """Detections equal to the labels score mAP 1; the padded images are dropped."""
    _, val_iter = load_data_bananas(6, 64, data_dir=tiny_twin)  # 16 = 6 + 6 + 4 (+2 pad)

    def oracle(net, X, device, impl, nms_threshold):
        return oracle.labels.pop(0)

    labels = [b.label[0] for b in val_iter]
    oracle.labels = [np.concatenate([y[:, :, :1], np.ones_like(y[:, :, :1]) * 0.9,
                                     y[:, :, 1:]], axis=-1) for y in labels]
    monkeypatch.setattr(ssd, 'detect', oracle)
    r = ssd.evaluate_ssd_map(None, val_iter, devices=[mx.cpu()])
    assert r['map50'] == pytest.approx(1.0) and r['num_gt'] == [16]


def test_one_switch_chooses_the_anchor_operators(monkeypatch):
    # SSD's operators follow d2lcv.anchors' one switch: impl=, set_impl, $D2LCV_ANCHORS_IMPL
    from d2lcv import anchors
    before = anchors.get_impl()
    try:
        anchors.set_impl('npx')
        assert ssd.detection_ops().name == 'npx' and ssd.TinySSD(1).impl is None
        assert ssd.detection_ops('d2lcv').name == 'd2lcv'
        anchors.set_impl('d2lcv')
        assert ssd.detection_ops().name == 'd2lcv'
        assert ssd.detection_ops('npx').name == 'npx'
    finally:
        anchors.set_impl(before)
    # the old second switch says where the one switch is, rather than being ignored
    monkeypatch.setenv('D2LCV_DET_BACKEND', 'npx')
    with pytest.raises(ValueError, match='D2LCV_ANCHORS_IMPL'):
        ssd.detection_ops()
    assert ssd.detection_ops('npx').name == 'npx'  # an explicit impl needs no default


def test_the_environment_sets_the_default_for_anchors_and_ssd_alike():
    code = ('from d2lcv import anchors, rcnn, ssd\n'
            'print(anchors.get_impl(), ssd.detection_ops().name)')
    env = dict(os.environ, D2LCV_ANCHORS_IMPL='npx')
    env.pop('D2LCV_DET_BACKEND', None)
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ['npx', 'npx']


def test_both_impls_give_the_same_training_step(tiny_twin):
    pytest.importorskip('d2lcv.anchors')
    train_iter, _ = load_data_bananas(8, 64, data_dir=tiny_twin)
    X, Y = next(ssd.batches(train_iter))
    results = []
    for impl in ('npx', 'd2lcv'):
        mx.random.seed(3)
        net = ssd.TinySSD(1, impl=impl)
        net.initialize(init=init.Xavier())
        trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.2})
        sums = ssd._train_step(net, X, Y, ssd.calc_loss, trainer, [mx.cpu()],
                               ssd.detection_ops(impl))
        params = [p.data().asnumpy() for p in net.collect_params().values()]
        out = ssd.detect(net, X[:2]).asnumpy()
        results.append(([float(v) for v in sums], params, out))
    (s1, p1, o1), (s2, p2, o2) = results
    onp.testing.assert_allclose(s1, s2, rtol=1e-5)
    for a, b in zip(p1, p2):
        onp.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    onp.testing.assert_allclose(o1, o2, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_run_section_writes_figures_and_metrics(tmp_path, monkeypatch, capsys):
    import json
    from d2lcv import cli
    monkeypatch.setenv('D2LCV_TINY', '1')  # restored afterwards (the CLI sets it)
    code = cli.main(['run', 'ssd', '--tiny', '--devices', 'cpu', '--out', str(tmp_path),
                     '--set', 'num_epochs=2', '--set', 'num_train=64'])
    assert code == 0
    (run_dir,) = list(tmp_path.iterdir())
    metrics = json.load(open(run_dir / 'metrics.json'))['13.7']
    assert metrics['status'] == 'ok' and metrics['epochs'] == 2
    assert metrics['last_loss'] < metrics['first_loss']
    assert {'val_map50', 'baseline_val_map50'} <= set(metrics)  # model next to baseline
    for name in ('13_7_curves.png', '13_7_detections.png'):
        assert (run_dir / name).stat().st_size > 1000
