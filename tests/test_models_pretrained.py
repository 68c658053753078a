"""Pretrained-weight resolution: model zoo cache, model zoo download (served from localhost),
local files in $D2LCV_PRETRAINED_DIR, import with sha1 check, and the missing-file error.
Nothing here touches the network: the zoo's repo URL points at 127.0.0.1."""
import functools
import hashlib
import http.server
import os
import threading
import zipfile

import mxnet as mx
import numpy as onp
import pytest
from mxnet import np
from mxnet.gluon.model_zoo import vision

import d2lcv
from d2lcv.models import (PretrainedWeightsMissing, get_pretrained, import_weights,
                          zoo_file_name, ZOO_SHA1)
from netutil import closed_port

NAME = 'mobilenet0.25'  # a small model zoo network keeps the files small (~2 MB)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxhome'))
    monkeypatch.setenv('D2LCV_PRETRAINED_DIR', str(tmp_path / 'pre'))
    monkeypatch.setenv('MXNET_GLUON_REPO', f'http://127.0.0.1:{closed_port()}/')
    return tmp_path


def _saved_params(path, seed=0):
    """Save a randomly initialised NAME to ``path``; return its parameters as numpy."""
    mx.random.seed(seed)
    net = vision.get_model(NAME)
    net.initialize(mx.init.Xavier())
    net(np.zeros((1, 3, 32, 32)))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    net.save_parameters(str(path))
    return {k: v.data().asnumpy() for k, v in net.collect_params().items()}


def _params(net):
    return {k: v.data().asnumpy() for k, v in net.collect_params().items()}


def _same(net, ref):
    got = _params(net)
    assert len(got) == len(ref)
    # parameter names carry a global prefix counter; compare in order
    for a, b in zip(got.values(), ref.values()):
        onp.testing.assert_array_equal(a, b)


def _sha1(path):
    return hashlib.sha1(open(path, 'rb').read()).hexdigest()


def test_exports_and_table():
    assert d2lcv.models.get_pretrained is get_pretrained
    assert issubclass(d2lcv.models.PretrainedWeightsMissing, FileNotFoundError)
    # ERRATA's sha1s for the chapter's three models
    assert ZOO_SHA1['resnet18_v2'] == 'a81db45fd7b7a2d12ab97cd88ef0a5ac48b8f657'
    assert ZOO_SHA1['resnet34_v2'] == '9d6b80bbc35169de6b6edecffdd6047c56fdd322'
    assert ZOO_SHA1['vgg19'] == 'ad2f660d101905472b83590b59708b71ea22b2e5'
    assert zoo_file_name('resnet18_v2') == 'resnet18_v2-a81db45f.params'
    assert zoo_file_name('not-a-model') is None


@pytest.mark.parametrize('name', ['resnet18_v2', 'vgg19'])
def test_missing_weights_error_names_files(env, name):
    with pytest.raises(PretrainedWeightsMissing) as e:
        get_pretrained(name)
    msg = str(e.value)
    pre = str(env / 'pre')
    assert os.path.join(pre, f'{name}.params') in msg
    assert os.path.join(pre, zoo_file_name(name)) in msg
    assert os.path.join(str(env / 'mxhome'), 'models', zoo_file_name(name)) in msg
    assert 'd2lcv weights import PATH' in msg
    assert '127.0.0.1' in msg  # says why the download failed
    # nothing half-written in the zoo cache
    assert [f for f in os.listdir(env / 'mxhome' / 'models')] == []


def test_missing_without_download(env):
    with pytest.raises(FileNotFoundError, match='download disabled'):
        get_pretrained('resnet34_v2', download=False)


@pytest.mark.parametrize('zoo_named', [False, True])
def test_local_file(env, zoo_named):
    fname = zoo_file_name(NAME) if zoo_named else f'{NAME}.params'
    ref = _saved_params(env / 'pre' / fname)
    net = get_pretrained(NAME)
    assert net.pretrained_source == str(env / 'pre' / fname)
    _same(net, ref)
    y = net(np.zeros((2, 3, 32, 32)))
    assert y.shape == (2, 1000)


def test_local_file_of_wrong_model(env):
    _saved_params(env / 'pre' / 'resnet18_v2.params')  # a mobilenet saved under a resnet name
    with pytest.raises(ValueError, match='resnet18_v2.params'):
        get_pretrained('resnet18_v2')


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def zoo_server(env, monkeypatch):
    """A model zoo on localhost serving ``gluon/models/<file>.zip`` from a temp folder."""
    served = env / 'served'
    (served / 'gluon' / 'models').mkdir(parents=True)
    httpd = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(_Quiet, directory=str(served)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    monkeypatch.setenv('MXNET_GLUON_REPO', f'http://127.0.0.1:{httpd.server_port}')
    yield served / 'gluon' / 'models'
    httpd.shutdown()
    httpd.server_close()


def _publish(folder, params_path, table):
    fname = zoo_file_name(NAME, table)
    with zipfile.ZipFile(folder / (fname[:-len('.params')] + '.zip'), 'w') as z:
        z.write(params_path, fname)


def test_zoo_download_then_cache(env, zoo_server, monkeypatch):
    src = env / 'src' / 'w.params'
    ref = _saved_params(src)
    table = {NAME: _sha1(src)}
    _publish(zoo_server, src, table)
    net = get_pretrained(NAME, sha1_table=table)
    cached = env / 'mxhome' / 'models' / zoo_file_name(NAME, table)
    assert net.pretrained_source == str(cached)
    assert _sha1(cached) == table[NAME]
    assert sorted(os.listdir(cached.parent)) == [cached.name]  # no temporaries left
    _same(net, ref)
    # the second call is served from the cache, without the server
    monkeypatch.setenv('MXNET_GLUON_REPO', f'http://127.0.0.1:{closed_port()}/')
    _same(get_pretrained(NAME, sha1_table=table), ref)


def test_zoo_download_with_wrong_sha1_is_refused(env, zoo_server):
    src = env / 'src' / 'w.params'
    _saved_params(src)
    table = {NAME: '0' * 8 + _sha1(src)[8:]}  # the file name matches, the content does not
    _publish(zoo_server, src, table)
    with pytest.raises(PretrainedWeightsMissing, match='sha1'):
        get_pretrained(NAME, sha1_table=table)
    assert os.listdir(env / 'mxhome' / 'models') == []


def test_zoo_download_falls_back_to_local_file(env, zoo_server):
    # the server has nothing (404): the local file is used
    ref = _saved_params(env / 'pre' / f'{NAME}.params', seed=3)
    _same(get_pretrained(NAME), ref)


def test_corrupt_cache_is_not_used(env):
    table = {NAME: 'f' * 40}
    cache = env / 'mxhome' / 'models'
    cache.mkdir(parents=True)
    (cache / zoo_file_name(NAME, table)).write_bytes(b'garbage')
    with pytest.raises(PretrainedWeightsMissing, match='wrong sha1'):
        get_pretrained(NAME, sha1_table=table)


def test_import_weights(env):
    src = env / 'downloads' / 'some-name.params'
    ref = _saved_params(src)
    table = {NAME: _sha1(src), 'other': 'a' * 40}
    target = import_weights(str(src), sha1_table=table)  # name found from the sha1
    assert target == str(env / 'pre' / zoo_file_name(NAME, table))
    assert _sha1(target) == table[NAME]
    assert sorted(os.listdir(env / 'pre')) == [os.path.basename(target)]
    _same(get_pretrained(NAME, sha1_table=table, download=False), ref)
    with pytest.raises(ValueError, match='does not match'):
        import_weights(str(src), name='other', sha1_table=table)
    with pytest.raises(ValueError, match='not in the model zoo'):
        import_weights(str(src), name='nope', sha1_table=table)
    with pytest.raises(ValueError, match='matches no model zoo file'):
        import_weights(str(src), sha1_table={'other': 'a' * 40})
    with pytest.raises(FileNotFoundError):
        import_weights(str(env / 'absent.params'), sha1_table=table)


def test_import_weights_dest(env):
    src = env / 'w.params'
    _saved_params(src)
    table = {NAME: _sha1(src)}
    target = import_weights(str(src), NAME, dest=str(env / 'elsewhere'), sha1_table=table)
    assert os.path.dirname(target) == str(env / 'elsewhere')
