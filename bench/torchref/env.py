"""The machine facts a measurement is recorded with, the thread setting every script uses, and the
timing server the side-by-side benchmarks talk to."""
import json
import os
import platform
import sys
import time

import torch


def blas_libraries():
    """Shared libraries of BLAS families mapped into this process (torch links libblas.so.3 via alternatives)."""
    names = set()
    with open('/proc/self/maps') as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ''
            base = os.path.basename(path)
            if any(k in base for k in ('blas', 'mkl', 'lapack', 'blis')):
                names.add(os.path.realpath(path))
    return sorted(names)


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    """The SIMD flags that matter for these kernels."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    have = set(line.split(':', 1)[1].split())
                    return [f for f in ('sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni') if f in have]
    except OSError:
        pass
    return []


def setup(threads=2):
    """torch.set_num_threads(threads) and a check that the BLAS torch reaches is OpenBLAS, not the reference BLAS."""
    torch.set_num_threads(threads)
    torch.zeros(8, 8) @ torch.zeros(8, 8)  # make sure the BLAS is loaded before looking
    libs = blas_libraries()
    if not any('openblas' in p for p in libs):
        print(f'warning: torch is not using OpenBLAS ({libs or "no BLAS library mapped"}); '
              'install libopenblas0-pthread (update-alternatives libblas.so.3)', flush=True)
    return {'torch': torch.__version__, 'threads': threads, 'blas': libs, 'cpu': cpu_model(), 'cpu_flags': cpu_flags()}


def add_run_args(ap, default_backbone):
    """The options every training reference shares."""
    ap.add_argument('--variant', default='XS')
    ap.add_argument('--backbone', default=default_backbone, help="classification checkpoint (official keys) or 'none'")
    ap.add_argument('--limit', type=int, default=None, help='first N training images')
    ap.add_argument('--val-limit', type=int, default=None, help='first N val images')
    ap.add_argument('--steps', type=int, default=None, help='time this many iterations and stop (throughput only)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', default=None, help='summary (rewritten after every epoch)')
    ap.add_argument('--weights', default=None, help='weights of the whole model (.safetensors or .pth) for --export-onnx / --save-weights')
    ap.add_argument('--save-weights', default=None, help='.safetensors of the model (and a .pth checkpoint beside it)')
    ap.add_argument('--export-onnx', default=None, help='write the model of --weights as ONNX here')


def start(args, name, export_onnx):
    """Threads, BLAS check and seed; runs export_onnx(args) and returns None when --export-onnx is given,
    else the machine facts."""
    machine = setup(args.threads)
    torch.manual_seed(args.seed)
    if args.export_onnx:
        if not args.weights:
            raise SystemExit(f'{name}: --export-onnx needs --weights')
        export_onnx(args)
        return None
    return machine


def time_steps(step, n, warmup=2):
    """Seconds of each of n calls step(i) after `warmup` untimed ones."""
    import time
    times = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        step(i)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def serve_steps(make_stream, step, info):
    """Interleaved timing (bench/train-side-by-side.ts): the caller alternates windows of its own
    iterations with windows of these. After a "ready" line with `info`, each line K on stdin runs K
    iterations, each the next batch of make_stream() (a new stream when one ends) and step(batch),
    and answers one JSON line of per-iteration seconds (data + step) and data seconds; an empty line
    or EOF ends."""
    state = {'stream': make_stream()}

    def next_batch():
        try:
            return next(state['stream'])
        except StopIteration:
            state['stream'] = make_stream()
            return next(state['stream'])

    print(json.dumps({'ready': True, **info}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        seconds, data_seconds = [], []
        for _ in range(int(line)):
            t0 = time.perf_counter()
            batch = next_batch()
            t1 = time.perf_counter()
            step(batch)
            seconds.append(time.perf_counter() - t0)
            data_seconds.append(t1 - t0)
        print(json.dumps({'seconds': seconds, 'data_seconds': data_seconds}), flush=True)
