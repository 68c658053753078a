"""Data hub: the chapter's DATA_HUB, verified downloads, safe extraction, and synthetic twins.

``download(name)`` streams a DATA_HUB entry into the cache (:func:`data_dir`: the checkout's
``data/`` or ``D2LCV_DATA_DIR``) under a temporary name, checks its sha1 and only then renames
it into place, so the cache never holds a partial or corrupt file.
``download_extract(name, folder)`` unpacks zip and tar archives and refuses any member that
would land outside the cache folder.

Offline, every entry has a *synthetic twin*: a small generated data set in the same on-disk
layout as the extracted archive. With ``D2LCV_TINY=1`` (or ``tiny=True``)
``download_extract`` returns the twin's folder, generating it on first use, so the chapter's
own cells (``d2l.download_extract('voc2012', 'VOCdevkit/VOC2012')``) run unchanged.
Twin generators live in :mod:`d2lcv.synth` and register themselves with :func:`register_twin`.
"""
import hashlib
import importlib
import inspect
import json
import os
import pkgutil
import shutil
import sys
import tarfile
import tempfile
import zipfile

from ._util import progress_bar
from .fsutil import clean_stale, name_lock, replace_dir, temp_dir

__all__ = ['DATA_HUB', 'DATA_URL', 'TWIN_STAMP', 'download', 'download_extract', 'mkdir_if_not_exist',
           'data_dir', 'is_tiny', 'register_twin', 'synth_twin', 'twin_names',
           'DownloadError', 'UnsafeArchiveError', 'img_path', 'extract', 'sha1_file',
           'file_digest']

DATA_URL = os.environ.get('D2LCV_DATA_URL', 'http://d2l-data.s3-accelerate.amazonaws.com/')
if not DATA_URL.endswith('/'):
    DATA_URL += '/'

#: name -> (url, sha1). The sha1s are the corrected ones (see ERRATA: the chapter prints two
#: of them truncated).
DATA_HUB = {
    'hotdog': (DATA_URL + 'hotdog.zip', 'fba480ffa8aa7e0febbb511d181409f899b9baa5'),
    'bananas': (DATA_URL + 'bananas.zip', 'aadfd1c4c5d7178616799dd1801c9a234ccdaf19'),
    'banana-detection': (DATA_URL + 'banana-detection.zip',
                         '5de26c8fce5ccdea9f91267273464dc968d20d72'),
    'voc2012': (DATA_URL + 'VOCtrainval_11-May-2012.tar',
                '4e443f8a2eca6b1dac8a6c57641b67dd40621a49'),
    'cifar10_tiny': (DATA_URL + 'kaggle_cifar10_tiny.zip',
                     '2068874e4b9a9f0fb07ebe0ad2b29754449ccacd'),
    'dog_tiny': (DATA_URL + 'kaggle_dog_tiny.zip', '0cb91d09b814ecdc07b50f31f8dcad3e81d6a86d'),
}


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status, or sha1 mismatch)."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would be written outside the extraction folder."""


def data_dir():
    """The download cache folder, the same wherever Python starts.

    ``$D2LCV_DATA_DIR`` if set; else, when d2lcv runs from a source checkout (an editable
    install), the checkout's ``data/`` folder; else ``~/.cache/d2lcv/data``.
    """
    if os.environ.get('D2LCV_DATA_DIR'):
        return os.environ['D2LCV_DATA_DIR']
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(checkout, 'pyproject.toml')) and \
            os.path.isdir(os.path.join(checkout, 'data')):
        return os.path.join(checkout, 'data')
    return os.path.join(os.path.expanduser('~'), '.cache', 'd2lcv', 'data')


def is_tiny(tiny=None):
    """Whether to use synthetic twins: ``tiny`` if given, else ``$D2LCV_TINY``."""
    if tiny is not None:
        return bool(tiny)
    return os.environ.get('D2LCV_TINY', '').strip().lower() not in ('', '0', 'false', 'no')


def img_path(name):
    """Path of a sample image shipped in the repository's ``img/`` folder."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(os.path.dirname(here), 'img', name)
    if not os.path.exists(path):
        raise FileNotFoundError(f'sample image {name!r} not found at {path}')
    return path


def mkdir_if_not_exist(path):
    """Make a directory (and its parents) if it does not exist (the chapter's helper)."""
    os.makedirs(path, exist_ok=True)


def sha1_file(path, chunk=1 << 20):
    """The sha1 hex digest of a file, read in chunks."""
    return file_digest(path, 'sha1', chunk)


def file_digest(path, algorithm, chunk=1 << 20):
    """The hex digest of a file under ``hashlib``'s ``algorithm``, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def _entry(name):
    if name not in DATA_HUB:
        raise KeyError(f'{name!r} is not in DATA_HUB; known entries: {sorted(DATA_HUB)}')
    url, sha1 = DATA_HUB[name]
    if len(sha1) != 40 or any(c not in '0123456789abcdef' for c in sha1.lower()):
        raise ValueError(f'DATA_HUB[{name!r}] has a malformed sha1 {sha1!r} '
                         f'({len(sha1)} characters, a sha1 has 40 hex digits)')
    return url, sha1


def download(name, cache_dir=None, timeout=30, progress=True):
    """Download ``DATA_HUB[name]`` into ``cache_dir`` and return the local file name.

    A cached file whose sha1 matches is reused. The body is streamed to a temporary file in
    the same folder, hashed, and renamed into place only when the sha1 matches; any failure
    (connection, timeout, HTTP status, truncated body, mismatch) raises :class:`DownloadError`
    and leaves nothing behind.
    """
    import requests
    url, sha1 = _entry(name)
    cache_dir = cache_dir or data_dir()
    os.makedirs(cache_dir, exist_ok=True)
    fname = os.path.join(cache_dir, url.split('/')[-1])
    if os.path.exists(fname) and sha1_file(fname) == sha1:
        return fname
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix='.' + os.path.basename(fname) + '.',
                               suffix='.part')
    try:
        h = hashlib.sha1()
        try:
            with requests.get(url, stream=True, timeout=timeout) as r:
                r.raise_for_status()
                total = int(r.headers.get('content-length') or 0) or None
                bar = progress_bar(total=total, desc=f'Downloading {os.path.basename(fname)}',
                                   enabled=progress, unit='B', unit_scale=True, leave=True)
                received = 0
                with os.fdopen(fd, 'wb') as f:
                    fd = None
                    for block in r.iter_content(chunk_size=1 << 16):
                        f.write(block)
                        h.update(block)
                        received += len(block)
                        bar.update(len(block))
                bar.close()
                if total is not None and received != total:
                    raise DownloadError(f'{url}: transfer interrupted after {received} of '
                                        f'{total} bytes')
        except requests.RequestException as e:
            raise DownloadError(
                f'could not download {name!r} from {url}: {e}. Offline? Use the synthetic '
                f'twin instead: `d2lcv run SECTION --tiny` (D2LCV_TINY=1 in Python, `d2lcv data '
                f'synth {name}` for the files); or put '
                f'the file at {fname} (sha1 {sha1}).') from e
        if h.hexdigest() != sha1:
            raise DownloadError(f'{url}: sha1 mismatch, got {h.hexdigest()}, expected {sha1}; '
                                f'nothing was written to {cache_dir}')
        os.replace(tmp, fname)
        tmp = None
        return fname
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def _inside(root, path):
    return os.path.commonpath([root, path]) == root


def _safe_dest(root, name):
    """Where member ``name`` lands under the real folder ``root``, resolving the links that
    earlier members created; raise unless it stays inside ``root``."""
    norm = name.replace('\\', '/')
    parts = [p for p in norm.split('/') if p not in ('', '.')]
    if norm.startswith('/') or (len(norm) > 1 and norm[1] == ':'):
        raise UnsafeArchiveError(f'archive member {name!r} has an absolute path')
    if '..' in parts:
        raise UnsafeArchiveError(f'archive member {name!r} would be written outside the '
                                 'extraction folder (".." in its path)')
    if not parts:
        return None
    # the parent is resolved *now*: a symlink made by an earlier member counts
    parent = os.path.realpath(os.path.join(root, *parts[:-1]))
    if not _inside(root, parent):
        raise UnsafeArchiveError(f'archive member {name!r} would be written outside the '
                                 f'extraction folder (through a link to {parent})')
    return os.path.join(parent, parts[-1])


def _write_stream(src, dest):
    if os.path.isdir(dest) and not os.path.islink(dest):
        raise UnsafeArchiveError(f'archive member {os.path.basename(dest)!r}: a file over '
                                 'a folder of an earlier member')
    if os.path.lexists(dest):
        os.unlink(dest)  # never write through a link left by an earlier member
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0),
                 0o644)
    with os.fdopen(fd, 'wb') as f:
        shutil.copyfileobj(src, f, 1 << 20)


def _extract_tar_member(t, m, root):
    dest = _safe_dest(root, m.name)
    if dest is None:
        return
    if m.isdir():
        if os.path.islink(dest):
            raise UnsafeArchiveError(f'archive member {m.name!r} is a folder over a link')
        os.makedirs(dest, exist_ok=True)
    elif m.isfile():
        _write_stream(t.extractfile(m), dest)
    elif m.issym():
        if os.path.isabs(m.linkname) or m.linkname.startswith(('/', '\\')):
            raise UnsafeArchiveError(f'archive member {m.name!r} links to the absolute path '
                                     f'{m.linkname!r}')
        target = os.path.realpath(os.path.join(os.path.dirname(dest), m.linkname))
        if not _inside(root, target):
            raise UnsafeArchiveError(f'archive member {m.name!r} links to {m.linkname!r}, '
                                     'outside the extraction folder')
        if os.path.lexists(dest):
            raise UnsafeArchiveError(f'archive member {m.name!r} replaces an earlier member')
        os.symlink(m.linkname, dest)
    elif m.islnk():
        # a hard link names an earlier member: copy it (never link to a file we did not write)
        try:
            src = _safe_dest(root, m.linkname)
            src = os.path.realpath(src) if src else root
        except UnsafeArchiveError:
            src = None
        if src is None or not _inside(root, src) or not os.path.isfile(src):
            raise UnsafeArchiveError(f'archive member {m.name!r} is a hard link to '
                                     f'{m.linkname!r}, not a file extracted before it')
        with open(src, 'rb') as f:
            _write_stream(f, dest)
    else:
        kind = 'device' if m.ischr() or m.isblk() else 'FIFO' if m.isfifo() else 'special'
        raise UnsafeArchiveError(f'archive member {m.name!r} is a {kind} file')


def _check_links(root):
    """Every symlink under ``root`` still resolves inside it (a later member may have turned
    an earlier, harmless link into an escaping one)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.path.islink(p) and not _inside(root, os.path.realpath(p)):
                raise UnsafeArchiveError(f'archive link {os.path.relpath(p, root)!r} '
                                         f'resolves to {os.path.realpath(p)}, outside the '
                                         'extraction folder')


def _extract_into(fname, root):
    """Extract ``fname`` into the empty folder ``root`` member by member, checking each
    member against what the earlier ones created."""
    root = os.path.realpath(root)
    if zipfile.is_zipfile(fname):
        with zipfile.ZipFile(fname) as z:
            for info in z.infolist():
                dest = _safe_dest(root, info.filename)
                if dest is None:
                    continue
                if info.is_dir():
                    os.makedirs(dest, exist_ok=True)
                else:
                    with z.open(info) as src:
                        _write_stream(src, dest)
    elif tarfile.is_tarfile(fname):
        with tarfile.open(fname) as t:
            for m in t:  # streamed: members are checked in the order they are written
                _extract_tar_member(t, m, root)
        _check_links(root)
    else:
        raise ValueError(f'{fname}: only zip and tar archives can be extracted')


def _manifest(root):
    """``{relative path: size}`` of every regular file under ``root``."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                out[os.path.relpath(p, root).replace(os.sep, '/')] = os.path.getsize(p)
    return out


def _install(src, dst):
    """Move the extracted ``src`` to ``dst``, replacing the old copy in one exchange.

    A wrapper folder holding a single folder (``VOCdevkit/VOC2012``) is descended into when
    it already exists, so another archive's siblings there (``VOCdevkit/VOC2007``) stay.
    """
    children = os.listdir(src) if os.path.isdir(src) and not os.path.islink(src) else []
    if len(children) == 1 and os.path.isdir(dst) and not os.path.islink(dst) and \
            os.path.isdir(os.path.join(src, children[0])):
        _install(os.path.join(src, children[0]), os.path.join(dst, children[0]))
    else:
        replace_dir(src, dst)


def extract(fname, base_dir):
    """Extract a zip or tar archive into ``base_dir``, refusing unsafe members; return the
    ``{relative path: size}`` of the files it holds.

    The archive is extracted into a fresh temporary folder inside ``base_dir``, member by
    member: a member whose path, once the links made by earlier members are resolved,
    leaves that folder, a link pointing outside it, a hard link to anything but an earlier
    regular member, and device or FIFO members raise :class:`UnsafeArchiveError` (and
    nothing is left behind). Only then are its top-level entries renamed into
    ``base_dir``, each replacing its older copy in one exchange. Concurrent callers: see :func:`download_extract`.
    """
    os.makedirs(base_dir, exist_ok=True)
    name = os.path.basename(fname)
    clean_stale(base_dir, name)
    tmp = temp_dir(base_dir, name)
    try:
        _extract_into(fname, tmp)
        manifest = _manifest(tmp)
        for entry in sorted(os.listdir(tmp)):
            _install(os.path.join(tmp, entry), os.path.join(base_dir, entry))
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _complete(stamp, fname, base_dir):
    """Whether the stamp names this archive and every file it listed is still there, whole."""
    try:
        if os.path.getmtime(stamp) < os.path.getmtime(fname):
            return False
        with open(stamp) as f:
            state = json.load(f)
        files = state['files']
        return all(os.path.getsize(os.path.join(base_dir, p)) == size
                   for p, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def download_extract(name, folder=None, tiny=None):
    """Download and extract ``DATA_HUB[name]``; return the extracted folder.

    As in the chapter: the archive lands in the cache, is extracted next to it, and the return
    value is ``<cache>/<folder>`` if ``folder`` is given, else ``<cache>/<archive stem>``.
    With ``tiny`` (or ``D2LCV_TINY=1``) the synthetic twin's folder is returned instead.

    Several processes may call it at once: one extracts (into a temporary folder, renamed
    into place) while the others wait on a per-archive lock, then find the result complete.
    The ``.extracted`` stamp lists every file with its size and is checked on each call, so
    a deleted or truncated file makes the next call extract again.
    """
    if is_tiny(tiny):
        return synth_twin(name, folder=folder)
    fname = download(name)
    base_dir = os.path.dirname(fname)
    stem, ext = os.path.splitext(fname)
    if ext == '.gz' and stem.endswith('.tar'):
        stem = stem[:-4]
    stamp = fname + '.extracted'
    with name_lock(fname):
        if not _complete(stamp, fname, base_dir):
            if os.path.exists(stamp):
                os.remove(stamp)
            manifest = extract(fname, base_dir)
            fd, tmp = tempfile.mkstemp(dir=base_dir, prefix=f'.{os.path.basename(stamp)}.')
            with os.fdopen(fd, 'w') as f:
                json.dump({'archive': os.path.basename(fname), 'files': manifest}, f)
            os.replace(tmp, stamp)
    return os.path.join(base_dir, folder) if folder else stem


# ----------------------------------------------------------------------------------------
# Synthetic twins
# ----------------------------------------------------------------------------------------

_TWINS = {}
_discovered = False


def register_twin(name, make, default_folder):
    """Register a twin generator for a DATA_HUB entry (or another data set name).

    ``make(root, seed=0, **sizes)`` writes, under ``root``, what the real archive extracts to
    (e.g. ``root/VOCdevkit/VOC2012/...``). ``default_folder`` is what ``download_extract``
    returns when called without ``folder`` (the real archive's stem, e.g. ``'hotdog'``).
    """
    _TWINS[name] = (make, default_folder)


def _discover():
    global _discovered
    if not _discovered:
        from . import synth
        for mod in pkgutil.iter_modules(synth.__path__):
            importlib.import_module(f'{synth.__name__}.{mod.name}')
        _discovered = True


def twin_names():
    """Names of every data set that has a synthetic twin."""
    _discover()
    return sorted(_TWINS)


#: File in a twin's folder recording what made it (see :func:`synth_twin`).
TWIN_STAMP = '.twin-stamp'


def _generator_digest(make):
    """SHA-1 over the twin generators' source (all of ``d2lcv.synth`` and ``make``'s own): a
    twin cached by another version of the generators differs and is regenerated."""
    synth_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'synth')
    digest = hashlib.sha1()
    for name in sorted(os.listdir(synth_dir)):
        if name.endswith('.py'):
            with open(os.path.join(synth_dir, name), 'rb') as f:
                digest.update(f.read())
    try:  # a generator registered from outside d2lcv.synth: its own source too
        source = inspect.getsource(make)
    except (OSError, TypeError):  # defined in `python -c` or a compiled module
        source = f'{getattr(make, "__module__", "")}.{getattr(make, "__qualname__", make)}'
    digest.update(source.encode())
    return digest.hexdigest()


def _read_stamp(root):
    try:
        with open(os.path.join(root, TWIN_STAMP)) as f:
            return json.load(f)
    except (OSError, ValueError):  # no twin yet, one made before stamps existed, or garbage
        return None


def _twin_is_current(stamp, generator, seed, sizes):
    """Whether a cached twin's stamp fits the request: always the generators' version; the
    seed and the sizes only when the caller names them."""
    if not isinstance(stamp, dict) or stamp.get('generator') != generator:
        return False
    if seed is not None and stamp.get('seed') != seed:
        return False
    return not sizes or stamp.get('sizes') == repr(sorted(sizes.items()))


def synth_twin(name, folder=None, root=None, seed=None, force=False, **sizes):
    """Return the folder of the synthetic twin of ``name``, generating it on first use.

    The twin is generated into a temporary folder under ``<cache>/tiny/`` and renamed to
    ``<cache>/tiny/<name>`` when complete, so an interrupted generation leaves nothing that
    looks finished. ``root`` overrides the twin's folder (tests use it with smaller
    ``sizes``); ``force`` regenerates (readers keep the old folder until the new one is
    renamed in). Concurrent callers wait on a per-twin lock; only one generates.

    A stamp in the folder (:data:`TWIN_STAMP`) records the generators' version, the seed and
    the sizes: a twin cached by another version of ``d2lcv.synth`` is regenerated, and so is
    one made with another ``seed`` or other ``sizes`` when the caller names them (without
    them any cached twin of the current generators is used; a new one gets seed 0 and the
    generator's default sizes).
    """
    _discover()
    if name not in _TWINS:
        raise KeyError(f'no synthetic twin for {name!r}; twins exist for {sorted(_TWINS)}')
    make, default_folder = _TWINS[name]
    root = os.path.abspath(root or os.path.join(data_dir(), 'tiny', name))
    parent, base = os.path.split(root)
    generator = _generator_digest(make)
    # one generator at a time per twin; the others wait and then find it complete
    with name_lock(root):
        if force or not _twin_is_current(_read_stamp(root), generator, seed, sizes):
            if os.path.exists(root) and not force:
                print(f'regenerating the {name} twin in {root}: it was made by another '
                      'version of d2lcv.synth, or with another seed or other sizes',
                      file=sys.stderr)
            clean_stale(parent, base)
            tmp = temp_dir(parent, base)
            seed = 0 if seed is None else seed
            try:
                make(tmp, seed=seed, **sizes)
                with open(os.path.join(tmp, TWIN_STAMP), 'w') as f:
                    json.dump({'generator': generator, 'seed': seed,
                               'sizes': repr(sorted(sizes.items()))}, f)
                replace_dir(tmp, root)
            finally:
                if os.path.exists(tmp):
                    shutil.rmtree(tmp)
    return os.path.join(root, folder if folder else default_folder)
