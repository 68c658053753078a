"""Thread pinning shared by the benchmarks: call before MXNet, NumPy or Numba is imported."""
import os


def pin_threads(argv, default):
    """Set OMP_NUM_THREADS (and Numba's) from ``--threads N`` in ``argv``, else ``default``."""
    threads = str(default)
    for i, a in enumerate(argv):
        if a == '--threads' and i + 1 < len(argv):
            threads = argv[i + 1]
        elif a.startswith('--threads='):
            threads = a.split('=', 1)[1]
    os.environ['OMP_NUM_THREADS'] = threads
    os.environ['NUMBA_NUM_THREADS'] = threads
    os.environ.setdefault('OMP_WAIT_POLICY', 'passive')
    os.environ.setdefault('MPLBACKEND', 'Agg')
