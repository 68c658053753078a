"""Section runs for ``d2lcv run``: one module per section, discovered automatically.

A section module defines ``NAME`` (the command-line name, e.g. ``'augment'``), ``SECTION``
(``'13.1'``), ``TITLE``, ``OPTIONS`` and ``run(run)``, where the argument ``run`` is a
:class:`RunContext` (this run's report, devices, data size and options; ``ctx`` is kept for
MXNet's device contexts). ``run`` trains or computes on ``run.tiny`` data, adds figures and
metrics to ``run.report`` and returns nothing. ``d2lcv run all`` runs every section in
chapter order.

``OPTIONS`` declares what ``--set KEY=VALUE`` may set for that section, as
``{key: (type, help)}`` with a type from this module (:func:`pos_int`, :func:`flag`, ...) or
any callable ``str -> value`` raising ``ValueError``. The CLI checks every ``--set`` against
it before any section starts, so ``run.options`` only ever holds declared keys, already
converted; a section reads ``run.options.get(key, default)``. One name per meaning across
sections: ``num_epochs``, ``batch_size``, ``lr``, ``num_train``... A section that reads an
option must declare it (tests/test_cli.py checks the sources).
"""
import dataclasses
import difflib
import importlib
import pkgutil
import typing

__all__ = ['RunContext', 'sections', 'find_section', 'validate_options', 'OptionError',
           'pos_int', 'nonneg_int', 'pos_float', 'nonneg_float', 'fraction', 'flag', 'text',
           'choice', 'size2', 'options_of', 'describe_options', 'report_kaggle_baseline',
           'kaggle_options', 'report_kaggle_outputs']


class OptionError(ValueError):
    """A ``--set`` option or a section name the command line cannot use."""


def _number(value, cast):
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise ValueError(f'{value!r} is not {"an integer" if cast is int else "a number"}'
                         ) from None


def _ranged(cast, ok, needs, kind, doc):
    """An option type: the value read with ``cast`` (int or float), then ``ok(value)`` checked
    (``needs`` says what it must be in the error)."""
    def check(value):
        v = _number(value, cast)
        if not ok(v):  # NaN fails every comparison, so it is refused too
            raise ValueError(f'must be {needs}, got {v}')
        return v
    check.kind, check.__doc__ = kind, doc
    return check


pos_int = _ranged(int, lambda v: v >= 1, 'at least 1', 'integer >= 1',
                  'An integer >= 1 (epochs, batch sizes, image counts).')
nonneg_int = _ranged(int, lambda v: v >= 0, '>= 0', 'integer >= 0', 'An integer >= 0.')
pos_float = _ranged(float, lambda v: v > 0, '> 0', 'number > 0', 'A number > 0 (rates).')
nonneg_float = _ranged(float, lambda v: v >= 0, '>= 0', 'number >= 0',
                       'A number >= 0 (weight decay).')
fraction = _ranged(float, lambda v: 0 < v < 1, 'strictly between 0 and 1', 'number in (0, 1)',
                   'A number strictly between 0 and 1 (shares).')


def flag(value):
    """``1/0``, ``true/false``, ``yes/no`` -> bool."""
    v = str(value).strip().lower()
    if v in ('1', 'true', 'yes', 'on'):
        return True
    if v in ('0', 'false', 'no', 'off'):
        return False
    raise ValueError(f'expected 0 or 1 (or true/false), got {value!r}')


flag.kind = '0 or 1'


def text(value):
    v = str(value)
    if not v:
        raise ValueError('must not be empty')
    return v


text.kind = 'text'


def choice(*values):
    """A type accepting exactly one of ``values`` (strings)."""
    def cast(value):
        if value not in values:
            raise ValueError(f'must be one of {", ".join(values)}; got {value!r}')
        return value
    cast.kind, cast.choices = ' | '.join(values), values
    return cast


def size2(value):
    """``'96,128'`` or ``'96x128'`` -> ``(96, 128)``, two integers >= 1."""
    if isinstance(value, (tuple, list)):
        parts = list(value)
    else:
        parts = str(value).replace('x', ',').split(',')
    if len(parts) != 2:
        raise ValueError(f'expected two integers like 96,128; got {value!r}')
    return tuple(pos_int(p) for p in parts)


size2.kind = 'H,W'


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


def kaggle_options(defaults, held_out, **own):
    """``OPTIONS`` of a Kaggle section (13.13, 13.14): the options both read, one meaning each,
    with this section's defaults in words (``defaults``: ``{key: 'tiny 2, full 5'}`` for
    num_epochs, batch_size, lr, wd, lr_period, refit; ``held_out``: what valid/ keeps one
    of), then the section's ``own`` ``{key: (type, help)}``."""
    d = defaults
    return dict({
        'num_epochs': (pos_int, f'epochs ({d["num_epochs"]})'),
        'batch_size': (pos_int, f'batch size ({d["batch_size"]})'),
        'lr': (pos_float, f'SGD learning rate ({d["lr"]})'),
        'wd': (nonneg_float, f'weight decay ({d["wd"]})'),
        'lr_period': (pos_int, f'lr x lr_decay every this many epochs ({d["lr_period"]})'),
        'lr_decay': (pos_float, 'lr factor per period (0.1)'),
        'valid_ratio': (fraction, f'share of each {held_out} held out for validation (0.1)'),
        'refit': (flag, f'refit on train_valid for the submission ({d["refit"]})'),
        'data_dir': (text, 'the full competition folder (real data)'),
    }, **own)


def report_kaggle_outputs(rep, out, figures, submission, metrics):
    """Attach a Kaggle section's figures (``[(png, caption)]``, those written) and its
    ``submission`` ``(csv, caption)``; record the validation split's size and the ``metrics``
    of ``out['valid']``."""
    import os
    for png, caption in figures:
        if os.path.exists(rep.path(png)):
            rep.attach(png, caption)
    rep.attach(*submission)
    rep.metric('n_valid_per_label', out['n_valid_per_label'])
    for key in metrics:
        rep.metric(key, out['valid'][key])


def report_kaggle_baseline(rep, data_dir, valid_acc):
    """Report the twin's trivial baseline next to the model's ``valid_acc`` (issue 12):
    colour-histogram nearest neighbour fitted on the organised ``train/`` split of
    ``data_dir``, scored on the held-out ``valid/`` images the model is scored on."""
    import os
    from ..synth.baselines import image_folder_baseline
    split = os.path.join(data_dir, 'train_valid_test')
    base = image_folder_baseline(os.path.join(split, 'train'), os.path.join(split, 'valid'))
    rep.metric('baseline_valid_acc', round(base, 4))
    rep.note(f'Trivial baseline (colour-histogram nearest neighbour, fitted on train/, scored '
             f'on valid/): valid accuracy {base:.3f} against the model\'s {valid_acc:.3f}.')
    return base


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


def _suggest(word, candidates):
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if not close:  # prefixes ('kaggle' -> kaggle-cifar10, kaggle-dog)
        close = [c for c in candidates if c.startswith(word) or word.startswith(c)][:3]
    return f'; did you mean {" or ".join(close)}?' if close else ''


def find_section(word, available):
    """The section name for ``word``: a name (``anchors``) or a number (``13.4``).

    Raises :class:`OptionError` with the closest names when nothing matches.
    """
    if word in available:
        return word
    by_number = {m.SECTION: name for name, m in available.items()}
    if word in by_number:
        return by_number[word]
    if word.replace('_', '-') in available:
        return word.replace('_', '-')
    raise OptionError(f'unknown section {word!r}' + _suggest(word, list(available)
                                                              + list(by_number))
                      + f' (choose from: all, {", ".join(available)}, or a number such as '
                      '13.4; `d2lcv run --list` lists them)')


def options_of(mod):
    """``{key: (type, help)}`` a section accepts (none if it declares none)."""
    return dict(getattr(mod, 'OPTIONS', {}) or {})


def describe_options(mod):
    """Lines ``  key=TYPE  help`` for ``d2lcv run SECTION --help``."""
    opts = options_of(mod)
    if not opts:
        return ['  (no options)']
    width = max(len(k) for k in opts) + 1
    lines = []
    for key, (cast, help_text) in opts.items():
        kind = getattr(cast, 'kind', getattr(cast, '__name__', 'value'))
        lines.append(f'  {key:<{width}} {kind:<16} {help_text}')
    return lines


def validate_options(pairs, mods):
    """Check ``--set`` pairs against the sections ``mods``; return ``({name: options}, notes)``.

    ``pairs``: ``['num_epochs=3', ...]``. Several sections in one run share the ``--set``
    list: a key none of them declares is an error (a typo, or the wrong section), a key some
    of them declare goes to those only, and ``notes`` says which sections do not take it.
    Values are converted by each section's declared type. Raises :class:`OptionError` naming
    the key, the section(s) and their valid keys.
    """
    raw = {}
    for pair in pairs or []:
        key, sep, value = pair.partition('=')
        key = key.strip()
        if not sep or not key:
            raise OptionError(f'--set expects KEY=VALUE, got {pair!r}')
        raw[key] = value
    mods = list(mods)
    declared = {m.NAME: options_of(m) for m in mods}
    for key in raw:
        if not any(key in d for d in declared.values()):
            known = sorted({k for d in declared.values() for k in d})
            where = (f'section {mods[0].SECTION} ({mods[0].NAME})' if len(mods) == 1 else
                     f'none of the sections {", ".join(m.NAME for m in mods)}')
            raise OptionError(
                f'{where} has no option {key!r}' + (_suggest(key, known) or '.')
                + (f' Valid options: {", ".join(known)}.' if known else
                   ' It takes no --set options.')
                + (f' See `d2lcv run {mods[0].NAME} --help`.' if len(mods) == 1 else
                   ' See `d2lcv run SECTION --help`.'))
    out, notes = {}, []
    for mod in mods:
        opts = {}
        for key, value in raw.items():
            if key not in declared[mod.NAME]:
                continue
            cast = declared[mod.NAME][key][0]
            try:
                opts[key] = cast(value)
            except (TypeError, ValueError) as e:
                kind = getattr(cast, 'kind', getattr(cast, '__name__', 'value'))
                raise OptionError(f'--set {key}={value}: {e} (section {mod.SECTION} '
                                  f'{mod.NAME} expects {kind})') from None
        out[mod.NAME] = opts
    for key in raw:
        skip = [m.NAME for m in mods if key not in declared[m.NAME]]
        if skip:
            notes.append(f'--set {key}: not an option of {", ".join(skip)} (they ignore it)')
    return out, notes
