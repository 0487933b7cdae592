"""How much faster is sample.py's batched decoding than the original's one sketch at a time?

Baseline (the original's way, docs/model.md#decoding-and-temperature): batch 1, a python loop over the T steps, each
step one call of a compiled step function (cell + MDN head + sampling, like one session.run per step), no early stop.
Ours: sample.py's compile_decoder (decoder.generate in one tf.function: all steps in one graph loop) over chunks of
--batch_size codes, with and without the early stop at the end-of-sketch token (with random weights the early stop
depends on what the untrained pen head emits; pass --model_dir for a trained model). Printed: sketches/s, median of
--runs after a warm-up call, and the speed-up over the baseline measured in the same run.

    python3 bench/sample_bench.py                                  # paper decoder: hyper, 2048 units, T = 200
    python3 bench/sample_bench.py --dec_model=lstm --dec_rnn_size=512
    python3 bench/sample_bench.py --model_dir=model                # a trained model; T from its config
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import utils  # noqa: E402

utils.tensorflow_startup()   # before TensorFlow is imported

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import family  # noqa: E402
import hyperparams  # noqa: E402
import model  # noqa: E402
import sampling  # noqa: E402

flags.DEFINE_string('model_dir', None, 'A trained model (default: a randomly initialised one from the flags below).')
flags.DEFINE_string('dec_model', 'hyper', 'Decoder cell of the random model: lstm | layer_norm | hyper.')
flags.DEFINE_integer('dec_rnn_size', 2048, 'Decoder size of the random model.')
flags.DEFINE_integer('z_size', 128, 'Latent size of the random model.')
flags.DEFINE_integer('max_seq_len', 200, 'Decoding steps T of the random model.')
flags.DEFINE_integer('num_sketches', 256, 'Sketches decoded by the batched runs.')
flags.DEFINE_list('batch_sizes', ['64', '256'], 'Chunk sizes of the batched runs.')
flags.DEFINE_integer('baseline_sketches', 2, 'Sketches decoded one at a time by the baseline per run.')
flags.DEFINE_integer('runs', 3, 'Timed runs; the median is reported.')
FLAGS = flags.FLAGS

TEMPERATURE = 0.24


def build(cfg):
    """(net, T): the trained model of --model_dir, or a random one (dropout off: sampling never uses it)."""
    if cfg.model_dir:
        net, hps = family.restore_model(cfg.model_dir)
        return net, hps.max_seq_len
    hps = hyperparams.get_default_hparams().replace(dec_model=cfg.dec_model, dec_rnn_size=cfg.dec_rnn_size,
                                              z_size=cfg.z_size, max_seq_len=cfg.max_seq_len)
    return family.build_model(hps), cfg.max_seq_len


def one_at_a_time(net):
    """The baseline: (z [1, D], T, seed) -> stroke-5 [T, 5] with one compiled call per step from python."""
    decoder = net.decoder

    @tf.function
    def step(row, state, z, seed):
        h, state = decoder.cell(tf.concat([row, z], axis=1), state, training=False)
        return model.sample_stroke5(decoder.out_fc(h), TEMPERATURE, seed), state

    def decode(z, num_steps, seed):
        z = tf.constant(z)
        state = decoder.initial_state(z, 1)
        row = tf.constant([[0.0, 0.0, 1.0, 0.0, 0.0]])
        rows = []
        for t in range(num_steps):
            row, state = step(row, state, z, tf.constant([seed, t], tf.int64))
            rows.append(row.numpy()[0])
        return np.stack(rows)

    return decode


def median_seconds(function, runs):
    function()  # warm-up (and tracing)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv):
    del argv
    cfg = FLAGS
    net, num_steps = build(cfg)
    hps = net.hps
    z = np.random.default_rng(0).standard_normal((cfg.num_sketches, hps.z_size)).astype(np.float32)
    print(f'decoder {hps.dec_model} {hps.dec_rnn_size} units, z {hps.z_size}, T = {num_steps} steps, '
          f'temperature {TEMPERATURE}, {os.cpu_count()} CPU cores')

    baseline = one_at_a_time(net)
    seconds = median_seconds(lambda: [baseline(z[i:i + 1], num_steps, i) for i in range(cfg.baseline_sketches)],
                             cfg.runs)
    base_rate = cfg.baseline_sketches / seconds
    rows = [('one at a time (original)', 1, 'no', base_rate)]
    for stop in (False, True):
        decode = sampling.compile_decoder(net, stop_at_eos=stop)
        for batch in map(int, cfg.batch_sizes):
            def run():
                for start in range(0, len(z), batch):
                    sampling.decode_strokes(decode, z[start:start + batch], num_steps, TEMPERATURE, start, 1.0)
            rows.append(('batched (sample.py)', batch, 'yes' if stop else 'no',
                         len(z) / median_seconds(run, cfg.runs)))
    print(f"{'method':<26s} {'batch':>6s} {'eos stop':>9s} {'sketches/s':>11s} {'speed-up':>9s}")
    for method, batch, stop, rate in rows:
        print(f'{method:<26s} {batch:>6d} {stop:>9s} {rate:>11.2f} {rate / base_rate:>8.1f}x')


if __name__ == '__main__':
    app.run(main)
