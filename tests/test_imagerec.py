"""The fast input path (d2lcv.imagerec): packing, fingerprints, errors, the loader's batches
against the chapter's transforms, and the switch in the section loaders."""
import io
import os
import time

import numpy as onp
import pytest
from PIL import Image

import mxnet as mx
from mxnet import gluon, init

from d2lcv import finetune, hub, imagerec
from d2lcv import kaggle as K


def _folder(root, n_per_class=5, size=(20, 20), seed=0, ext='.png'):
    """A class-per-folder image set of random RGB images: ``root/{a,b}/NN.png``."""
    rng = onp.random.default_rng(seed)
    for c in ('a', 'b'):
        os.makedirs(root / c, exist_ok=True)
        for i in range(n_per_class):
            h, w = size
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=onp.uint8)).save(
                root / c / f'{i:02d}{ext}')
    return gluon.data.vision.ImageFolderDataset(str(root))


@pytest.fixture(autouse=True)
def _switch_restored():
    yield
    imagerec.use_fast_input(None)


def test_batches_equal_the_chapters_transform_without_randomness(tmp_path):
    ds = _folder(tmp_path / 'img', size=(20, 20))
    # an identity crop (all the area, aspect 1, same size), no flip: only the normalisation
    spec = imagerec.augment_spec(20, scale=(1, 1), ratio=(1, 1), flip=False)
    loader = imagerec.RecordLoader(ds, spec, 4, shuffle=False, last_batch='keep', threads=1,
                                   cache_dir=str(tmp_path / 'rec'))
    assert len(loader) == 3
    T = gluon.data.vision.transforms
    ref = T.Compose([T.ToTensor(), T.Normalize(finetune.RGB_MEAN, finetune.RGB_STD)])
    Xs, ys = zip(*[(X.asnumpy(), y.asnumpy()) for X, y in loader])
    assert [x.shape[0] for x in Xs] == [4, 4, 2]                  # the last batch kept
    X, y = onp.concatenate(Xs), onp.concatenate(ys)
    assert sorted(loader.order) == list(range(len(ds)))          # the pack's order
    for j, i in enumerate(loader.order):
        img, label = ds[i]
        assert y[j] == label
        onp.testing.assert_array_equal(X[j], ref(img).asnumpy(), err_msg=ds.items[i][0])


def test_training_batches_augment_and_drop_the_partial_batch(tmp_path):
    ds = _folder(tmp_path / 'img', n_per_class=9, size=(30, 50))
    loader = imagerec.RecordLoader(ds, finetune.train_augs(24).fast_spec, 4, threads=2,
                                   cache_dir=str(tmp_path / 'rec'))
    epochs = [[(X.asnumpy(), y.asnumpy()) for X, y in loader] for _ in range(2)]
    for batches in epochs:
        assert len(batches) == len(loader) == 18 // 4
        assert all(X.shape == (4, 3, 24, 24) and X.dtype == onp.float32 for X, _ in batches)
        assert sorted(set(onp.concatenate([y for _, y in batches]).tolist())) == [0, 1]
    # new draws every epoch: without shuffling the same images come out differently
    fixed = imagerec.RecordLoader(ds, finetune.train_augs(24).fast_spec, 4, shuffle=False,
                                  threads=1, cache_dir=str(tmp_path / 'rec'))
    first, second = [next(iter(fixed)) for _ in range(2)]
    onp.testing.assert_array_equal(first[1].asnumpy(), second[1].asnumpy())
    assert not onp.array_equal(first[0].asnumpy(), second[0].asnumpy())


def test_the_seed_decides_the_crops(tmp_path):
    # MXNet's ImageRecordIter shuffles with ``seed`` and augments with ``seed_aug``: a loader
    # that passed only ``seed`` drew the same crops whatever its seed (found by the ImageNet
    # photo gate)
    ds = _folder(tmp_path / 'img', n_per_class=4, size=(30, 50))

    def first_batch(seed):
        loader = imagerec.RecordLoader(ds, finetune.train_augs(24).fast_spec, 8,
                                       shuffle=False, threads=1, seed=seed,
                                       cache_dir=str(tmp_path / 'rec'))
        X, y = next(iter(loader))
        return X.asnumpy(), y.asnumpy()
    (a, ya), (b, yb), (c, yc) = first_batch(0), first_batch(0), first_batch(5)
    onp.testing.assert_array_equal(ya, yc)    # the same images, unshuffled
    onp.testing.assert_array_equal(a, b)
    assert not onp.array_equal(a, c)


def test_flips_are_exact_mirrors_and_both_happen(tmp_path):
    ds = _folder(tmp_path / 'img', n_per_class=8, size=(16, 16))
    spec = imagerec.augment_spec(16, scale=(1, 1), ratio=(1, 1), flip=True)
    loader = imagerec.RecordLoader(ds, spec, 4, shuffle=False, threads=1,
                                   cache_dir=str(tmp_path / 'rec'))
    T = gluon.data.vision.transforms
    ref = T.Compose([T.ToTensor(), T.Normalize(finetune.RGB_MEAN, finetune.RGB_STD)])
    expected = [ref(ds[i][0]).asnumpy() for i in loader.order]
    flipped = 0
    for _ in range(2):
        X = onp.concatenate([x.asnumpy() for x, _ in loader])
        for i, x in enumerate(X):
            if onp.array_equal(x, expected[i][..., ::-1]):
                flipped += 1
            else:
                onp.testing.assert_array_equal(x, expected[i], err_msg=f'image {i}')
    assert 0 < flipped < 32, flipped


def test_cifar_preset_upscales_then_crops(tmp_path):
    ds = _folder(tmp_path / 'img', size=(32, 32))
    loader = imagerec.RecordLoader(ds, K.transform_train_cifar10().fast_spec, 5, threads=1,
                                   cache_dir=str(tmp_path / 'rec'))
    shapes = {tuple(X.shape) for X, _ in loader}
    assert shapes == {(5, 3, 32, 32)}


def test_pack_once_and_repack_when_the_folder_changes(tmp_path):
    ds = _folder(tmp_path / 'img')
    rec, idx = imagerec.pack_images(ds, str(tmp_path / 'rec'))
    stamp = os.stat(rec).st_mtime_ns
    assert imagerec.pack_images(ds, str(tmp_path / 'rec')) == (rec, idx)
    assert os.stat(rec).st_mtime_ns == stamp                     # unchanged: not rewritten
    reader = mx.recordio.MXIndexedRecordIO(idx, rec, 'r')
    for j, i in enumerate(imagerec.pack_order(len(ds))):
        header, data = mx.recordio.unpack(reader.read_idx(j))
        with open(ds.items[i][0], 'rb') as f:                       # the file's own bytes
            assert data == f.read() and header.label == ds.items[i][1] and header.id == i
    reader.close()
    # a changed file (size and mtime) repacks
    time.sleep(0.01)
    Image.fromarray(onp.zeros((25, 25, 3), onp.uint8)).save(ds.items[3][0])
    ds = gluon.data.vision.ImageFolderDataset(str(tmp_path / 'img'))
    imagerec.pack_images(ds, str(tmp_path / 'rec'))
    assert os.stat(rec).st_mtime_ns != stamp
    reader = mx.recordio.MXIndexedRecordIO(idx, rec, 'r')
    j = list(imagerec.pack_order(len(ds))).index(3)
    assert mx.recordio.unpack(reader.read_idx(j))[1] == open(ds.items[3][0], 'rb').read()
    reader.close()
    assert not [f for f in os.listdir(tmp_path / 'rec') if '.tmp' in f]


def test_a_file_that_does_not_decode_is_named(tmp_path):
    ds = _folder(tmp_path / 'img')
    bad = ds.items[4][0]
    data = open(bad, 'rb').read()
    with open(bad, 'wb') as f:
        f.write(data[:len(data) // 2])                           # truncated PNG
    with pytest.raises(imagerec.ImagePackError, match=os.path.basename(bad)):
        imagerec.pack_images(ds, str(tmp_path / 'rec'))
    assert not os.path.exists(tmp_path / 'rec') or not [
        f for f in os.listdir(tmp_path / 'rec') if f.endswith(('.rec', '.idx', '.json'))]


def test_the_switch_routes_the_section_loaders(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path / 'data'))
    d = hub.synth_twin('cifar10_tiny', root=str(tmp_path / 'c'), num_train=40, num_test=3)
    K.reorg_cifar10_data(d, 0.1)
    ds = K.read_image_folders(d)
    args = (ds, 4, K.transform_train_cifar10(), K.transform_test_cifar10())
    imagerec.use_fast_input(False)
    assert isinstance(K.kaggle_loaders(*args)[0], gluon.data.DataLoader)
    monkeypatch.setenv('D2LCV_FAST_INPUT', '1')
    imagerec.use_fast_input(None)                                # the variable decides
    train_iter, valid_iter, tv_iter, test_iter = K.kaggle_loaders(*args)
    assert isinstance(train_iter, imagerec.RecordLoader)
    assert isinstance(tv_iter, imagerec.RecordLoader)
    assert isinstance(valid_iter, gluon.data.DataLoader)        # evaluation: the chapter's
    assert len(tv_iter) == 40 // 4
    assert sum(y.shape[0] for _, y in tv_iter) == 40
    # a transform that is not a chapter preset, or a dist kvstore: the chapter's path
    assert imagerec.fast_loader(ds[0], K.transform_test_cifar10(), 4) is None
    assert imagerec.fast_loader(ds[0], K.transform_train_cifar10(), 4, 'dist_sync') is None


def test_train_fine_tuning_on_the_fast_path(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path / 'data'))
    root = hub.synth_twin('hotdog', root=str(tmp_path / 'h'), num_train=24, num_test=8)
    root = os.path.join(root, 'hotdog') if os.path.isdir(os.path.join(root, 'hotdog')) else root
    train_imgs, test_imgs = finetune.hotdog_datasets(root)
    imagerec.use_fast_input(True)
    finetune.set_seed(0)
    net = finetune.small_resnet(2, width=8)
    net.initialize(init.Xavier())
    seen = []
    real = imagerec.RecordLoader.__iter__

    def spy(self):
        for X, y in real(self):
            seen.append(X.shape)
            yield X, y
    monkeypatch.setattr(imagerec.RecordLoader, '__iter__', spy)
    result = finetune.train_fine_tuning(
        net, 0.05, batch_size=12, num_epochs=2, devices=[mx.cpu(0), mx.cpu(1)],
        train_imgs=train_imgs, test_imgs=test_imgs, train_transform=finetune.train_augs(24),
        test_transform=finetune.test_augs(24, 28), verbose=False, progress=False)
    assert seen == [(12, 3, 24, 24)] * (2 * (48 // 12))
    assert onp.isfinite(result['train_loss'])


def test_leaving_an_epoch_early_and_errors_reach_the_consumer(tmp_path):
    ds = _folder(tmp_path / 'img', n_per_class=10, size=(16, 16))
    spec = imagerec.augment_spec(16)
    loader = imagerec.RecordLoader(ds, spec, 2, threads=1, cache_dir=str(tmp_path / 'rec'))
    for i, _ in enumerate(loader):
        if i == 1:
            break                                    # the reading thread stops and is joined
    assert sum(X.shape[0] for X, _ in loader) == 20  # the next epoch is whole
    loader._normalize = None                         # a failure inside the reading thread
    with pytest.raises(TypeError):
        next(iter(loader))


def _identity_ref(ds):
    """The chapter's ToTensor + Normalize of every image, in the folder's order."""
    T = gluon.data.vision.transforms
    ref = T.Compose([T.ToTensor(), T.Normalize(finetune.RGB_MEAN, finetune.RGB_STD)])
    return [ref(img).asnumpy() for img, _ in ds]


@pytest.mark.parametrize('last_batch, n_batches', [('keep', 6), ('discard', 5)])
def test_two_parts_give_every_image_once_per_epoch(tmp_path, last_batch, n_batches):
    # 23 images in two parts (11 + 12 records), batches of 4 cut across the parts
    ds = _folder(tmp_path / 'img', n_per_class=12, size=(12, 12))
    ds.items.pop()
    spec = imagerec.augment_spec(12, scale=(1, 1), ratio=(1, 1), flip=False)
    loader = imagerec.RecordLoader(ds, spec, 4, last_batch=last_batch, threads=2,
                                   cache_dir=str(tmp_path / 'rec'))
    loader.parts = 2
    loader._part_kwargs = [dict(kw, num_parts=2, part_index=i, batch_size=2)
                           for i, kw in enumerate(loader._part_kwargs[:1] * 2)]
    loader._its = loader._iterators(0)
    expected = _identity_ref(ds)
    for _ in range(2):
        batches = [(X.asnumpy(), y.asnumpy()) for X, y in loader]
        assert len(batches) == len(loader) == n_batches
        assert [len(y) for _, y in batches] == [4] * 5 + [3] * (last_batch == 'keep')
        seen = []
        for X, y in batches:
            for x, label in zip(X, y):
                match = [i for i, e in enumerate(expected) if onp.array_equal(x, e)]
                assert len(match) == 1 and ds.items[match[0]][1] == label
                seen += match
        assert len(set(seen)) == len(seen) == 4 * n_batches - (last_batch == 'keep')


def test_uint8_batches_normalised_on_the_device_equal_the_chapters(tmp_path):
    ds = _folder(tmp_path / 'img', n_per_class=3, size=(16, 16))
    spec = imagerec.augment_spec(16, scale=(1, 1), ratio=(1, 1), flip=False)
    loader = imagerec.RecordLoader(ds, spec, 6, shuffle=False, threads=1, dtype='uint8',
                                   cache_dir=str(tmp_path / 'rec'))
    (X, y), = list(loader)
    assert X.dtype == onp.uint8 and X.shape == (6, 3, 16, 16)
    expected = _identity_ref(ds)
    for j, i in enumerate(loader.order):                       # the raw pixels, exactly
        pixels = onp.asarray(Image.open(ds.items[i][0]).convert('RGB')).transpose(2, 0, 1)
        onp.testing.assert_array_equal(X[j].asnumpy(), pixels)
    out = loader.normalize(X).asnumpy()
    assert out.dtype == onp.float32
    for j, i in enumerate(loader.order):
        onp.testing.assert_allclose(out[j], expected[i], rtol=0, atol=1e-6)
    # every pixel value of every channel, against ToTensor + Normalize
    T = gluon.data.vision.transforms
    ramp = onp.broadcast_to(onp.arange(256, dtype=onp.uint8).reshape(16, 16, 1), (16, 16, 3))
    ref = T.Normalize(finetune.RGB_MEAN, finetune.RGB_STD)(
        T.ToTensor()(mx.np.array(ramp, dtype='uint8'))).asnumpy()
    got = imagerec.normalize(mx.np.array(ramp.transpose(2, 0, 1)[None], dtype='uint8'),
                             finetune.RGB_MEAN, finetune.RGB_STD).asnumpy()[0]
    onp.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_pre_resize_keeps_the_aspect_ratio_and_leaves_small_images_alone(tmp_path):
    root = tmp_path / 'img'
    for c, (h, w) in (('a', (30, 50)), ('b', (61, 20)), ('c', (15, 18))):
        os.makedirs(root / c)
        Image.fromarray(onp.random.default_rng(1).integers(0, 256, (h, w, 3), onp.uint8)) \
            .save(root / c / '0.png')
    ds = gluon.data.vision.ImageFolderDataset(str(root))
    rec, idx = imagerec.pack_images(ds, str(tmp_path / 'rec'), resize=20, quality=90)
    reader = mx.recordio.MXIndexedRecordIO(idx, rec, 'r')
    shapes = {}
    for j in range(3):
        header, data = mx.recordio.unpack(reader.read_idx(j))
        path = ds.items[int(header.id)][0]
        shapes[os.path.basename(os.path.dirname(path))] = (
            Image.open(io.BytesIO(data)).format, mx.image.imdecode(data).shape)
        if 'c' in path:
            assert data == open(path, 'rb').read()                # shorter side 15 <= 20
    reader.close()
    # 30x50 -> 20 x round(50 * 20 / 30) = 33; 61x20 is already short enough
    assert shapes == {'a': ('JPEG', (20, 33, 3)), 'b': ('PNG', (61, 20, 3)),
                      'c': ('PNG', (15, 18, 3))}


def test_the_fingerprint_and_the_files_change_with_the_pack_options(tmp_path):
    ds = _folder(tmp_path / 'img', size=(40, 30))
    items = imagerec._items(ds)
    prints = {imagerec.fingerprint(items, r, q) for r, q in ((None, 95), (24, 95), (24, 90),
                                                             (25, 95))}
    assert len(prints) == 4
    assert imagerec.fingerprint(items, 24, 95) == imagerec.fingerprint(items, 24, 95)
    raw = imagerec.pack_images(ds, str(tmp_path / 'rec'))
    small = imagerec.pack_images(ds, str(tmp_path / 'rec'), resize=24, quality=95)
    assert raw != small and all(os.path.exists(p) for p in raw + small)
    stamp = os.stat(raw[0]).st_mtime_ns
    assert imagerec.pack_images(ds, str(tmp_path / 'rec')) == raw      # both kept, no repack
    assert os.stat(raw[0]).st_mtime_ns == stamp
    assert os.path.getsize(small[0]) < os.path.getsize(raw[0])


def test_the_hot_dog_twin_at_real_size_as_jpeg(tmp_path):
    from d2lcv.synth import hotdog
    root = hotdog.make_hotdog(str(tmp_path), num_train=1, num_test=1, min_size=300,
                              max_size=301, fmt='jpg')
    files = sorted(os.path.relpath(os.path.join(d, f), root)
                   for d, _, fs in os.walk(root) for f in fs)
    assert files == [os.path.join(s, c, '0000.jpg') for s in ('test', 'train')
                     for c in ('hotdog', 'not-hotdog')]
    with Image.open(os.path.join(root, files[0])) as img:
        assert img.format == 'JPEG' and min(img.size) >= 300 and max(img.size) <= 301
    with pytest.raises(ValueError, match='fmt'):
        hotdog.make_hotdog(str(tmp_path / 'x'), num_train=1, num_test=1, fmt='gif')
