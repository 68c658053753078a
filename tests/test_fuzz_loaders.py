"""Property-based fuzzing of the loaders on randomly corrupted twin files (issue 13).

Each case takes a small, valid file in the real on-disk format, damages it (truncation,
flipped bytes, inserted or appended bytes) and loads it. The loader must either raise the
library's own error naming the damaged file, or return data that is right: exactly the
original where the format has checksums (PNG labels) or where a reference reader can say
what the file holds (CIFAR-10 binary batches); where it has none (RecordIO, JPEG pixels)
every invariant the library can know holds (classes, corners in [0, 1], record count,
image shape). Never a raw MXNet/NumPy/Pillow exception, never a hang (a deadline per case).
Example counts are bounded to keep CI short."""
import io
import os
import shutil
import tempfile

import mxnet as mx
import numpy as onp
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from d2lcv import augment, bananas, segmentation
from d2lcv.imagecheck import ImageDataError, check_image_folder

# D2LCV_FUZZ_EXAMPLES=500: a longer, randomised run (CI: 60 fixed examples per loader)
_LONG = 'D2LCV_FUZZ_EXAMPLES' in os.environ
FUZZ = settings(max_examples=int(os.environ.get('D2LCV_FUZZ_EXAMPLES', 60)), deadline=10000,
                derandomize=not _LONG, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@st.composite
def damage(draw, size):
    """A function bytes -> bytes that damages a file of ``size`` bytes one random way."""
    kind = draw(st.sampled_from(['truncate', 'flip', 'insert', 'append']))
    if kind == 'truncate':
        n = draw(st.integers(0, max(0, size - 1)))
        return kind, lambda b: b[:n]
    if kind == 'flip':
        flips = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)),
                              min_size=1, max_size=4))

        def flip(b):
            b = bytearray(b)
            for pos, x in flips:
                b[pos] ^= x
            return bytes(b)
        return kind, flip
    extra = draw(st.binary(min_size=1, max_size=64))
    if kind == 'insert':
        pos = draw(st.integers(0, size))
        return kind, lambda b: b[:pos] + extra + b[pos:]
    return kind, lambda b: b + extra


def _damaged_copy(src_dir, name, fn):
    d = tempfile.mkdtemp(prefix='d2lcv-fuzz-')
    shutil.copytree(src_dir, d, dirs_exist_ok=True)
    path = os.path.join(d, name)
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(fn(data))
    return d, path


def _names(e, path):
    assert path in str(e), f'{type(e).__name__} does not name {path}: {e}'


# ------------------------------------------------------------------------- CIFAR-10 bin

@pytest.fixture(scope='module')
def cifar_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('cifar')
    rng = onp.random.default_rng(0)
    recs = rng.integers(0, 256, (6, 3073), dtype=onp.uint8)
    recs[:, 0] %= 10
    recs.tofile(d / 'test_batch.bin')
    return str(d)


def _reference_cifar(path):
    """What a CIFAR-10 batch file holds, the slow obvious way (None: not a valid batch)."""
    with open(path, 'rb') as f:
        data = f.read()
    if not data or len(data) % 3073:
        return None
    recs = [data[i:i + 3073] for i in range(0, len(data), 3073)]
    if any(r[0] > 9 for r in recs):
        return None
    labels = [r[0] for r in recs]
    images = [onp.frombuffer(r[1:], onp.uint8).reshape(3, 32, 32).transpose(1, 2, 0)
              for r in recs]
    return onp.stack(images), onp.array(labels)


@FUZZ
@given(data=st.data())
def test_fuzz_cifar10_batches(cifar_dir, data):
    kind, fn = data.draw(damage(os.path.getsize(os.path.join(cifar_dir, 'test_batch.bin'))))
    d, path = _damaged_copy(cifar_dir, 'test_batch.bin', fn)
    try:
        ref = _reference_cifar(path)
        try:
            images, labels = augment.read_cifar10_bin(d, train=False)
        except ValueError as e:
            _names(e, path)
            assert ref is None, f'{kind}: a valid file was refused: {e}'
            return
        assert ref is not None, f'{kind}: an invalid file was loaded'
        onp.testing.assert_array_equal(images, ref[0])
        onp.testing.assert_array_equal(labels, ref[1])
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------------- RecordIO bananas

@pytest.fixture(scope='module')
def rec_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('rec')
    rec = mx.recordio.MXIndexedRecordIO(str(d / 'train.idx'), str(d / 'train.rec'), 'w')
    rng = onp.random.default_rng(0)
    for key in range(4):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=onp.uint8)).save(buf, 'JPEG')
        x1, y1 = rng.uniform(0, 0.5, 2)
        label = onp.array([2, 5, 0, x1, y1, x1 + 0.3, y1 + 0.4], onp.float32)
        rec.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, label, key, 0),
                                            buf.getvalue()))
    rec.close()
    return str(d)


def _load_all_recordio(d):
    it = bananas.BananaDetIter(2, (3, 24, 24), path_imgrec=os.path.join(d, 'train.rec'),
                               path_imgidx=os.path.join(d, 'train.idx'), shuffle=False)
    labels = []
    for batch in it:
        assert batch.data[0].shape == (2, 3, 24, 24)
        labels.append(batch.label[0].asnumpy())
    return onp.concatenate(labels)


@FUZZ
@given(data=st.data(), target=st.sampled_from(['train.rec', 'train.idx']))
def test_fuzz_recordio(rec_dir, data, target):
    kind, fn = data.draw(damage(os.path.getsize(os.path.join(rec_dir, target))))
    d, path = _damaged_copy(rec_dir, target, fn)
    try:
        try:
            labels = _load_all_recordio(d)
        except bananas.BananasDataError as e:
            assert 'train.rec' in str(e) or 'train.idx' in str(e), str(e)
            return
        # no checksum in RecordIO: what can be known must hold
        objs = labels.reshape(-1, 5)
        objs = objs[objs[:, 0] >= 0]
        assert len(labels) == 4, f'{kind} {target}: {len(labels)} records instead of 4'
        assert (objs[:, 0] == onp.floor(objs[:, 0])).all()
        assert ((objs[:, 1:] >= -1e-5) & (objs[:, 1:] <= 1 + 1e-5)).all(), objs
        assert ((objs[:, 3] > objs[:, 1]) & (objs[:, 4] > objs[:, 2])).all(), objs
    finally:
        shutil.rmtree(d)


# ------------------------------------------------------------------------ VOC label PNG

@pytest.fixture(scope='module')
def voc_dir(tmp_path_factory):
    voc = tmp_path_factory.mktemp('voc') / 'VOC2012'
    for sub in ('ImageSets/Segmentation', 'JPEGImages', 'SegmentationClass'):
        (voc / sub).mkdir(parents=True)
    (voc / 'ImageSets/Segmentation/train.txt').write_text('a\n')
    Image.fromarray(onp.full((24, 24, 3), 90, onp.uint8)).save(voc / 'JPEGImages/a.jpg')
    v = onp.zeros((24, 24), onp.uint8)
    v[3:12, 4:20] = 7
    v[2, :] = 255
    im = Image.fromarray(v, mode='P')
    pal = onp.zeros((256, 3), onp.uint8)
    pal[:21] = segmentation.VOC_COLORMAP
    pal[255] = segmentation.VOID_COLOR
    im.putpalette(pal.ravel().tolist())
    im.save(voc / 'SegmentationClass/a.png')
    return str(voc), v


@FUZZ
@given(data=st.data())
def test_fuzz_voc_label_png(voc_dir, data):
    voc, truth = voc_dir
    name = 'SegmentationClass/a.png'
    kind, fn = data.draw(damage(os.path.getsize(os.path.join(voc, name))))
    d, path = _damaged_copy(voc, name, fn)
    try:
        try:
            ds = segmentation.VOCSegDataset(True, (24, 24), d, verbose=False)
        except segmentation.VOCFormatError as e:
            _names(e, path)
            return
        # PNG chunks carry CRCs and the pixels an Adler-32: what loads must be the truth
        onp.testing.assert_array_equal(ds.labels[0], truth, err_msg=kind)
    finally:
        shutil.rmtree(d)


# ------------------------------------------------------------------------ image folders

@pytest.fixture(scope='module')
def folder_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('folder')
    (d / 'cat').mkdir()
    rng = onp.random.default_rng(0)
    img = rng.integers(0, 256, (20, 20, 3), dtype=onp.uint8)
    Image.fromarray(img).save(d / 'cat' / 'a.jpg', quality=90)
    Image.fromarray(img).save(d / 'cat' / 'b.png')
    return str(d), img


@FUZZ
@given(data=st.data(), target=st.sampled_from(['cat/a.jpg', 'cat/b.png']),
       cut=st.booleans())
def test_fuzz_image_folder(folder_dir, data, target, cut):
    """Truncation anywhere and damage to the header: refused with the file's name, or (a
    header byte that does not matter) the image decodes to its full size."""
    root, img = folder_dir
    size = os.path.getsize(os.path.join(root, target))
    if cut:
        n = data.draw(st.integers(0, size - 1))
        kind, fn = 'truncate', (lambda b: b[:n])
    else:
        flips = data.draw(st.lists(st.tuples(st.integers(0, 31), st.integers(1, 255)),
                                   min_size=1, max_size=3))
        kind = 'header'

        def fn(b):
            b = bytearray(b)
            for pos, x in flips:
                b[pos] ^= x
            return bytes(b)
    d, path = _damaged_copy(root, target, fn)
    try:
        try:
            check_image_folder(d)
        except ImageDataError as e:
            _names(e, path)
            return
        assert kind != 'truncate', 'a truncated image passed the check'
        from d2lcv.imagecheck import ImageFolderDataset
        ds = ImageFolderDataset(d)
        i = [os.path.basename(p) for p, _ in ds.items].index(os.path.basename(target))
        try:
            x, _ = ds[i]
        except ImageDataError as e:
            _names(e, path)
            return
        assert x.shape == img.shape
    finally:
        shutil.rmtree(d)
