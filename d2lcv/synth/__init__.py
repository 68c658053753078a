"""Synthetic twins of the chapter's data sets, written in the real on-disk formats.

One module per data set; each calls :func:`d2lcv.hub.register_twin` at import, and
:mod:`d2lcv.hub` imports every module here when a twin is first asked for. Generators are
deterministic from their ``seed`` and write into the folder they are given (the hub renames it
into place when complete).
"""
__all__ = []  # the twins are reached through d2lcv.hub.synth_twin and the modules here
