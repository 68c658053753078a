"""Labels and images that would train silently wrong are refused, naming the file and the
record (issue 13, item 5): VOC values outside 0-20/255 and off-palette colours, RecordIO
boxes outside [0, 1] and negative classes, a cut-off ``.idx``, an empty CIFAR-10 batch,
truncated or corrupt images in image folders."""
import io
import os

import mxnet as mx
import numpy as onp
import pytest
from PIL import Image

import d2lcv
from d2lcv import augment, bananas, segmentation


# ---------------------------------------------------------------------------------- VOC

def _voc(tmp_path, label_image):
    voc = tmp_path / 'VOC2012'
    for sub in ('ImageSets/Segmentation', 'JPEGImages', 'SegmentationClass'):
        (voc / sub).mkdir(parents=True)
    (voc / 'ImageSets/Segmentation/train.txt').write_text('a\n')
    Image.fromarray(onp.full((40, 40, 3), 90, onp.uint8)).save(voc / 'JPEGImages/a.jpg')
    label_image.save(voc / 'SegmentationClass/a.png')
    return str(voc), str(voc / 'SegmentationClass/a.png')


def _palette(values):
    im = Image.fromarray(values.astype(onp.uint8), mode='P')
    pal = onp.zeros((256, 3), onp.uint8)
    pal[:21] = segmentation.VOC_COLORMAP
    pal[255] = segmentation.VOID_COLOR
    im.putpalette(pal.ravel().tolist())
    return im


def _good_values():
    v = onp.zeros((40, 40), onp.int64)
    v[5:20, 5:20] = 15
    v[4, 4:21] = 255
    v[30:, 30:] = 20
    return v


def test_valid_voc_labels_load_exactly(tmp_path):
    voc, _ = _voc(tmp_path, _palette(_good_values()))
    ds = segmentation.VOCSegDataset(True, (40, 40), voc, verbose=False)
    onp.testing.assert_array_equal(ds.labels[0], _good_values())


@pytest.mark.parametrize('case', ['palette77', 'grey128', 'uint16_300'])
def test_voc_label_values_outside_the_classes_are_refused(tmp_path, case):
    v = _good_values()
    if case == 'palette77':
        v[10, 11] = 77
        im = _palette(v)
    elif case == 'grey128':
        v[10, 11] = 128
        im = Image.fromarray(v.astype(onp.uint8), mode='L')
    else:
        v[10, 11] = 300  # would wrap to 44 in uint8
        im = Image.fromarray(v.astype(onp.uint16))
    bad = v[10, 11]
    voc, path = _voc(tmp_path, im)
    with pytest.raises(segmentation.VOCFormatError,
                       match=rf'{path}: 1 pixel\(s\) have label values \[{bad}\] \(first at '
                             r'row 10, column 11\)'):
        segmentation.VOCSegDataset(True, (32, 32), voc, verbose=False)
    with pytest.raises(segmentation.VOCFormatError, match=path):
        segmentation.read_voc_label(path)


def test_voc_rgb_label_with_off_palette_colours_is_refused(tmp_path):
    rgb = onp.array(segmentation.VOC_COLORMAP, onp.uint8)[_good_values() % 21]
    rgb[_good_values() == 255] = segmentation.VOID_COLOR
    ok_voc, _ = _voc(tmp_path / 'ok', Image.fromarray(rgb))
    onp.testing.assert_array_equal(
        segmentation.VOCSegDataset(True, (40, 40), ok_voc, verbose=False).labels[0], _good_values())
    off = rgb.astype(onp.int64)
    off[..., 0] = onp.clip(off[..., 0] + 1, 0, 255)  # every colour off by one
    voc, path = _voc(tmp_path / 'off', Image.fromarray(off.astype(onp.uint8)))
    with pytest.raises(segmentation.VOCFormatError,
                       match=rf'{path}: 1600 of 1600 pixels have colours that are not in the '
                             r'VOC colormap \(first \(1, 0, 0\) at row 0, column 0\)'):
        segmentation.VOCSegDataset(True, (32, 32), voc, verbose=False)


# ---------------------------------------------------------------------- RecordIO bananas

def _rec(folder, labels, name='train'):
    """``name.rec`` / ``name.idx`` with one 32x32 JPEG per label row."""
    folder.mkdir(parents=True, exist_ok=True)
    rec = mx.recordio.MXIndexedRecordIO(str(folder / f'{name}.idx'), str(folder / f'{name}.rec'),
                                        'w')
    buf = io.BytesIO()
    Image.fromarray(onp.full((32, 32, 3), 120, onp.uint8)).save(buf, 'JPEG')
    for key, objs in enumerate(labels):
        label = onp.array([2, 5] + list(onp.ravel(objs)), onp.float32)
        header = mx.recordio.IRHeader(0, label, key, 0)
        rec.write_idx(key, mx.recordio.pack(header, buf.getvalue()))
    rec.close()
    return str(folder / f'{name}.rec'), str(folder / f'{name}.idx')


GOOD = [0, 0.1, 0.2, 0.5, 0.6]


@pytest.mark.parametrize('bad,word', [
    ([0, -0.5, 0.2, 0.5, 0.6], 'not in \\[0, 1\\]'),
    ([0, 10, 20, 150, 200], 'not in \\[0, 1\\]'),
    ([-1, 0.1, 0.2, 0.5, 0.6], 'class -1 is not'),
    ([0.5, 0.1, 0.2, 0.5, 0.6], 'class 0.5 is not')])
def test_recordio_labels_out_of_range_are_refused(tmp_path, bad, word):
    rec, idx = _rec(tmp_path / 'd', [GOOD, GOOD, bad, GOOD])
    with pytest.raises(bananas.BananasDataError, match=rf'{rec}: record key 2 .*{word}'):
        bananas.BananaDetIter(2, (3, 32, 32), path_imgrec=rec, path_imgidx=idx)
    with pytest.raises(bananas.BananasDataError, match=rf'{rec}: record #2 .*{word}'):
        bananas.check_recordio(rec)


def test_recordio_good_labels_load_exactly(tmp_path):
    rec, idx = _rec(tmp_path / 'd', [GOOD, [0, 0.0, 0.0, 1.0, 1.0]])
    it = bananas.BananaDetIter(2, (3, 32, 32), path_imgrec=rec, path_imgidx=idx)
    label = it.next().label[0].asnumpy()
    onp.testing.assert_allclose(label[:, 0], [GOOD, [0, 0, 0, 1, 1]], atol=1e-6)


def test_idx_cut_at_a_line_boundary_is_refused(tmp_path):
    rec, idx = _rec(tmp_path / 'd', [GOOD] * 6)
    lines = open(idx).readlines()
    with open(idx, 'w') as f:
        f.writelines(lines[:3])
    with pytest.raises(bananas.BananasDataError,
                       match=rf'{idx}: lists 3 record\(s\) but {rec} holds 6; 3 are not indexed'):
        bananas.BananaDetIter(2, (3, 32, 32), path_imgrec=rec, path_imgidx=idx)


# --------------------------------------------------------------------------- CIFAR-10

def test_empty_cifar_batch_is_refused(tmp_path):
    rng = onp.random.default_rng(0)
    for i in range(1, 6):
        recs = rng.integers(0, 256, (4, 3073), dtype=onp.uint8)
        recs[:, 0] %= 10
        recs.tofile(tmp_path / f'data_batch_{i}.bin')
    open(tmp_path / 'data_batch_3.bin', 'wb').close()
    with pytest.raises(ValueError, match=rf'{tmp_path}/data_batch_3.bin: empty file'):
        augment.read_cifar10_bin(str(tmp_path), train=True)


# ----------------------------------------------------------------------- image folders

def _hotdog(tmp_path):
    root = tmp_path / 'hotdog'
    rng = onp.random.default_rng(0)
    for split in ('train', 'test'):
        for c in ('hotdog', 'not-hotdog'):
            (root / split / c).mkdir(parents=True)
            for k in range(2):
                Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=onp.uint8)).save(
                    root / split / c / f'{k}.jpg', quality=90)
    return root


@pytest.mark.parametrize('damage,word', [
    (lambda b: b[:len(b) * 2 // 3], 'truncated JPEG'),
    (lambda b: b'\0' * len(b), 'not a readable image'),
    (lambda b: b'', 'empty file')])
def test_bad_image_in_a_folder_is_named(tmp_path, damage, word):
    root = _hotdog(tmp_path)
    bad = root / 'train' / 'not-hotdog' / '1.jpg'
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(ValueError, match=rf'{bad}: {word}'):
        d2lcv.finetune.hotdog_datasets(str(root))


def test_good_image_folder_loads(tmp_path):
    train, test = d2lcv.finetune.hotdog_datasets(str(_hotdog(tmp_path)))
    assert (len(train), len(test)) == (4, 4)
    assert train[3][0].shape == (48, 48, 3) and train[3][1] == 1


def test_undecodable_image_names_the_file(tmp_path):
    from d2lcv.imagecheck import ImageDataError, ImageFolderDataset
    root = _hotdog(tmp_path)
    bad = root / 'test' / 'hotdog' / '0.jpg'
    bad.write_bytes(b'\xff\xd8' + b'garbage' * 20 + b'\xff\xd9')
    ds = ImageFolderDataset(str(root / 'test'))
    with pytest.raises(ImageDataError, match=rf'{bad}: cannot be decoded'):
        ds[0]


def test_truncated_png_in_a_kaggle_folder_is_named(tmp_path):
    from d2lcv import kaggle
    for split in kaggle.SPLITS:
        (tmp_path / 'train_valid_test' / split / 'cat').mkdir(parents=True)
        Image.fromarray(onp.zeros((8, 8, 3), onp.uint8)).save(
            tmp_path / 'train_valid_test' / split / 'cat' / '1.png')
    bad = tmp_path / 'train_valid_test' / 'valid' / 'cat' / '1.png'
    bad.write_bytes(bad.read_bytes()[:-20])
    with pytest.raises(ValueError, match=rf'{bad}: truncated PNG'):
        kaggle.read_image_folders(str(tmp_path))
