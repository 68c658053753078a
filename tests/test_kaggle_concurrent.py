"""Two processes reorganising one Kaggle folder at once (issue 13, item 3): the chapter's code
run by every worker of a ``d2lcv launch`` job does exactly this."""
import os
import subprocess
import sys
import textwrap
import time

from test_kaggle import make_competition, reference_split, split_counts

_WORKER = textwrap.dedent('''
    import sys, time
    from d2lcv import kaggle
    data_dir, start = sys.argv[1], float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    print(kaggle.reorg_cifar10_data(data_dir, 0.1))
''')

LABELS = {f'{i}': ('cat', 'dog', 'frog')[i % 3] for i in range(1, 601)}


def test_two_processes_reorganise_the_same_folder(tmp_path):
    d = make_competition(tmp_path / 'comp', LABELS, test_names=[str(i) for i in range(1, 41)])
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(sys.path))
    start = time.time() + 4
    procs = [subprocess.Popen([sys.executable, '-c', _WORKER, d, str(start + 0.3 * k)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for k in range(2)]
    outs = [p.communicate(timeout=180)[0].decode() for p in procs]
    n_valid, expected = reference_split(LABELS, 0.1)
    for p, out in zip(procs, outs):
        assert p.returncode == 0 and out.split()[-1] == str(n_valid), out
    expected['test'] = {'unknown': 40}
    assert split_counts(d) == expected
    base = os.path.join(d, 'train_valid_test')
    # every file is whole (a copy interrupted by the other process's clean-up would not be)
    for split in ('train', 'valid', 'train_valid'):
        for c in os.listdir(os.path.join(base, split)):
            for f in os.listdir(os.path.join(base, split, c)):
                with open(os.path.join(base, split, c, f), 'rb') as a, \
                        open(os.path.join(d, 'train', f), 'rb') as b:
                    assert a.read() == b.read(), (split, c, f)
    assert not [f for f in os.listdir(base) if f.startswith(('.reorg.', '.reorg-'))]
