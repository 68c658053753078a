"""Section runs for ``d2lcv run``: one module per section, discovered automatically.

A section module defines ``NAME`` (the command-line name, e.g. ``'augment'``), ``SECTION``
(``'13.1'``), ``TITLE`` and ``run(ctx)``, where ``ctx`` is a :class:`RunContext`. ``run``
trains or computes on ``ctx.tiny`` data, adds figures and metrics to ``ctx.report`` and
returns nothing. ``d2lcv run all`` runs every section in chapter order.
"""
import dataclasses
import importlib
import pkgutil
import typing

__all__ = ['RunContext', 'sections']


@dataclasses.dataclass
class RunContext:
    report: typing.Any            # d2lcv.report.Report, already positioned on the section
    devices: list                 # resolved device list
    tiny: bool = True             # use the synthetic twins and small budgets
    kvstore: typing.Any = 'device'
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def out_dir(self):
        return self.report.out_dir


def _section_key(mod):
    return tuple(int(p) for p in mod.SECTION.split('.'))


def sections():
    """``{name: module}`` of every section run, in chapter order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        mod = importlib.import_module(f'{__name__}.{info.name}')
        if hasattr(mod, 'NAME') and hasattr(mod, 'run'):
            found.append(mod)
    found.sort(key=_section_key)
    return {m.NAME: m for m in found}
