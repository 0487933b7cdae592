"""Training sketches per second with and without length-bucketed batches (hparam bucket_width).

Each run is a fresh process that loads the categories with train.py's loader, builds the model, compiles the
training step (with buckets: once per batch length, all compiled before timing), then times --steps training
steps on the batches of one epoch, in epoch order. Prints sketches/s, the mean padded length of the timed batches,
and the ratio of every bucket width to the unbucketed run. Runs alternate between the widths (--repeats rounds), so
a drift of the machine's speed hits every width alike.

  python3 seq2png.py --input_dir=data --output_dir=data --categories="alarm clock,face,radio"
  python3 bench/bucket_bench.py --widths=0,16 --steps=30
"""
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import utils  # noqa: E402

utils.tensorflow_startup()   # before TensorFlow is imported

from absl import app, flags  # noqa: E402

flags.DEFINE_string('data_dir', os.path.join(REPO, 'data'), 'Directory with <category>.npz and <category>_png.npz.')
flags.DEFINE_string('hparams', 'categories=[alarm clock,face,radio], dec_model=lstm, dec_rnn_size=256, z_size=64, '
                    'batch_size=64, num_mixture=3, num_sub=2, fix_png_rescale=true',
                    'The model and data to time (bucket_width is set by --widths).')
flags.DEFINE_list('widths', ['0', '16'], 'bucket_width values to compare (0: unbucketed, the original).')
flags.DEFINE_integer('steps', 30, 'Timed training steps per run.', lower_bound=1)
flags.DEFINE_integer('repeats', 2, 'Rounds over the widths.', lower_bound=1)
flags.DEFINE_string('worker', None, 'Internal: time one bucket width in this process and print JSON.')
FLAGS = flags.FLAGS


def time_width(data_dir, hparams, width, steps):
    """(sketches/s, mean padded T) of `steps` training steps of train.py's compiled step at one bucket width."""
    import family
    import hyperparams
    import utils
    utils.configure_runtime()   # train.py's allocator, before TensorFlow is imported
    import numpy as np

    import sketch_model
    import training
    hps = hyperparams.get_default_hparams().parse(hparams).replace(bucket_width=width)
    train_set, _, _, hps = family.load_splits(data_dir, hps)
    net = family.build_model(hps)
    train_step, _ = sketch_model.compile_steps(net, hps.batch_size, hps.max_seq_len, hps.png_width, bucketed=width > 0)
    batches = list(train_set.epoch(np.random.default_rng(0)))[:steps]

    def run(batch, step):
        return float(train_step(*training.step_inputs(batch, step, hps.png_width, [0, step]))['loss'])

    for length in sorted({b.strokes.shape[1] for b in batches}):   # compile every batch length first
        run(next(b for b in batches if b.strokes.shape[1] == length), 0)
    start = time.perf_counter()
    for step, batch in enumerate(batches):
        run(batch, step)
    seconds = time.perf_counter() - start
    return len(batches) * hps.batch_size / seconds, float(np.mean([b.strokes.shape[1] - 1 for b in batches]))


def main(argv):
    del argv
    if FLAGS.worker is not None:
        rate, padded = time_width(FLAGS.data_dir, FLAGS.hparams, int(FLAGS.worker), FLAGS.steps)
        print(json.dumps(dict(rate=rate, padded=padded)))
        return
    widths = [int(w) for w in FLAGS.widths]
    rates = {w: [] for w in widths}
    padded = {}
    for _ in range(FLAGS.repeats):
        for width in widths:
            out = subprocess.run([sys.executable, __file__, f'--worker={width}', f'--steps={FLAGS.steps}',
                                  f'--data_dir={FLAGS.data_dir}', f'--hparams={FLAGS.hparams}'],
                                 capture_output=True, text=True, check=False)
            if out.returncode:
                sys.exit(f'bucket_width={width} failed: {out.stderr.strip().splitlines()[-1]}')
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rates[width].append(result['rate'])
            padded[width] = result['padded']
            print(f"bucket_width={width}: {result['rate']:.1f} sketches/s, mean padded T {result['padded']:.1f}",
                  flush=True)
    base = statistics.median(rates[widths[0]])
    for width in widths:
        median = statistics.median(rates[width])
        print(f'bucket_width={width}: median {median:.1f} sketches/s, mean padded T {padded[width]:.1f}, '
              f'{median / base:.2f}x bucket_width={widths[0]}')


if __name__ == '__main__':
    app.run(main)
