"""Parameters under a dist kvstore: per-parameter multipliers that survive the trip to the
servers, and rank 0's values for parameters no Trainer holds."""
import mxnet as mx

from .kvstore import is_distributed, trainer_kvstore

__all__ = ['keep_param_mults', 'broadcast_params', 'broadcast_block', 'BROADCAST_KEY_BASE']


def keep_param_mults(trainer):
    """Make ``trainer``'s per-parameter ``lr_mult`` / ``wd_mult`` survive a dist kvstore.

    With a dist kvstore the optimizer runs on the servers, which get a pickled copy of it
    without its ``param_dict`` (MXNet drops it): a parameter's ``lr_mult`` (13.2's 10x output
    layer) would silently be 1 there. This copies the multipliers that are not 1 into the
    optimizer's own ``lr_mult`` / ``wd_mult`` tables, by parameter index, which do travel.
    Call it before the first ``trainer.step`` (``train_ch13`` does). Returns ``trainer``.
    """
    opt = trainer._optimizer
    lr = {i: p.lr_mult for i, p in enumerate(trainer._params) if p.lr_mult != 1}
    wd = {i: p.wd_mult for i, p in enumerate(trainer._params) if p.wd_mult != 1}
    opt.lr_mult.update(lr)
    opt.wd_mult.update(wd)
    return trainer


#: First kvstore key :func:`broadcast_params` uses (a Trainer's keys are 0, 1, 2...).
BROADCAST_KEY_BASE = 100000


def broadcast_params(kvstore, params, key_base=BROADCAST_KEY_BASE):
    """Give every worker rank 0's values of ``params``, parameters no Trainer holds.

    A Trainer on a dist kvstore starts every worker from rank 0's values of *its*
    parameters; a frozen part of the network outside the Trainer (13.14's feature
    extractor) would otherwise keep each worker's own random initialisation, and the
    workers would train one shared head on different features. ``params``: a
    ``ParameterDict`` or a list of initialised parameters, in the same order on every
    worker. Uses keys ``key_base, key_base + 1, ...`` (away from the Trainer's). Without a
    dist kvstore: nothing to do. Returns the number of parameters broadcast.
    """
    if not is_distributed(kvstore) or isinstance(kvstore, str):
        return 0
    params = list(params.values()) if hasattr(params, 'values') else list(params)
    for i, p in enumerate(params):
        arrays = p.list_data()
        # a plain copy: a weight a convolution has used may be held in oneDNN's layout,
        # which MXNet 1.9's dist init does not send (the server then aborts, "init KEY
        # first", at the other workers' pull)
        value = mx.nd.array(arrays[0].asnumpy(), ctx=arrays[0].context,
                            dtype=arrays[0].dtype)
        # dist init: rank 0 pushes its value and all wait at a barrier; pull reads it
        kvstore.init(key_base + i, value)
        kvstore.pull(key_base + i, out=value)
        for a in arrays:
            a[:] = value.as_in_context(a.context).as_np_ndarray() \
                if hasattr(a, 'as_nd_ndarray') else value.as_in_context(a.context)
    return len(params)


def broadcast_block(trainer, block, X):
    """:func:`broadcast_params` of ``block``'s parameters over ``trainer``'s kvstore, for a
    block outside the Trainer (13.14's frozen features); ``block(X)`` runs first under a
    dist kvstore, completing any deferred initialisation. Call it before the first
    ``trainer.step``. Without a dist kvstore: nothing to do. Returns the number of
    parameters broadcast."""
    kv = trainer_kvstore(trainer)
    if not is_distributed(kv) or isinstance(kv, str):
        return 0
    block(X)
    return broadcast_params(kv, block.collect_params())
