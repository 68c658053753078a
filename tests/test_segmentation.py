"""Tests for section 13.9 (d2lcv.segmentation) and the synthetic VOC2012 twin."""
import os
import random

import numpy as onp
import pytest
from mxnet import np
from PIL import Image

import d2lcv as d2l
from d2lcv import segmentation as seg
from d2lcv.hub import synth_twin
from d2lcv.segmentation import voc_palette
from d2lcv.synth.voc import SIZES, TWIN_CLASSES


@pytest.fixture(scope='module')
def voc_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('voc') / 'voc2012'
    return synth_twin('voc2012', root=str(root), num_train=10, num_val=6, scale=0.25)


def _slow_palette():
    """VOC's palette, built bit by bit for one index at a time (the devkit's definition)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal.append((r, g, b))
    return onp.array(pal, dtype=onp.uint8)


def test_palette_matches_devkit_and_colormap():
    pal = voc_palette()
    onp.testing.assert_array_equal(pal, _slow_palette())
    onp.testing.assert_array_equal(pal[:21], onp.array(d2l.VOC_COLORMAP))
    assert pal[255].tolist() == seg.VOID_COLOR == [224, 224, 192]
    assert len(seg.VOC_CLASSES) == 21 and seg.VOC_CLASSES[1] == 'aeroplane'


def test_twin_layout_and_palette_pngs(voc_dir):
    assert voc_dir.endswith(os.path.join('VOCdevkit', 'VOC2012'))
    train = seg.voc_split_names(voc_dir, True)
    val = seg.voc_split_names(voc_dir, False)
    assert len(train) == 10 and len(val) == 6 and not set(train) & set(val)
    with open(os.path.join(voc_dir, 'ImageSets', 'Segmentation', 'trainval.txt')) as f:
        assert f.read().split() == train + val
    sizes = set()
    for n in train + val:
        im = Image.open(os.path.join(voc_dir, 'JPEGImages', n + '.jpg'))
        lb = Image.open(os.path.join(voc_dir, 'SegmentationClass', n + '.png'))
        assert im.format == 'JPEG' and im.mode == 'RGB'
        assert lb.format == 'PNG' and lb.mode == 'P' and lb.size == im.size
        onp.testing.assert_array_equal(
            onp.array(lb.getpalette()[:768], onp.uint8).reshape(256, 3), voc_palette())
        values = set(onp.unique(onp.asarray(lb)).tolist())
        assert 0 in values and 255 in values
        assert values <= {0, 255} | set(TWIN_CLASSES)
        sizes.add(im.size)
    assert len(sizes) > 3  # mixed sizes, portrait and landscape


def test_twin_deterministic(tmp_path):
    a = synth_twin('voc2012', root=str(tmp_path / 'a'), num_train=2, num_val=1, scale=0.2,
                   seed=3)
    b = synth_twin('voc2012', root=str(tmp_path / 'b'), num_train=2, num_val=1, scale=0.2,
                   seed=3)
    c = synth_twin('voc2012', root=str(tmp_path / 'c'), num_train=2, num_val=1, scale=0.2,
                   seed=4)
    name = seg.voc_split_names(a)[0]
    rel = os.path.join('SegmentationClass', name + '.png')
    read = lambda d: onp.asarray(Image.open(os.path.join(d, rel)))  # noqa: E731
    onp.testing.assert_array_equal(read(a), read(b))
    assert not onp.array_equal(read(a), read(c))


def test_download_extract_tiny_returns_twin(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path))
    monkeypatch.setenv('D2LCV_TINY', '1')
    # generate small, then the chapter's call finds it
    synth_twin('voc2012', root=str(tmp_path / 'tiny' / 'voc2012'), num_train=3, num_val=2,
               scale=0.2)
    voc = d2l.download_extract('voc2012', 'VOCdevkit/VOC2012')
    assert os.path.samefile(voc, tmp_path / 'tiny' / 'voc2012' / 'VOCdevkit' / 'VOC2012')


def test_voc_label_indices_matches_palette_png(voc_dir):
    """The chapter's RGB route and the PNG's own palette indices agree, void included."""
    features, labels = d2l.read_voc_images(voc_dir, True)
    names = seg.voc_split_names(voc_dir, True)
    assert len(features) == len(labels) == len(names)
    table = seg.build_colormap2label()
    for name, feat, lab in zip(names, features, labels):
        assert feat.dtype == onp.uint8 and lab.shape == feat.shape and lab.shape[2] == 3
        y = seg.voc_label_indices(lab, table)
        assert isinstance(y, np.ndarray) and y.dtype == onp.float32
        direct = onp.asarray(Image.open(os.path.join(voc_dir, 'SegmentationClass',
                                                     name + '.png')))
        onp.testing.assert_array_equal(y.asnumpy(), direct.astype(onp.float32))
        onp.testing.assert_array_equal(seg.read_voc_label(
            os.path.join(voc_dir, 'SegmentationClass', name + '.png')), direct)


def test_colormap_table_against_chapter_table():
    """The 22-entry table gives what the chapter's 256**3 table gives on VOC colours,
    and 255 (ignored) for the void colour and colours outside the colormap."""
    big = onp.zeros(256 ** 3, onp.float32)  # the chapter's table (built here, once)
    for i, c in enumerate(d2l.VOC_COLORMAP):
        big[(c[0] * 256 + c[1]) * 256 + c[2]] = i
    rng = onp.random.default_rng(0)
    cols = onp.array(d2l.VOC_COLORMAP + [seg.VOID_COLOR, [1, 2, 3], [255, 255, 255]])
    img = cols[rng.integers(len(cols), size=(30, 40))].astype(onp.uint8)
    got = seg.voc_label_indices(img, seg.voc_colormap2label())
    expect = onp.array([[big[(p[0] * 256 + p[1]) * 256 + p[2]] for p in row] for row in img])
    in_map = (img[..., None, :] == onp.array(d2l.VOC_COLORMAP)).all(-1).any(-1)
    onp.testing.assert_array_equal(got[in_map], expect[in_map])
    assert (got[~in_map] == 255).all() and (~in_map).any()
    # the chapter's own flat table is still accepted
    onp.testing.assert_array_equal(seg.voc_label_indices(img, big), expect)
    assert len(seg.build_colormap2label()) == 22
    with pytest.raises(ValueError, match='RGB'):
        seg.voc_label_indices(onp.zeros((4, 4), onp.uint8))


def test_voc_rand_crop_same_window():
    random.seed(0)
    H, W = 20, 30
    feature = onp.arange(H * W * 3).reshape(H, W, 3)
    label = onp.arange(H * W).reshape(H, W)
    seen = set()
    for _ in range(50):
        f, l = seg.voc_rand_crop(feature, label, 8, 11)
        assert f.shape == (8, 11, 3) and l.shape == (8, 11)
        y0, x0 = divmod(int(l[0, 0]), W)
        onp.testing.assert_array_equal(f, feature[y0:y0 + 8, x0:x0 + 11])
        onp.testing.assert_array_equal(l, label[y0:y0 + 8, x0:x0 + 11])
        seen.add((y0, x0))
    assert len(seen) > 10
    f, l = seg.voc_rand_crop(feature, label, H, W)  # exact size: the whole image
    onp.testing.assert_array_equal(l, label)
    with pytest.raises(ValueError, match='cannot crop'):
        seg.voc_rand_crop(feature, label, H + 1, W)
    f, l = seg.voc_rand_crop(np.array(feature), np.array(label), 4, 4)  # mxnet arrays too
    assert f.shape == (4, 4, 3)


def test_dataset_filters_and_normalises(voc_dir, capsys):
    crop = (80, 112)  # scale 0.25: keeps sizes whose h >= 80 and w >= 112
    ds = seg.VOCSegDataset(True, crop, voc_dir)
    names = seg.voc_split_names(voc_dir, True)
    sizes = [SIZES[i % len(SIZES)] for i in range(len(names))]
    keep = [n for n, (h, w) in zip(names, sizes)
            if round(h * 0.25) >= crop[0] and round(w * 0.25) >= crop[1]]
    assert 0 < len(keep) < len(names)  # the filter dropped something
    assert ds.names == keep and len(ds) == len(keep)
    assert f'read {len(keep)} examples' in capsys.readouterr().out
    X, Y = ds[0]
    assert X.shape == (3, 80, 112) and X.dtype == onp.float32 and Y.shape == (80, 112)
    # normalisation: undo it and find the crop inside the stored uint8 image
    raw = (X.transpose(1, 2, 0) * seg.RGB_STD + seg.RGB_MEAN) * 255
    full = ds.features[0].astype(onp.float32)
    assert raw.min() > -0.5 and raw.max() < 255.5
    lbl = ds.labels[0]
    found = [(y, x) for y in range(lbl.shape[0] - 79) for x in range(lbl.shape[1] - 111)
             if onp.abs(full[y:y + 80, x:x + 112] - raw).max() < 1e-3]
    assert found and any(onp.array_equal(lbl[y:y + 80, x:x + 112], Y) for y, x in found)
    assert ds.features[0].dtype == onp.uint8 and lbl.dtype == onp.uint8


def test_load_data_voc_batches(voc_dir, monkeypatch):
    monkeypatch.setenv('D2LCV_NUM_WORKERS', '0')
    train_iter, test_iter = d2l.load_data_voc(2, (64, 96), voc_dir=voc_dir, verbose=False)
    X, Y = next(iter(train_iter))
    assert X.shape == (2, 3, 64, 96) and Y.shape == (2, 64, 96)
    assert isinstance(X, np.ndarray)
    assert set(onp.unique(Y.asnumpy()).tolist()) <= {0, 255} | set(TWIN_CLASSES)
    assert len(test_iter) >= 1


def test_load_data_voc_tiny_env(tmp_path, monkeypatch):
    """The chapter's call, unchanged, under D2LCV_TINY=1 (a pre-made small twin)."""
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path))
    monkeypatch.setenv('D2LCV_TINY', '1')
    monkeypatch.setenv('D2LCV_NUM_WORKERS', '0')
    synth_twin('voc2012', root=str(tmp_path / 'tiny' / 'voc2012'), num_train=4, num_val=4,
               scale=0.25)
    train_iter, test_iter = d2l.load_data_voc(2, (64, 96))
    X, Y = next(iter(test_iter))
    assert X.shape == (2, 3, 64, 96) and Y.shape == (2, 64, 96)


def test_missing_or_malformed_voc(tmp_path, voc_dir):
    with pytest.raises(seg.VOCFormatError, match='does not exist'):
        d2l.read_voc_images(str(tmp_path / 'nowhere'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(seg.VOCFormatError, match=r'ImageSets.Segmentation.train\.txt'):
        d2l.load_data_voc(2, (32, 32), voc_dir=str(empty))
    # copy a tiny VOC and break it three ways
    import shutil
    broken = tmp_path / 'broken'
    shutil.copytree(voc_dir, broken)
    name = seg.voc_split_names(str(broken))[1]
    os.remove(broken / 'SegmentationClass' / (name + '.png'))
    with pytest.raises(seg.VOCFormatError, match=name + r'\.png'):
        seg.VOCSegDataset(True, (32, 32), str(broken))
    shutil.rmtree(broken)
    shutil.copytree(voc_dir, broken)
    (broken / 'JPEGImages' / (name + '.jpg')).write_bytes(b'not a jpeg')
    with pytest.raises(seg.VOCFormatError, match=name + r'\.jpg'):
        seg.VOCSegDataset(True, (32, 32), str(broken))
    shutil.rmtree(broken)
    shutil.copytree(voc_dir, broken)
    Image.new('P', (7, 5)).save(broken / 'SegmentationClass' / (name + '.png'))
    with pytest.raises(seg.VOCFormatError, match=name):
        seg.VOCSegDataset(True, (32, 32), str(broken))


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------

def _slow_metrics(pred, label, num_classes, ignore=255):
    """Pixel accuracy and mIoU by plain loops over pixels and classes."""
    right = total = 0
    inter = [0] * num_classes
    union = [0] * num_classes
    for p, t in zip(pred.ravel().tolist(), label.ravel().tolist()):
        if t == ignore:
            continue
        total += 1
        right += p == t
        for c in range(num_classes):
            inter[c] += (p == c) and (t == c)
            union[c] += (p == c) or (t == c)
    ious = [i / u for i, u in zip(inter, union) if u > 0]
    return right / total, sum(ious) / len(ious)


def test_metrics_against_slow_reference():
    rng = onp.random.default_rng(1)
    for num_classes in (2, 5, 21):
        label = rng.integers(0, num_classes, (3, 17, 13))
        label[rng.random(label.shape) < 0.2] = 255
        pred = onp.where(rng.random(label.shape) < 0.6, label,
                         rng.integers(0, num_classes, label.shape))
        pred[pred == 255] = 0
        conf = seg.segmentation_confusion(pred, label, num_classes)
        acc, miou = _slow_metrics(pred, label, num_classes)
        assert conf.sum() == (label != 255).sum()
        assert seg.pixel_accuracy(conf) == pytest.approx(acc)
        assert seg.mean_iou(conf) == pytest.approx(miou)
    # mxnet inputs are accepted
    assert onp.array_equal(seg.segmentation_confusion(np.array(pred), np.array(label), 21),
                           conf)


def test_metrics_exact_small_case():
    label = onp.array([[0, 0, 1, 255], [2, 2, 1, 255]])
    pred = onp.array([[0, 1, 1, 7], [2, 0, 1, 2]])
    conf = seg.segmentation_confusion(pred, label, 3)
    onp.testing.assert_array_equal(conf, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert seg.pixel_accuracy(conf) == pytest.approx(4 / 6)
    miou, iou = seg.mean_iou(conf, return_per_class=True)
    # class 0: inter 1, union 3; class 1: 2 / 3; class 2: 1 / 2
    onp.testing.assert_allclose(iou, [1 / 3, 2 / 3, 1 / 2])
    assert miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    # perfect prediction, absent classes are left out of the mean
    conf = seg.segmentation_confusion(label, label, 21)
    assert seg.pixel_accuracy(conf) == 1.0 and seg.mean_iou(conf) == 1.0
    # everything ignored: undefined
    conf = seg.segmentation_confusion(onp.zeros((2, 2)), onp.full((2, 2), 255), 21)
    assert onp.isnan(seg.pixel_accuracy(conf)) and onp.isnan(seg.mean_iou(conf))
    # empty input
    conf = seg.segmentation_confusion(onp.zeros((0, 3)), onp.zeros((0, 3)), 4)
    assert conf.shape == (4, 4) and conf.sum() == 0
    with pytest.raises(ValueError, match='outside'):
        seg.segmentation_confusion(onp.array([3]), onp.array([1]), 3)
    with pytest.raises(ValueError, match='shapes differ'):
        seg.segmentation_confusion(onp.zeros(3), onp.zeros(4), 3)


def test_dataloader_workers_draw_different_crops(voc_dir):
    """Forked workers must not repeat each other's random crops (the crops use `random`,
    which Python reseeds after a fork; a NumPy global RNG would not be)."""
    from mxnet import gluon
    ds = seg.VOCSegDataset(True, (16, 16), voc_dir, verbose=False)

    class Same(gluon.data.Dataset):  # the same image many times
        def __getitem__(self, i):
            return ds[0]

        def __len__(self):
            return 8

    loader = gluon.data.DataLoader(Same(), batch_size=1, num_workers=2)
    crops = [X.asnumpy().tobytes() for X, _ in loader]
    assert len(set(crops)) > 4
