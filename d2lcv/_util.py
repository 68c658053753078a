"""Private helpers shared by several modules: the one progress bar and the one "is this
block initialised" check. Not part of the public surface."""
from .plot import in_notebook

__all__ = []


def progress_bar(iterable=None, *, total=None, desc=None, enabled=True, **kwargs):
    """A tqdm bar over ``iterable`` (or counting to ``total``), shown only when ``enabled``,
    outside Jupyter (the Animator shows progress there) and when stderr is a terminal
    (``disable=None``: CI logs stay clean). ``kwargs`` go to tqdm (``unit``, ``leave``...,
    ``leave=False`` unless given)."""
    from tqdm import tqdm
    kwargs.setdefault('leave', False)
    return tqdm(iterable, total=total, desc=desc,
                disable=None if enabled and not in_notebook() else True, **kwargs)


def uninitialized(block):
    """Names of ``block``'s parameters that have neither data nor a pending (deferred)
    initialisation, in ``collect_params`` order."""
    return [name for name, p in block.collect_params().items()
            if p._data is None and not p._deferred_init]


def initialized(block):
    """True when every parameter of ``block`` has data or a deferred initialisation."""
    return not uninitialized(block)
