"""How fast is one training step, and which execution mode should be the default?

For each configuration, mode and oneDNN setting (--onednn: TF_ENABLE_ONEDNN_OPTS of the worker) a fresh process
builds the model, feeds batches of real bundled sketches padded to T steps (random images for the image encoders: the
arithmetic does not depend on the values), runs warm-up steps, then times --steps training steps. Prints the median
seconds per step, training sketches/s, the peak resident memory of the process, and the ratio against the original
TF1 code's seconds per step where the table has it: a fixed figure measured on the Intel Xeon of docs/speed.md's
earlier tables, so the ratio holds only on that CPU. Modes: eager; function (tf.function graphs: train.py's
default); autojit (tf.function with XLA auto-clustering of the element-wise ops, matmuls left to TensorFlow's
kernels: train.py --autojit); xla (the whole step compiled: train.py --jit_compile). Every mode runs with train.py's
allocator (utils.configure_runtime).

  python3 bench/train_bench.py                       # the whole table (long: the 2048-unit model is slow on a CPU)
  python3 bench/train_bench.py --configs=skrnn-lstm --modes=function,autojit
"""
import itertools
import json
import os
import resource
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import utils  # noqa: E402

utils.tensorflow_startup()   # before TensorFlow is imported

from absl import app, flags  # noqa: E402

# name -> (hparams, seconds per step of the original TF1 code on the 2-core CPU of docs/speed.md, or None)
CONFIGS = {
    'skrnn-lstm': ('model_type=sketch_rnn, dec_model=lstm, enc_model=lstm, dec_rnn_size=512, enc_rnn_size=256, '
                   'batch_size=100', 2.7),
    'skrnn-layer_norm': ('model_type=sketch_rnn, dec_model=layer_norm, enc_model=lstm, dec_rnn_size=512, '
                         'enc_rnn_size=256, batch_size=100', 3.3),
    'skrnn-hyper': ('model_type=sketch_rnn, dec_model=hyper, enc_model=lstm, dec_rnn_size=512, enc_rnn_size=256, '
                    'batch_size=100', 5.4),
    'rpcl-hyper512': ('model_type=rpcl, dec_model=hyper, dec_rnn_size=512, batch_size=128', 5.9),
    'rpcl-default': ('model_type=rpcl, dec_model=hyper, dec_rnn_size=2048, batch_size=128', None),
    'rpcl-demo': ('model_type=rpcl, dec_model=hyper, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=3', None),
    'rpcl-lstm512': ('model_type=rpcl, dec_model=lstm, dec_rnn_size=512, z_size=64, batch_size=64, num_mixture=3, '
                     'num_sub=2', None),
    'rpclh-lstm512': ('model_type=rpclh, dec_model=lstm, dec_rnn_size=512, z_size=64, batch_size=64, num_mixture=3, '
                      'num_sub=2', None),
}
# --onednn: TF_ENABLE_ONEDNN_OPTS of the worker; 'inherit' keeps this environment's (the programs' default: on)
ONEDNN = {'inherit': None, 'on': '1', 'off': '0'}
MODES = ('eager', 'function', 'autojit', 'xla')

flags.DEFINE_list('configs', list(CONFIGS), f'Configurations to time: {", ".join(CONFIGS)}.')
flags.DEFINE_list('modes', list(MODES), f'Execution modes: {", ".join(MODES)}.')
flags.DEFINE_list('onednn', ['inherit'], f'oneDNN settings to time, alternating per config: {", ".join(ONEDNN)}.')
flags.DEFINE_integer('max_seq_len', 250, 'T: every batch is padded to this many steps (sketch-rnn: 250).')
flags.DEFINE_integer('steps', 3, 'Timed steps per run (after two warm-up steps; eager runs one of each).')
flags.DEFINE_string('worker', None, 'Internal: time one config:mode in this process and print JSON.')
FLAGS = flags.FLAGS


def time_one(config, mode, max_seq_len, steps):
    """Seconds per training step of one configuration in one mode (this process)."""
    import hyperparams
    import utils
    utils.configure_runtime(autojit=mode == 'autojit')   # before TensorFlow is imported
    import benchlib
    import tensorflow as tf

    import family
    import sketch_model
    tf.random.set_seed(0)
    hps = hyperparams.get_default_hparams().parse(CONFIGS[config][0]).replace(max_seq_len=max_seq_len)
    net = family.build_model(hps)
    strokes, images = benchlib.real_batch(hps, max_seq_len)
    if mode == 'eager':
        step_fn, warmup, steps = net.train_step, 1, 1
    else:
        step_fn, _ = sketch_model.compile_steps(net, hps.batch_size, max_seq_len, hps.png_width,
                                         jit_compile=mode == 'xla')
        warmup = 2
    first, seconds = benchlib.time_steps(step_fn, [tf.constant(strokes), tf.constant(images)], warmup, steps)
    return dict(seconds=seconds, warmup_seconds=first, batch=hps.batch_size,
                peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_worker(config, mode, onednn):
    """Time config:mode in a fresh process, so peak memory and compilation caches are its own."""
    cmd = [sys.executable, os.path.abspath(__file__), f'--worker={config}:{mode}',
           f'--max_seq_len={FLAGS.max_seq_len}', f'--steps={FLAGS.steps}']
    env = dict(os.environ)
    if ONEDNN[onednn] is not None:
        env['TF_ENABLE_ONEDNN_OPTS'] = ONEDNN[onednn]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if proc.returncode != 0 or not lines:
        return dict(error=(proc.stderr.strip().splitlines() or ['failed'])[-1])
    return json.loads(lines[-1])


def main(argv):
    del argv
    if FLAGS.worker:
        config, mode = FLAGS.worker.split(':')
        print(json.dumps(time_one(config, mode, FLAGS.max_seq_len, FLAGS.steps)))
        return
    unknown = ([c for c in FLAGS.configs if c not in CONFIGS] + [m for m in FLAGS.modes if m not in MODES]
               + [o for o in FLAGS.onednn if o not in ONEDNN])
    if unknown:
        sys.exit(f'error: unknown configs or modes: {", ".join(unknown)}')
    print(f'T = {FLAGS.max_seq_len}, median of {FLAGS.steps} steps after warm-up, {os.cpu_count()} cores, '
          f'load average {os.getloadavg()[0]:.1f}')
    print(f'{"config":<17} {"mode":<9} {"oneDNN":<7} {"s/step":>8} {"sketches/s":>11} {"peak MiB":>9} '
          f'{"TF1 s/step":>11} {"speed-up":>9} {"1st steps s":>12}')
    for config in FLAGS.configs:
        anchor = CONFIGS[config][1]
        for mode, onednn in itertools.product(FLAGS.modes, FLAGS.onednn):
            r = run_worker(config, mode, onednn)
            if 'error' in r:
                print(f'{config:<17} {mode:<9} {onednn:<7} failed: {r["error"]}')
                continue
            ratio = f'{anchor / r["seconds"]:.2f}x' if anchor else '-'
            print(f'{config:<17} {mode:<9} {onednn:<7} {r["seconds"]:>8.2f} {r["batch"] / r["seconds"]:>11.1f} '
                  f'{r["peak_mib"]:>9.0f} {anchor or "-":>11} {ratio:>9} {r["warmup_seconds"]:>12.1f}', flush=True)


if __name__ == '__main__':
    app.run(main)
