"""Section 13.1: augmenters, the CIFAR-10 binary reader and its synthetic twin."""
import numpy as onp
import pytest
from mxnet import image, np

import d2lcv as d2l
from d2lcv import augment, hub
from d2lcv.synth import cifar
from d2lcv.synth.baselines import HistogramNN


def test_reader_decodes_records_exactly(tmp_path):
    # two hand-made records: label byte, then the R, G and B planes
    rec = []
    for label in (3, 7):
        planes = onp.arange(3072, dtype=onp.uint32).reshape(3, 32, 32) * (label + 1) % 256
        rec.append(onp.concatenate([[label], planes.ravel()]).astype(onp.uint8))
    (tmp_path / 'test_batch.bin').write_bytes(onp.stack(rec).tobytes())
    images, labels = augment.read_cifar10_bin(str(tmp_path), train=False)
    assert labels.tolist() == [3, 7]
    assert images.shape == (2, 32, 32, 3) and images.dtype == onp.uint8
    # pixel (row 1, col 2) of the green plane of record 0: index 1024 + 32 + 2
    assert images[0, 1, 2, 1] == (1024 + 32 + 2) * 4 % 256


def test_twin_roundtrip_and_determinism(tmp_path):
    a = cifar.make_cifar10(str(tmp_path / 'a'), seed=1, num_train=50, num_test=20)
    b = cifar.make_cifar10(str(tmp_path / 'b'), seed=1, num_train=50, num_test=20)
    c = cifar.make_cifar10(str(tmp_path / 'c'), seed=2, num_train=50, num_test=20)
    xa, ya = augment.read_cifar10_bin(a, True)
    xb, yb = augment.read_cifar10_bin(b, True)
    xc, _ = augment.read_cifar10_bin(c, True)
    assert xa.shape == (50, 32, 32, 3) and onp.array_equal(xa, xb) and onp.array_equal(ya, yb)
    assert not onp.array_equal(xa, xc)
    assert sorted(onp.bincount(ya).tolist()) == [5] * 10
    xt, yt = augment.read_cifar10_bin(a, False)
    assert xt.shape == (20, 32, 32, 3) and set(yt.tolist()) == set(range(10))


def test_twin_classes_differ_in_shape_not_colour():
    rng = onp.random.default_rng(0)
    labels = onp.repeat(onp.arange(10), 30)
    imgs = cifar.make_images(labels, rng)
    test_labels = onp.repeat(onp.arange(10), 10)
    test = cifar.make_images(test_labels, onp.random.default_rng(1))
    # colour carries no label: nearest class mean and colour-histogram 1-NN near chance
    flat = imgs.reshape(300, -1).astype(float)
    means = onp.stack([flat[labels == k].mean(0) for k in range(10)])
    pred = ((test.reshape(100, -1)[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == test_labels).mean() <= 0.25
    assert HistogramNN().fit(imgs, labels).score(test, test_labels) <= 0.25
    # shape does: at any rotation, two classes' shapes differ in >= 15% of their union
    g = onp.linspace(-1.2, 1.2, 121)
    u, v = onp.meshgrid(g, g)
    masks = onp.stack([cifar.shape_field(k, u, v) < 0 for k in cifar.SHAPES])
    for t in onp.linspace(0, onp.pi, 13):
        c, s = onp.cos(t), onp.sin(t)
        turned = onp.stack([cifar.shape_field(k, c * u + s * v, -s * u + c * v) < 0
                            for k in cifar.SHAPES])
        inter = (masks[:, None] & turned[None]).sum((2, 3))
        union = (masks[:, None] | turned[None]).sum((2, 3))
        iou = inter / union
        onp.fill_diagonal(iou, 0)
        assert iou.max() <= 0.85, (t, onp.unravel_index(iou.argmax(), iou.shape))
    # and every drawn shape is big enough to see at 32x32
    assert (cifar.shape_alpha(labels, onp.random.default_rng(2)) > 0.5).sum((1, 2)).min() > 60


def test_reader_errors_name_file_and_record(tmp_path):
    good = onp.zeros((2, 3073), onp.uint8)
    (tmp_path / 'test_batch.bin').write_bytes(good.tobytes()[:-5])
    with pytest.raises(ValueError, match=r'test_batch.bin.*record 1 is truncated'):
        augment.read_cifar10_bin(str(tmp_path), False)
    good[1, 0] = 12
    (tmp_path / 'test_batch.bin').write_bytes(good.tobytes())
    with pytest.raises(ValueError, match=r'test_batch.bin: record 1 has label 12'):
        augment.read_cifar10_bin(str(tmp_path), False)
    with pytest.raises(FileNotFoundError, match='data_batch_1.bin'):
        augment.read_cifar10_bin(str(tmp_path), True)


def test_load_cifar10_batches():
    it = augment.load_cifar10(True, augment.train_augs(), 16, tiny=True, limit=40)
    X, y = next(iter(it))
    assert X.shape == (16, 3, 32, 32) and X.dtype == onp.float32
    # each example is one of the 40 images scaled to [0, 1] (a flip keeps its pixel sum)
    raw = augment.cifar10_dataset(True, tiny=True, limit=40)
    sums = onp.array([raw[i][0].asnumpy().astype(onp.float64).sum() / 255 for i in range(40)])
    got = X.asnumpy().astype(onp.float64).sum(axis=(1, 2, 3))
    assert (onp.abs(got[:, None] - sums[None]).min(axis=1) < 1e-2).all()
    assert y.shape == (16,)
    assert len(it) == 3  # 40 examples, last batch kept


def test_presets_shapes_and_flip():
    img = image.imread(hub.img_path('cat1.jpg'))
    assert img.shape == (300, 451, 3)
    assert augment.shape_aug()(img).shape == (200, 200, 3)
    assert augment.combined_aug()(img).shape == (200, 200, 3)
    for make in (augment.brightness_aug, augment.hue_aug, augment.color_aug):
        assert make()(img).shape == img.shape
    flipped = [augment.flip_left_right()(img).asnumpy() for _ in range(30)]
    mirrored = img.asnumpy()[:, ::-1]
    n_flipped = sum(onp.array_equal(f, mirrored) for f in flipped)
    n_same = sum(onp.array_equal(f, img.asnumpy()) for f in flipped)
    assert n_flipped + n_same == 30 and 0 < n_flipped < 30


@pytest.mark.parametrize('shape', [(3, 5, 1), (4, 6, 3), (2, 3, 5, 3)])
def test_flips_match_numpy_on_odd_sizes(shape):
    x = onp.arange(onp.prod(shape)).reshape(shape).astype(onp.uint8)
    lr = augment.RandomFlipLeftRight(p=1.0)(np.array(x, dtype='uint8')).asnumpy()
    tb = augment.RandomFlipTopBottom(p=1.0)(np.array(x, dtype='uint8')).asnumpy()
    w_axis = len(shape) - 2
    assert onp.array_equal(lr, onp.flip(x, axis=w_axis))
    assert onp.array_equal(tb, onp.flip(x, axis=w_axis - 1))
    assert onp.array_equal(augment.RandomFlipLeftRight(p=0.0)(np.array(x)).asnumpy(), x)


def test_apply_shows_a_grid():
    img = np.array(onp.random.default_rng(0).integers(0, 255, (20, 30, 3)), dtype='uint8')
    axes = augment.apply(img, augment.flip_top_bottom(), num_rows=1, num_cols=3)
    assert len(axes) == 3
    d2l.plt.close('all')


def test_train_with_data_aug_learns(tmp_path):
    from mxnet import gluon
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(16, 3, activation='relu'), gluon.nn.MaxPool2D(2),
            gluon.nn.Conv2D(32, 3, activation='relu'), gluon.nn.GlobalAvgPool2D(),
            gluon.nn.Dense(10))
    # an easy data set in the twin's format (class = colour), so that three epochs of a
    # small net must learn it; the real twin's level is tests/test_quality.py's gate
    rng = onp.random.default_rng(0)
    colours = rng.uniform(0, 255, (10, 3))
    root = tmp_path / 'cifar'
    root.mkdir()
    for name, n in [(f'data_batch_{k}.bin', 64) for k in range(1, 6)] + [('test_batch.bin', 100)]:
        y = rng.integers(0, 10, n)
        x = onp.clip(colours[y][:, None, None] + rng.normal(0, 20, (n, 32, 32, 3)), 0, 255)
        cifar.write_batch(str(root / name), x.astype(onp.uint8), y)
    result = augment.train_with_data_aug(augment.train_augs(), augment.test_augs(), net, lr=0.01,
                                     batch_size=32, num_epochs=3, root=str(root),
                                     save_path=str(tmp_path / 'a.png'))
    losses = result['history']['y'][0]
    assert losses[-1] < losses[0]
    assert result['test_acc'] > 0.6
