"""The first cell of every notebook: tiny mode when offline, said out loud.

``d2l.notebook.setup()`` decides whether the notebook runs on the synthetic twins with small budgets
(*tiny mode*) or on the real data sets with the book's budgets, prints one line saying which
and how to switch, and returns the choice. ``D2LCV_TINY`` (set before Jupyter starts, or
``make notebooks TINY=0``) wins; otherwise tiny mode is on exactly when the book's data server
cannot be reached within two seconds. Data land in one folder wherever the kernel starts
(:func:`d2lcv.hub.data_dir`: the checkout's ``data/``, or ``$D2LCV_DATA_DIR``).
"""
import os
import socket
from urllib.parse import urlsplit

from .hub import DATA_URL, data_dir, is_tiny

__all__ = ['setup', 'online']


def online(url=DATA_URL, timeout=2.0):
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == 'https' else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:  # no DNS, no route, refused, timed out
        return False


def setup(tiny=None, verbose=True):
    """Choose tiny mode for this kernel (``D2LCV_TINY``), say so, and return it.

    ``tiny=None``: ``$D2LCV_TINY`` if set, else tiny exactly when offline. ``True``/``False``
    force it (``d2l.notebook.setup(tiny=False)`` for the real data).
    """
    env = os.environ.get('D2LCV_TINY', '').strip()
    if tiny is not None:
        why = f'asked for with setup(tiny={tiny})'
    elif env:
        tiny, why = is_tiny(), f'D2LCV_TINY={env}'
    else:
        tiny = not online()
        why = 'the data server is not reachable' if tiny else 'the data server is reachable'
    os.environ['D2LCV_TINY'] = '1' if tiny else '0'
    if verbose:
        if tiny:
            print(f'd2lcv: tiny mode ON ({why}): synthetic twins of the data sets and small '
                  'training budgets, a minute or so per notebook on a CPU. For the real data '
                  'and the book\'s budgets: d2l.notebook.setup(tiny=False) (needs the network or '
                  f'downloaded files). Data folder: {os.path.abspath(data_dir())}')
        else:
            print(f'd2lcv: tiny mode OFF ({why}): real data sets (downloaded on first use) '
                  'and the book\'s budgets, which want a GPU. For the offline twins: '
                  f'd2l.notebook.setup(tiny=True). Data folder: {os.path.abspath(data_dir())}')
    return tiny
