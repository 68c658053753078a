"""Hostile archives and concurrent callers of the hub (issue 13, items 1 and 2).

Each archive is built in the test; the concurrency tests run two real processes on one
cache folder (no network: the archive is pre-seeded with its sha1)."""
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import textwrap

import pytest

from d2lcv import hub


def _tar(path, entries):
    """``entries``: ``(name, kind, payload)`` in archive order; kind is file / sym / hard /
    chr / fifo / dir."""
    with tarfile.open(path, 'w') as t:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == 'file':
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
                continue
            info.type = {'sym': tarfile.SYMTYPE, 'hard': tarfile.LNKTYPE,
                         'chr': tarfile.CHRTYPE, 'fifo': tarfile.FIFOTYPE,
                         'dir': tarfile.DIRTYPE}[kind]
            if kind in ('sym', 'hard'):
                info.linkname = payload
            if kind == 'chr':
                info.devmajor, info.devminor = 1, 3  # /dev/null
            t.addfile(info)


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, ds, fs in os.walk(root) for n in ds + fs)


def test_symlink_chain_cannot_escape(tmp_path):
    # d/l -> .. (the folder itself: harmless), d/l/m -> .. (through d/l: the parent of the
    # folder), then d/l/m/evil.txt would land beside the folder
    out = tmp_path / 'box' / 'out'
    out.mkdir(parents=True)
    _tar(tmp_path / 'chain.tar', [('d', 'dir', None), ('d/l', 'sym', '..'),
                                  ('d/l/m', 'sym', '..'), ('d/l/m/evil.txt', 'file', b'x')])
    with pytest.raises(hub.UnsafeArchiveError, match="'d/l/m'.*outside"):
        hub.extract(str(tmp_path / 'chain.tar'), str(out))
    assert _tree(tmp_path / 'box') == ['out']
    assert not (tmp_path / 'box' / 'evil.txt').exists()


def test_link_made_harmful_by_a_later_member_is_refused(tmp_path):
    # a -> c/b/../../x resolves inside while c/b does not exist; c/b -> .. then makes it
    # point above the folder
    out = tmp_path / 'box' / 'out'
    _tar(tmp_path / 'late.tar', [('a', 'sym', 'c/b/../../x'), ('c', 'dir', None),
                                 ('c/b', 'sym', '..')])
    with pytest.raises(hub.UnsafeArchiveError, match="'a'.*outside"):
        hub.extract(str(tmp_path / 'late.tar'), str(out))
    assert _tree(tmp_path / 'box') == ['out']


@pytest.mark.parametrize('linkname', ['../secret.txt', '/etc/passwd', 'd/l/secret.txt'])
def test_hard_link_outside_is_refused(tmp_path, linkname):
    (tmp_path / 'box').mkdir()
    (tmp_path / 'box' / 'secret.txt').write_bytes(b'secret')
    out = tmp_path / 'box' / 'out'
    _tar(tmp_path / 'h.tar', [('d', 'dir', None), ('d/l', 'sym', '.'),
                              ('h', 'hard', linkname)])
    with pytest.raises(hub.UnsafeArchiveError, match="'h'"):
        hub.extract(str(tmp_path / 'h.tar'), str(out))
    assert (tmp_path / 'box' / 'secret.txt').read_bytes() == b'secret'
    assert _tree(out) == []


def test_hard_link_to_an_earlier_member_is_a_copy(tmp_path):
    out = tmp_path / 'out'
    _tar(tmp_path / 'h.tar', [('p/a.txt', 'file', b'abc'), ('p/b.txt', 'hard', 'p/a.txt')])
    files = hub.extract(str(tmp_path / 'h.tar'), str(out))
    assert files == {'p/a.txt': 3, 'p/b.txt': 3}
    assert (out / 'p' / 'b.txt').read_bytes() == b'abc'
    assert os.stat(out / 'p' / 'b.txt').st_ino != os.stat(out / 'p' / 'a.txt').st_ino


@pytest.mark.parametrize('kind,word', [('chr', 'device'), ('fifo', 'FIFO')])
def test_device_and_fifo_members_are_refused(tmp_path, kind, word):
    out = tmp_path / 'out'
    _tar(tmp_path / 'dev.tar', [('p/ok.txt', 'file', b'ok'), ('p/null', kind, None)])
    with pytest.raises(hub.UnsafeArchiveError, match=f"'p/null' is a {word}"):
        hub.extract(str(tmp_path / 'dev.tar'), str(out))
    assert _tree(out) == []


_WORKER = textwrap.dedent('''
    import os, sys, time
    from d2lcv import hub
    N, SIZE = 400, 16384
    name, url, sha1, mode, start, force, k = sys.argv[1:8]
    hub.DATA_HUB[name] = (url, sha1)
    while time.time() < float(start) + 0.1 * int(k):  # start (nearly) together
        time.sleep(0.001)
    if mode == 'extract':
        folder = hub.download_extract(name, tiny=False)
    else:
        def make(root, seed=0):
            for i in range(N):
                with open(os.path.join(root, f'f{i}.bin'), 'wb') as f:
                    f.write(bytes([i % 251]) * SIZE)
        hub.register_twin(name, make, '.')
        folder = hub.synth_twin(name, force=force == '1')
    for _ in range(10):  # the others may still be at work
        for i in range(N):
            with open(os.path.join(folder, f'f{i}.bin'), 'rb') as f:
                data = f.read()
            assert data == bytes([i % 251]) * SIZE, (i, len(data))
    print('ok')
''')


def _run_two(tmp_path, mode, name, url='http://127.0.0.1:9/none', sha1='0' * 40,
             forces='00'):
    import time
    env = dict(os.environ, D2LCV_DATA_DIR=str(tmp_path / 'cache'), OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(sys.path)
    start = str(time.time() + 4)  # both have imported d2lcv by then
    procs = [subprocess.Popen([sys.executable, '-c', _WORKER, name, url, sha1, mode, start,
                               force, str(k)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
             for k, force in enumerate(forces)]
    outs = [p.communicate(timeout=120)[0].decode() for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0 and out.strip().endswith('ok'), out


N, SIZE = 400, 16384


def _pack(tmp_path):
    cache = tmp_path / 'cache'
    cache.mkdir()
    with tarfile.open(cache / 'pack.tar', 'w') as t:
        for i in range(N):
            data = bytes([i % 251]) * SIZE
            info = tarfile.TarInfo(f'pack/f{i}.bin')
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return cache, hashlib.sha1((cache / 'pack.tar').read_bytes()).hexdigest()


def test_two_processes_extract_the_same_archive(tmp_path):
    cache, sha1 = _pack(tmp_path)
    _run_two(tmp_path, 'extract', 'pack', url='http://127.0.0.1:9/pack.tar', sha1=sha1,
             forces='000')
    assert sorted(n for n in os.listdir(cache) if not n.endswith('.lock')) == \
        ['pack', 'pack.tar', 'pack.tar.extracted']


def test_two_processes_generate_the_same_twin(tmp_path):
    _run_two(tmp_path, 'synth', 'slowtwin', forces='0')  # the twin exists; one process
    # reads it while another regenerates it, and a third one too
    _run_two(tmp_path, 'synth', 'slowtwin', forces='011')
    assert [n for n in os.listdir(tmp_path / 'cache' / 'tiny')
            if not n.endswith('.lock')] == ['slowtwin']


def test_deleted_file_under_the_stamp_is_extracted_again(tmp_path, monkeypatch):
    cache, sha1 = _pack(tmp_path)
    monkeypatch.setitem(hub.DATA_HUB, 'pack', ('http://127.0.0.1:9/pack.tar', sha1))
    monkeypatch.setenv('D2LCV_DATA_DIR', str(cache))
    folder = hub.download_extract('pack', tiny=False)
    os.remove(os.path.join(folder, 'f7.bin'))
    with open(os.path.join(folder, 'f8.bin'), 'wb') as f:
        f.write(b'cut')
    assert hub.download_extract('pack', tiny=False) == folder
    assert (cache / 'pack' / 'f7.bin').read_bytes() == bytes([7]) * SIZE
    assert (cache / 'pack' / 'f8.bin').read_bytes() == bytes([8]) * SIZE


def test_stale_temporary_folders_removed_only_when_their_owner_is_gone(tmp_path):
    from d2lcv import fsutil
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    live = fsutil.temp_dir(str(tmp_path), 'x')              # this process: alive
    gone = tmp_path / f'.x.tmp-{dead.pid}-abc'               # its owner has exited
    gone.mkdir()
    other = tmp_path / '.y.tmp-999999999-abc'                # another name: not ours
    other.mkdir()
    fsutil.clean_stale(str(tmp_path), 'x')
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(live), other.name])


def test_extract_replaces_its_own_folder_and_keeps_siblings(tmp_path):
    out = tmp_path / 'out'
    (out / 'VOCdevkit' / 'VOC2007').mkdir(parents=True)
    (out / 'VOCdevkit' / 'VOC2007' / 'keep.txt').write_bytes(b'k')
    (out / 'VOCdevkit' / 'VOC2012').mkdir()
    (out / 'VOCdevkit' / 'VOC2012' / 'stale.txt').write_bytes(b'old')
    _tar(tmp_path / 'v.tar', [('VOCdevkit/VOC2012/a.txt', 'file', b'a'),
                              ('VOCdevkit/VOC2012/sub/b.txt', 'file', b'b')])
    hub.extract(str(tmp_path / 'v.tar'), str(out))
    assert _tree(out) == ['VOCdevkit', 'VOCdevkit/VOC2007', 'VOCdevkit/VOC2007/keep.txt',
                          'VOCdevkit/VOC2012', 'VOCdevkit/VOC2012/a.txt',
                          'VOCdevkit/VOC2012/sub', 'VOCdevkit/VOC2012/sub/b.txt']
