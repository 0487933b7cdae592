"""What the training-step benchmarks share (bench/train_bench.py, bench/device_check.py): a batch of real bundled
sketches and the timing of a compiled step. Import it after TensorFlow's start-up switches are set."""
import os
import statistics
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def real_batch(hps, max_seq_len):
    """Real bundled sketches of at most T points (normalised as training does) padded to [B, T+1, 5], and random
    images (an image encoder's arithmetic does not depend on the pixel values)."""
    import dataset
    sketches = []
    for c in ('bee', 'bus', 'car', 'cat', 'flower'):
        sketches += dataset.load_strokes_npz(dataset.category_npz_path(os.path.join(REPO, 'data'), c))['train']
    sketches = [np.clip(s, -1000, 1000).astype(np.float32) for s in sketches if len(s) <= max_seq_len]
    if len(sketches) < hps.batch_size:
        raise ValueError(f'only {len(sketches)} bundled sketches have at most {max_seq_len} points: raise T or lower '
                         f'the batch size ({hps.batch_size})')
    sketches = sketches[:hps.batch_size]
    factor = dataset.scale_factor(sketches)
    for s in sketches:
        s[:, :2] /= factor
    images = np.random.default_rng(0).uniform(-1, 1, (hps.batch_size, hps.png_width, hps.png_width))
    return dataset.to_stroke5(sketches, max_seq_len), images.astype(np.float32)


def time_steps(step_fn, args, warmup, steps):
    """Run `warmup` then `steps` training steps of step_fn(*args, step, seed): (seconds of the warm-up, median
    seconds of a timed step). Each step waits for its loss, so a step's time includes all its work."""
    import tensorflow as tf

    def run(s):
        float(step_fn(*args, tf.constant(s, tf.int64), tf.constant([0, s], tf.int64))['loss'])

    start = time.perf_counter()
    for s in range(warmup):
        run(s)
    first = time.perf_counter() - start
    times = []
    for s in range(warmup, warmup + steps):
        start = time.perf_counter()
        run(s)
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)
