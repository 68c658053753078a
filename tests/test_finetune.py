"""Section 13.2: the hot dog twin, the fine-tuned network (lr_mult, frozen features, the
source "hot dog" row), training, the source-task pre-training cache, and the comparison."""
import os

import mxnet as mx
import numpy as onp
import pytest
from mxnet import autograd, gluon, init, np
from PIL import Image

import d2lcv
from d2lcv import finetune
from d2lcv.synth import hotdog as twin
from d2lcv.train import train_batch_ch13


@pytest.fixture
def tiny_twin(tmp_path):
    return d2lcv.hub.synth_twin('hotdog', root=str(tmp_path / 'twin'), num_train=6, num_test=4,
                            min_size=24, max_size=40)


def test_twin_layout_and_determinism(tmp_path, tiny_twin):
    assert tiny_twin == str(tmp_path / 'twin' / 'hotdog')
    sizes = set()
    for split, n in (('train', 6), ('test', 4)):
        for cls in ('hotdog', 'not-hotdog'):
            files = sorted(os.listdir(os.path.join(tiny_twin, split, cls)))
            assert files == [f'{i:04d}.png' for i in range(n)]
            for f in files:
                with Image.open(os.path.join(tiny_twin, split, cls, f)) as im:
                    assert im.mode == 'RGB' and 24 <= min(im.size) and max(im.size) <= 40
                    sizes.add(im.size)
    assert len(sizes) > 5  # varied sizes and aspect ratios, like the real photos
    again = d2lcv.hub.synth_twin('hotdog', root=str(tmp_path / 'again'), num_train=6, num_test=4,
                             min_size=24, max_size=40)
    for cls in ('hotdog', 'not-hotdog'):
        a = open(os.path.join(tiny_twin, 'train', cls, '0003.png'), 'rb').read()
        b = open(os.path.join(again, 'train', cls, '0003.png'), 'rb').read()
        assert a == b


def test_download_extract_returns_twin(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_TINY', '1')
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path))
    from d2lcv import hub
    monkeypatch.setitem(hub._TWINS, 'hotdog', (
        lambda root, seed=0: twin.make_hotdog(root, seed, num_train=2, num_test=1), 'hotdog'))
    data_dir = d2lcv.download_extract('hotdog')
    assert data_dir == os.path.join(str(tmp_path), 'tiny', 'hotdog', 'hotdog')
    train_imgs, test_imgs = finetune.hotdog_datasets(data_dir)
    assert len(train_imgs) == 4 and len(test_imgs) == 2


def test_datasets_labels(tiny_twin):
    train_imgs, test_imgs = finetune.hotdog_datasets(tiny_twin)
    assert train_imgs.synsets == ['hotdog', 'not-hotdog']
    labels = [train_imgs[i][1] for i in range(len(train_imgs))]
    assert labels == [0] * 6 + [1] * 6
    img = train_imgs[0][0]
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == onp.uint8


def test_datasets_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='train'):
        finetune.hotdog_datasets(str(tmp_path))


def test_source_task_and_foods():
    X, y = twin.source_task(num_per_class=3, size=32, seed=1)
    assert X.shape == (30, 32, 32, 3) and X.dtype == onp.uint8
    assert sorted(onp.bincount(y).tolist()) == [3] * 10
    X2, y2 = twin.source_task(num_per_class=3, size=32, seed=1)
    onp.testing.assert_array_equal(X, X2)
    assert twin.FOODS[0] == 'hotdog'
    with pytest.raises(ValueError, match='unknown food'):
        twin.draw_foods('pancake', 1, 8, 8, onp.random.default_rng(0))


def test_augs_shapes(tiny_twin):
    train_imgs, _ = finetune.hotdog_datasets(tiny_twin)
    img = train_imgs[0][0]
    x = finetune.train_augs(32)(img)
    assert x.shape == (3, 32, 32)
    y = finetune.test_augs(32, 36)(img)
    assert y.shape == (3, 32, 32)
    # normalised with ImageNet's statistics: a white pixel maps to (1 - mean) / std
    white = np.full((40, 40, 3), 255, dtype='uint8')
    out = finetune.test_augs(32, 36)(white)
    expect = (1 - onp.array(finetune.RGB_MEAN)) / onp.array(finetune.RGB_STD)
    onp.testing.assert_allclose(out[:, 0, 0].asnumpy(), expect, rtol=1e-5)


def _source(num_classes=10):
    mx.random.seed(0)
    net = finetune.small_resnet(num_classes, width=4)
    net.initialize(init.Xavier())
    net(np.zeros((1, 3, 16, 16)))
    return net


def test_finetune_net_structure_and_lr_mult():
    src = _source()
    net = finetune.make_finetune_net(src, 2)
    assert net.features is src.features  # shared, as in the chapter
    out = net(np.random.uniform(size=(3, 3, 16, 16)))
    assert out.shape == (3, 2)
    for name, p in net.collect_params().items():
        expected = 10 if p in net.output.collect_params().values() else 1
        assert p.lr_mult == expected, name
    assert sum(p.lr_mult == 10 for p in net.collect_params().values()) == 2  # weight, bias


def test_lr_mult_scales_the_sgd_update():
    src = _source()
    net = finetune.make_finetune_net(src, 2)
    X = np.random.uniform(size=(4, 3, 16, 16))
    y = np.array([0, 1, 0, 1])
    net(X)
    lr = 0.01
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    before = {k: p.data().copy() for k, p in net.collect_params().items()
              if p.grad_req != 'null'}
    with autograd.record():
        l = loss(net(X), y)
    l.backward()
    grads = {k: p.grad().copy() for k, p in net.collect_params().items() if p.grad_req != 'null'}
    trainer.step(1)
    for k, p in net.collect_params().items():
        if k not in before:
            continue
        mult = 10 if p in net.output.collect_params().values() else 1
        onp.testing.assert_allclose((before[k] - p.data()).asnumpy(),
                                    (lr * mult * grads[k]).asnumpy(), rtol=1e-4, atol=1e-7)


def _frozen_step(hybridize, batch_norm_stats):
    src = _source()
    net = finetune.make_finetune_net(src, 2)
    finetune.freeze_features(net, batch_norm_stats=batch_norm_stats)
    if hybridize:
        net.hybridize()
    X = np.random.uniform(size=(4, 3, 16, 16))
    y = np.array([0, 1, 0, 1])
    net(X)
    feats = {k: p.data().copy() for k, p in net.features.collect_params().items()}
    outs = {k: p.data().copy() for k, p in net.output.collect_params().items()}
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
    train_batch_ch13(net, X, y, gluon.loss.SoftmaxCrossEntropyLoss(), trainer, [mx.cpu()])
    changed = {k for k, p in net.features.collect_params().items()
               if not onp.array_equal(p.data().asnumpy(), feats[k].asnumpy())}
    assert any(not onp.array_equal(p.data().asnumpy(), outs[k].asnumpy())
               for k, p in net.output.collect_params().items())
    return changed


@pytest.mark.parametrize('hybridize', [False, True])
@pytest.mark.parametrize('batch_norm_stats', [False, True])
def test_frozen_features_do_not_change(hybridize, batch_norm_stats):
    # grad_req='null' on the features: MXNet updates BatchNorm's running statistics in the
    # backward pass, which a frozen feature extractor skips, so nothing changes at all
    assert _frozen_step(hybridize, batch_norm_stats) == set()


def test_frozen_batch_norm_stats_use_running_statistics():
    src = _source()
    X = np.random.uniform(size=(4, 3, 16, 16))
    eval_out = src.features(X)
    with autograd.record():
        batch_out = src.features(X)
    net = finetune.freeze_features(finetune.make_finetune_net(src, 2), batch_norm_stats=True)
    with autograd.record():
        frozen_out = net.features(X)
    onp.testing.assert_allclose(frozen_out.asnumpy(), eval_out.asnumpy(), rtol=1e-5, atol=1e-6)
    assert not onp.allclose(batch_out.asnumpy(), eval_out.asnumpy(), atol=1e-3)


def test_unfrozen_features_do_change():
    # the counterpart of the test above: the same step moves the features when not frozen
    src = _source()
    net = finetune.make_finetune_net(src, 2)
    X = np.random.uniform(size=(4, 3, 16, 16))
    net(X)
    w = src.features[0].weight.data().copy()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
    train_batch_ch13(net, X, np.array([0, 1, 0, 1]), gluon.loss.SoftmaxCrossEntropyLoss(),
                     trainer, [mx.cpu()])
    assert not onp.array_equal(w.asnumpy(), src.features[0].weight.data().asnumpy())


def test_hotdog_weight_row():
    src = _source(num_classes=20)
    w = finetune.hotdog_weight(src, row=13)
    assert w.shape == (1, 16)
    onp.testing.assert_array_equal(w.asnumpy(), src.output.weight.data()[13:14].asnumpy())


@pytest.mark.parametrize('hotdog_index', [0, 1])
def test_init_output_from_source_is_linear_readout(hotdog_index):
    src = _source(num_classes=20)
    net = finetune.make_finetune_net(src, 2)
    finetune.init_output_from_source(net, src, row=13, hotdog_index=hotdog_index)
    X = np.random.uniform(size=(5, 3, 16, 16))
    logits = src(X).asnumpy()  # (5, 20), eval mode: same features
    got = net(X).asnumpy()
    others = onp.delete(logits, 13, axis=1).mean(axis=1)
    onp.testing.assert_allclose(got[:, hotdog_index], logits[:, 13], rtol=1e-4, atol=1e-5)
    onp.testing.assert_allclose(got[:, 1 - hotdog_index], others, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match='outside'):
        finetune.init_output_from_source(net, src, row=20)


def test_train_fine_tuning_loss_falls(tiny_twin):
    train_imgs, test_imgs = finetune.hotdog_datasets(tiny_twin)
    finetune.set_seed(0)
    net = finetune.small_resnet(2, width=8)
    net.initialize(init.Xavier())
    result = finetune.train_fine_tuning(
        net, 0.05, batch_size=12, num_epochs=8, devices=[mx.cpu()], train_imgs=train_imgs,
        test_imgs=test_imgs, train_transform=finetune.test_augs(24, 28),
        test_transform=finetune.test_augs(24, 28), verbose=False)
    h = result['history']
    # the epoch-average training loss at the end of each epoch
    losses = [y for x, y in zip(h['x'][0], h['y'][0]) if float(x).is_integer()]
    assert len(losses) == 8
    assert losses[-1] < 0.7 * losses[0], losses
    assert result['test_acc'] == pytest.approx(
        finetune.evaluate(net, test_imgs, finetune.test_augs(24, 28)))


def test_pretrain_source_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path))
    kw = dict(num_per_class=12, num_epochs=1, batch_size=40, devices=[mx.cpu()],
              verbose=False)
    net, info = finetune.pretrain_source(**kw)
    assert os.path.exists(info['params']) and info['params'].startswith(str(tmp_path))
    assert 'not ImageNet' in info['note'] and info['source_train_images'] == 120
    assert not [f for f in os.listdir(os.path.dirname(info['params'])) if f.endswith('.tmp')]
    net2, info2 = finetune.pretrain_source(**kw)  # loaded, not retrained
    assert info2 == info
    for a, b in zip(net.collect_params().values(), net2.collect_params().values()):
        onp.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy())
    _, info3 = finetune.pretrain_source(**dict(kw, seed=1))  # other settings, other file
    assert info3['params'] != info['params']


def test_chapter_model_zoo_resnet18_v2():
    """The chapter's source model shape (random weights: nothing is downloaded)."""
    mx.random.seed(0)
    src = gluon.model_zoo.vision.resnet18_v2()
    src.initialize(init.Xavier())
    X = np.random.uniform(size=(2, 3, 32, 32))
    logits = src(X).asnumpy()
    assert repr(src.output) == 'Dense(512 -> 1000, linear)'  # the chapter's printed output
    assert finetune.hotdog_weight(src).shape == (1, 512)      # exercise 4's printed shape
    net = finetune.make_finetune_net(src, 2)
    finetune.init_output_from_source(net, src)  # row 713
    got = net(X).asnumpy()
    onp.testing.assert_allclose(got[:, 0], logits[:, 713], rtol=1e-4, atol=1e-5)
    onp.testing.assert_allclose(got[:, 1], onp.delete(logits, 713, axis=1).mean(axis=1),
                                rtol=1e-4, atol=1e-5)


def test_test_augs_squash_like_the_chapter():
    # Resize(256) in the chapter makes every image 256x256 before the 224 centre crop: a
    # wide image is squashed, not cropped at the sides
    img = np.zeros((20, 40, 3), dtype='uint8')
    img[:, :10] = 255  # the left quarter is white
    out = finetune.test_augs(16, 16)(img)  # resize to 16x16 then crop 16: the whole image
    white = (out[0] > 0).asnumpy()
    assert white[:, :3].all() and not white[:, 5:].any()
