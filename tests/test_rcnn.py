"""13.8: RoI pooling and RoIAlign against the chapter, MXNet's operators and loops."""
import mxnet as mx
import numpy as onp
import pytest
from mxnet import np, npx

from d2lcv import anchors_ref as R
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
