"""Private array helpers shared by the box modules (bbox, anchors, rcnn, ssd, detection
metrics): the functions accept MXNet arrays (``mx.np`` or ``mx.nd``) and NumPy arrays alike
and give back the kind they received.

The one home of these conversions, so that no section module reaches into another's private
names (tests/test_imports.py checks it).
"""
import numpy as onp

__all__ = ['host', 'like', 'as_mx', 'on_gpu', 'is_symbol']


def host(x, dtype='float32'):
    """``x`` (MXNet or NumPy array, or nested lists) as a NumPy array of ``dtype`` (``None``:
    keep the array's own dtype). Reading an MXNet array waits for it: a synchronisation."""
    if hasattr(x, 'asnumpy'):
        x = x.asnumpy()
    return onp.asarray(x, dtype=dtype)


def like(arr, ref, share=False):
    """``arr`` (NumPy) as the array kind of ``ref``, on ``ref``'s device (NumPy ``ref``:
    ``arr`` itself). ``share``: on ``cpu(0)``, hand ``arr``'s memory over to MXNet instead of
    copying it (``arr`` becomes read-only: only for a fresh array nobody else writes)."""
    from mxnet import cpu, nd, np
    if not isinstance(ref, (np.ndarray, nd.NDArray)):
        return arr
    if share and ref.ctx == cpu(0) and arr.flags.c_contiguous:
        out = nd.from_numpy(arr, zero_copy=True)
        return out.as_np_ndarray() if isinstance(ref, np.ndarray) else out
    if isinstance(ref, np.ndarray):
        return np.array(arr, dtype=arr.dtype, ctx=ref.ctx)
    return nd.array(arr, dtype=arr.dtype, ctx=ref.ctx)


def as_mx(x):
    """``x`` as an ``mxnet.numpy`` array (what the ``npx`` operators take); float32 when it
    has to be made from NumPy or lists."""
    from mxnet import nd, np
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, nd.NDArray):
        return x.as_np_ndarray()
    return np.array(onp.asarray(x, dtype='float32'))


def on_gpu(x):
    """Whether ``x`` is an MXNet array on a GPU."""
    ctx = getattr(x, 'ctx', None)
    return ctx is not None and ctx.device_type == 'gpu'


def is_symbol(x):
    """Whether ``x`` is a symbolic MXNet value (inside a hybridized block's graph)."""
    from mxnet import symbol
    return isinstance(x, symbol.Symbol)
