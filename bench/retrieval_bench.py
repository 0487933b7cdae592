"""Time and peak memory of Ret (docs/model.md#ret): metrics.ret_scores against the original's procedure.

The original splits the N generated codes into 10 chunks and, per chunk, broadcasts codes [N/10, 1, D] against
the real codes [1, N, D] (an N/10 x N x D array), takes the mean square over D, then finds the top 50 by 50 rounds
of argmin + masking. At the protocol size N = 20,000, D = 128 that array alone is 20.5 GB in float32, so the
baseline runs at a small N here (same run, same codes) and the table also prints its array size at every N.
Ours: chunked matrix products |a|^2 + |b|^2 - 2ab in float64 with a rank count (memory chunk x N).
Peak memory = tracemalloc's peak of Python and NumPy allocations during the call. Median of --runs after a warm-up.

    python3 bench/retrieval_bench.py                      # N = 20,000 (ours) and N = 2,000 (both)
"""
import os
import statistics
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import metrics  # noqa: E402

flags.DEFINE_integer('n', 20000, 'Number of code pairs N for ours.')
flags.DEFINE_integer('baseline_n', 2000, 'Number of code pairs for the comparison with the original procedure.')
flags.DEFINE_integer('dims', 128, 'Code size D.')
flags.DEFINE_integer('chunk', 256, 'metrics.ret_scores chunk.')
flags.DEFINE_integer('runs', 3, 'Timed runs; the median is reported.')
FLAGS = flags.FLAGS

KS = (1, 10, 50)
ORIGINAL_CHUNKS = 10


def original_ret(real, gen, ks=KS):
    """The original's procedure: 10 chunks of floor(N/10) generated codes (the remainder skipped, still / N), an
    [N/10, N, D] broadcast per chunk, top-k by repeated argmin with masking."""
    n = len(real)
    size = n // ORIGINAL_CHUNKS
    hits = {k: 0 for k in ks}
    for c in range(ORIGINAL_CHUNKS):
        rows = np.arange(c * size, (c + 1) * size)
        dist = np.mean(np.square(gen[rows][:, None, :] - real[None, :, :]), axis=2)
        picked = np.empty((len(rows), max(ks)), np.int64)
        for j in range(max(ks)):
            picked[:, j] = np.argmin(dist, axis=1)
            dist[np.arange(len(rows)), picked[:, j]] = np.inf
        for k in ks:
            hits[k] += int((picked[:, :k] == rows[:, None]).any(axis=1).sum())
    return {k: hits[k] / n for k in ks}


def measure(function, runs):
    """(median seconds, peak traced bytes, result) of function() over runs after a warm-up call."""
    result = function()
    times, peak = [], 0
    for _ in range(runs):
        tracemalloc.start()
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return statistics.median(times), peak, result


def codes(n, dims, seed=0):
    """Real codes and noisy 'generated' re-encodings of them, float32 like the saved codes."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, dims)).astype(np.float32)
    return real, (real + 4.0 * rng.standard_normal((n, dims))).astype(np.float32)


def main(argv):
    del argv
    cfg = FLAGS
    rows = []
    for n in sorted({cfg.baseline_n, cfg.n}):
        real, gen = codes(n, cfg.dims)
        broadcast_gb = (n // ORIGINAL_CHUNKS) * n * cfg.dims * 4 / 1e9
        ours = measure(lambda: metrics.ret_scores(real, gen, KS, cfg.chunk), cfg.runs)
        rows.append((n, 'ours (chunked matmul)', ours, broadcast_gb))
        if n == cfg.baseline_n:
            rows.append((n, 'original (broadcast)', measure(lambda: original_ret(real, gen), cfg.runs), broadcast_gb))
    print(f'D = {cfg.dims}, chunk = {cfg.chunk}, median of {cfg.runs} runs')
    print(f"{'N':>6s} {'method':<22s} {'seconds':>8s} {'peak MB':>8s} {'orig. array GB':>15s}  Ret@1/10/50")
    for n, method, (seconds, peak, scores), broadcast_gb in rows:
        ret = ' / '.join(f'{scores[k]:.4f}' for k in KS)
        print(f'{n:>6d} {method:<22s} {seconds:>8.2f} {peak / 1e6:>8.1f} {broadcast_gb:>15.2f}  {ret}')
    base = {n: r for n, method, r, _ in rows if method.startswith('original')}
    for n, method, (seconds, peak, _), _ in rows:
        if method.startswith('ours') and n in base:
            print(f'N = {n}: ours is {base[n][0] / seconds:.1f}x faster with {base[n][1] / peak:.0f}x less peak memory')


if __name__ == '__main__':
    app.run(main)
