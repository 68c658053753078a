"""The data hub: verified, atomic downloads against a local HTTP server; safe extraction."""
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import zipfile

import pytest

from d2lcv import hub
from netutil import closed_port

PAYLOAD = b'd2lcv test payload\n' * 1000
SHA1 = hashlib.sha1(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == '/good.bin':
            body = PAYLOAD
        elif self.path == '/bad.bin':
            body = PAYLOAD[:-1] + b'X'
        elif self.path == '/cut.bin':
            # announce the whole file, send half, then hang up
            self.send_response(200)
            self.send_header('Content-Length', str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:len(PAYLOAD) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope='module')
def server():
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()


@pytest.fixture
def entry(monkeypatch):
    def add(name, url, sha1=SHA1):
        monkeypatch.setitem(hub.DATA_HUB, name, (url, sha1))
    return add


def test_download_good_file_is_cached(server, entry, tmp_path):
    entry('good', server + 'good.bin')
    path = hub.download('good', cache_dir=tmp_path, progress=False)
    assert path == str(tmp_path / 'good.bin')
    assert open(path, 'rb').read() == PAYLOAD
    assert sorted(os.listdir(tmp_path)) == ['good.bin']
    # a second call reuses the verified file without the network
    entry('good', f'http://127.0.0.1:{closed_port()}/good.bin')
    assert hub.download('good', cache_dir=tmp_path, progress=False) == path


def test_sha1_mismatch_raises_and_leaves_nothing(server, entry, tmp_path):
    entry('bad', server + 'bad.bin')
    with pytest.raises(hub.DownloadError, match='sha1 mismatch'):
        hub.download('bad', cache_dir=tmp_path, progress=False)
    assert os.listdir(tmp_path) == []


def test_interrupted_transfer_raises_and_leaves_nothing(server, entry, tmp_path):
    entry('cut', server + 'cut.bin')
    with pytest.raises(hub.DownloadError):
        hub.download('cut', cache_dir=tmp_path, progress=False)
    assert os.listdir(tmp_path) == []


def test_corrupt_cached_file_is_replaced(server, entry, tmp_path):
    (tmp_path / 'good.bin').write_bytes(b'half a file')
    entry('good', server + 'good.bin')
    path = hub.download('good', cache_dir=tmp_path, progress=False)
    assert open(path, 'rb').read() == PAYLOAD


def test_server_down_says_how_to_get_the_twin(entry, tmp_path):
    entry('down', f'http://127.0.0.1:{closed_port()}/x.zip')
    with pytest.raises(hub.DownloadError, match='D2LCV_TINY=1') as err:
        hub.download('down', cache_dir=tmp_path, progress=False, timeout=5)
    assert 'd2lcv data synth down' in str(err.value)
    assert os.listdir(tmp_path) == []


def test_http_404(server, entry, tmp_path):
    entry('missing', server + 'missing.bin')
    with pytest.raises(hub.DownloadError, match='404'):
        hub.download('missing', cache_dir=tmp_path, progress=False)


def test_data_hub_sha1s_are_the_corrected_ones():
    assert hub.DATA_HUB['bananas'][1] == 'aadfd1c4c5d7178616799dd1801c9a234ccdaf19'
    assert hub.DATA_HUB['cifar10_tiny'][1] == '2068874e4b9a9f0fb07ebe0ad2b29754449ccacd'
    assert hub.DATA_HUB['hotdog'][1] == 'fba480ffa8aa7e0febbb511d181409f899b9baa5'
    for name, (url, sha1) in hub.DATA_HUB.items():
        assert len(sha1) == 40 and int(sha1, 16) >= 0, name
        assert url.startswith(hub.DATA_URL), name


def test_malformed_sha1_is_refused(entry):
    entry('short', 'http://127.0.0.1:9/x.zip', 'aafd1c4c5d7178616799dd1801c9a234ccdaf19')
    with pytest.raises(ValueError, match='39 characters'):
        hub.download('short')


def test_unknown_entry():
    with pytest.raises(KeyError, match='not in DATA_HUB'):
        hub.download('no-such-data')


def _zip(path, members):
    with zipfile.ZipFile(path, 'w') as z:
        for name, data in members.items():
            z.writestr(name, data)


def _tar(path, members, links=()):
    with tarfile.open(path, 'w') as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            t.addfile(info)


def test_extract_zip_and_tar(tmp_path):
    _zip(tmp_path / 'a.zip', {'a/x.txt': b'x', 'a/sub/y.txt': b'y'})
    _tar(tmp_path / 'b.tar', {'b/x.txt': b'x'})
    out = tmp_path / 'out'
    hub.extract(str(tmp_path / 'a.zip'), str(out))
    hub.extract(str(tmp_path / 'b.tar'), str(out))
    assert (out / 'a' / 'sub' / 'y.txt').read_bytes() == b'y'
    assert (out / 'b' / 'x.txt').read_bytes() == b'x'


@pytest.mark.parametrize('bad', ['../evil.txt', 'a/../../evil.txt', '/tmp/evil-abs.txt'])
@pytest.mark.parametrize('kind', ['zip', 'tar'])
def test_extract_refuses_members_outside_target(tmp_path, bad, kind):
    archive = tmp_path / f'bad.{kind}'
    (_zip if kind == 'zip' else _tar)(archive, {'ok.txt': b'ok', bad: b'evil'})
    out = tmp_path / 'out'
    with pytest.raises(hub.UnsafeArchiveError, match='evil'):
        hub.extract(str(archive), str(out))
    # nothing at all was written: members are checked before extraction starts
    assert not out.exists() or os.listdir(out) == []
    assert not (tmp_path / 'evil.txt').exists()


def test_extract_refuses_symlink_escaping(tmp_path):
    _tar(tmp_path / 'l.tar', {'a.txt': b'a'}, links=[('link', '../../etc/passwd')])
    with pytest.raises(hub.UnsafeArchiveError, match='outside'):
        hub.extract(str(tmp_path / 'l.tar'), str(tmp_path / 'out'))


def test_download_extract_returns_folder(server, entry, tmp_path, monkeypatch):
    archive = tmp_path / 'src' / 'pack.zip'
    archive.parent.mkdir()
    _zip(archive, {'pack/readme.txt': b'hello', 'pack/inner/f.txt': b'f'})
    data = archive.read_bytes()
    cache = tmp_path / 'cache'
    cache.mkdir()
    (cache / 'pack.zip').write_bytes(data)  # pre-seeded cache: no network needed
    entry('pack', server + 'pack.zip', hashlib.sha1(data).hexdigest())
    monkeypatch.setenv('D2LCV_DATA_DIR', str(cache))
    assert hub.download_extract('pack', tiny=False) == str(cache / 'pack')
    assert hub.download_extract('pack', 'pack/inner', tiny=False) == str(cache / 'pack/inner')
    assert (cache / 'pack' / 'readme.txt').read_bytes() == b'hello'


def test_tiny_download_extract_returns_twin(monkeypatch, tmp_path):
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path))
    monkeypatch.setenv('D2LCV_TINY', '1')
    folder = hub.download_extract('cifar10')
    assert folder == os.path.join(str(tmp_path), 'tiny', 'cifar10', 'cifar-10-batches-bin')
    assert os.path.exists(os.path.join(folder, 'test_batch.bin'))
    # no temporary folders are left next to the twin (only its lock file)
    assert sorted(os.listdir(tmp_path / 'tiny')) == ['.cifar10.lock', 'cifar10']


def test_interrupted_twin_generation_leaves_nothing(monkeypatch, tmp_path):
    def broken(root, seed=0):
        open(os.path.join(root, 'partial'), 'w').close()
        raise RuntimeError('generator crashed')
    monkeypatch.setitem(hub._TWINS, 'broken', (broken, 'x'))
    with pytest.raises(RuntimeError, match='crashed'):
        hub.synth_twin('broken', root=str(tmp_path / 'broken'))
    assert os.listdir(tmp_path) == ['.broken.lock']


def test_twin_is_regenerated_when_its_generator_seed_or_sizes_change(monkeypatch, tmp_path,
                                                                   capsys):
    made = []

    def counting(root, seed=0, n=1):
        made.append((seed, n))
        with open(os.path.join(root, 'data.txt'), 'w') as f:
            f.write(f'{seed} {n}')
    monkeypatch.setitem(hub._TWINS, 'counted', (counting, ''))
    root = str(tmp_path / 'counted')
    hub.synth_twin('counted', root=root, n=2)
    hub.synth_twin('counted', root=root, n=2)          # cached: same generator, same sizes
    hub.synth_twin('counted', root=root)               # no sizes named: any cached twin
    assert made == [(0, 2)]
    hub.synth_twin('counted', root=root, n=3)          # other sizes
    assert made == [(0, 2), (0, 3)]
    assert 'regenerating the counted twin' in capsys.readouterr().err
    hub.synth_twin('counted', root=root, seed=1)       # another seed
    assert made[-1] == (1, 1)
    os.remove(os.path.join(root, hub.TWIN_STAMP))      # a twin cached before stamps existed
    hub.synth_twin('counted', root=root)
    assert made[-1] == (0, 1) and len(made) == 4
    # another version of the generators (their source changed)
    monkeypatch.setattr(hub, '_generator_digest', lambda make: 'another version')
    hub.synth_twin('counted', root=root, n=3)
    assert made[-1] == (0, 3) and len(made) == 5
    with open(os.path.join(root, 'data.txt')) as f:
        assert f.read() == '0 3'


def test_generator_digest_follows_the_generators_source(monkeypatch, tmp_path):
    assert 'cifar10' in hub.twin_names()               # also registers the generators
    make = hub._TWINS['cifar10'][0]
    assert hub._generator_digest(make) == hub._generator_digest(make)

    def other(root, seed=0):
        pass
    assert hub._generator_digest(other) != hub._generator_digest(make)


def test_is_tiny(monkeypatch):
    monkeypatch.delenv('D2LCV_TINY', raising=False)
    assert not hub.is_tiny()
    for value, expected in [('1', True), ('yes', True), ('0', False), ('false', False)]:
        monkeypatch.setenv('D2LCV_TINY', value)
        assert hub.is_tiny() is expected
    assert hub.is_tiny(False) is False


def test_mkdir_if_not_exist(tmp_path):
    target = tmp_path / 'a' / 'b'
    hub.mkdir_if_not_exist(str(target))
    hub.mkdir_if_not_exist(str(target))
    assert target.is_dir()
