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
import os
import pkgutil
import shutil
import tarfile
import tempfile
import zipfile

__all__ = ['DATA_HUB', 'DATA_URL', 'download', 'download_extract', 'mkdir_if_not_exist',
           'data_dir', 'is_tiny', 'register_twin', 'synth_twin', 'twin_names',
           'DownloadError', 'UnsafeArchiveError']

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


def mkdir_if_not_exist(path):
    """Make a directory (and its parents) if it does not exist (the chapter's helper)."""
    os.makedirs(path, exist_ok=True)


def sha1_file(path, chunk=1 << 20):
    """The sha1 hex digest of a file, read in chunks."""
    h = hashlib.sha1()
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
                bar = _progress(total, f'Downloading {os.path.basename(fname)}', progress)
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


def _progress(total, desc, enabled):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit='B', unit_scale=True, disable=not enabled or None)


def _check_member(base, member_name):
    """Raise unless ``member_name`` lands inside ``base`` when extracted."""
    if os.path.isabs(member_name) or member_name.startswith(('/', '\\')):
        raise UnsafeArchiveError(f'archive member {member_name!r} has an absolute path')
    target = os.path.realpath(os.path.join(base, member_name))
    root = os.path.realpath(base)
    if os.path.commonpath([root, target]) != root:
        raise UnsafeArchiveError(f'archive member {member_name!r} would be written outside '
                                 f'{base}')


def extract(fname, base_dir):
    """Extract a zip or tar archive into ``base_dir``, refusing unsafe members.

    Every member is checked before anything is written: absolute paths, ``..`` escapes,
    and (tar) links pointing outside ``base_dir`` or device files raise
    :class:`UnsafeArchiveError`.
    """
    os.makedirs(base_dir, exist_ok=True)
    if zipfile.is_zipfile(fname):
        with zipfile.ZipFile(fname) as z:
            for info in z.infolist():
                _check_member(base_dir, info.filename)
            z.extractall(base_dir)
    elif tarfile.is_tarfile(fname):
        with tarfile.open(fname) as t:
            members = t.getmembers()
            for m in members:
                _check_member(base_dir, m.name)
                if m.issym() or m.islnk():
                    link = m.linkname if m.islnk() else os.path.join(
                        os.path.dirname(m.name), m.linkname)
                    _check_member(base_dir, link)
                elif not (m.isfile() or m.isdir()):
                    raise UnsafeArchiveError(f'archive member {m.name!r} is a special file')
            t.extractall(base_dir, members=members)
    else:
        raise ValueError(f'{fname}: only zip and tar archives can be extracted')


def download_extract(name, folder=None, tiny=None):
    """Download and extract ``DATA_HUB[name]``; return the extracted folder.

    As in the chapter: the archive lands in the cache, is extracted next to it, and the return
    value is ``<cache>/<folder>`` if ``folder`` is given, else ``<cache>/<archive stem>``.
    With ``tiny`` (or ``D2LCV_TINY=1``) the synthetic twin's folder is returned instead.
    """
    if is_tiny(tiny):
        return synth_twin(name, folder=folder)
    fname = download(name)
    base_dir = os.path.dirname(fname)
    stem, ext = os.path.splitext(fname)
    if ext == '.gz' and stem.endswith('.tar'):
        stem = stem[:-4]
    stamp = fname + '.extracted'
    if not (os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(fname)):
        extract(fname, base_dir)
        with open(stamp, 'w'):
            pass
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


def synth_twin(name, folder=None, root=None, seed=0, force=False, **sizes):
    """Return the folder of the synthetic twin of ``name``, generating it on first use.

    The twin is generated into a temporary folder under ``<cache>/tiny/`` and renamed to
    ``<cache>/tiny/<name>`` when complete, so an interrupted generation leaves nothing that
    looks finished. ``root`` overrides the twin's folder (tests use it with smaller
    ``sizes``); ``force`` regenerates.
    """
    _discover()
    if name not in _TWINS:
        raise KeyError(f'no synthetic twin for {name!r}; twins exist for {sorted(_TWINS)}')
    make, default_folder = _TWINS[name]
    root = root or os.path.join(data_dir(), 'tiny', name)
    if force and os.path.exists(root):
        shutil.rmtree(root)
    if not os.path.exists(root):
        parent = os.path.dirname(os.path.abspath(root))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix=f'.{os.path.basename(root)}.tmp-')
        try:
            make(tmp, seed=seed, **sizes)
            try:
                os.rename(tmp, root)
            except OSError:
                if not os.path.exists(root):  # another process finished first otherwise
                    raise
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp)
    return os.path.join(root, folder if folder else default_folder)
