"""Which devices does TensorFlow see here, where does a training step run, and how long does it take?

Run it first on a new machine, a GPU box above all (docs/install.md#gpu). It prints TensorFlow's build (CUDA and
cuDNN versions of a GPU build), the physical and logical devices, the start-up switches, then for each model a fresh
process that builds it on --device, logs where the training step's ops are placed, and times --steps steps after
one warm-up step (which includes tracing and compiling):

  paper    RPCL-pix2seq at the paper's defaults (HyperLSTM 2048, batch 128)
  shipped  the recipe of pretrained/rpcl512-quickdraw3 (LSTM 512, batch 64), read from its model_config.json

  python3 bench/device_check.py                      # the first GPU if there is one, else the CPU
  python3 bench/device_check.py --device=/CPU:0 --models=shipped --steps=3
"""
import collections
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import program  # noqa: E402  (first: it sets TensorFlow's start-up switches)

# isort: split
from absl import flags  # noqa: E402

import utils  # noqa: E402

SHIPPED_CONFIG = os.path.join(REPO, 'pretrained', 'rpcl512-quickdraw3', 'model_config.json')
MODELS = ('paper', 'shipped')
SWITCHES = ('TF_ENABLE_ONEDNN_OPTS', 'TF_ENABLED_DEVICE_TYPES', 'TF_CPP_MIN_LOG_LEVEL', 'CUDA_VISIBLE_DEVICES')
# A line the placer prints for each op when device placement is logged: "<node>: (<OpType>): <device>"
PLACEMENT = re.compile(r'^\S.*: \((\w+)\): (/job:\S+)$')

def define_flags():
    flags.DEFINE_string('device', None, 'Device to build and train on, e.g. /GPU:0 or /CPU:0 (default: the first GPU '
                        'TensorFlow sees, else the CPU).')
    flags.DEFINE_list('models', list(MODELS), f'Models to time: {", ".join(MODELS)}.')
    flags.DEFINE_integer('steps', 1, 'Timed training steps after the warm-up step.', lower_bound=1)
    flags.DEFINE_integer('max_seq_len', 170, 'T: the batch of real sketches is padded to this many steps.',
                         lower_bound=1)
    flags.DEFINE_string('hparams', '', 'Overrides applied to every model, e.g. "dec_rnn_size=64, batch_size=8".')
    flags.DEFINE_string('worker', None, 'Internal: time one model in this process and print JSON.')


def model_hparams(name, overrides):
    """The hparams of a MODELS entry, with the --hparams overrides."""
    import hyperparams
    hps = (hyperparams.get_default_hparams() if name == 'paper' else hyperparams.load_hparams_json(SHIPPED_CONFIG))
    return hps.parse(overrides) if overrides else hps


def time_model(name, device, overrides, max_seq_len, steps):
    """Build model `name` on `device` and time its compiled training step (this process); placement is logged to
    stdout while the step is first traced and placed."""
    import benchlib
    import tensorflow as tf

    import family
    import sketch_model
    hps = model_hparams(name, overrides).replace(max_seq_len=max_seq_len)
    tf.debugging.set_log_device_placement(True)
    with tf.device(device):
        net = family.build_model(hps)
        strokes, images = benchlib.real_batch(hps, max_seq_len)
        step_fn, _ = sketch_model.compile_steps(net, hps.batch_size, max_seq_len, hps.png_width)
        args = [tf.constant(strokes), tf.constant(images)]
        first, seconds = benchlib.time_steps(step_fn, args, warmup=1, steps=steps)
    sys.stdout.flush()
    return dict(seconds=seconds, warmup_seconds=first, batch=hps.batch_size, dec_model=hps.dec_model,
                dec_rnn_size=hps.dec_rnn_size)


def placement_summary(lines):
    """{device: Counter(op type)} from the placer's lines."""
    placed = collections.defaultdict(collections.Counter)
    for line in lines:
        match = PLACEMENT.match(line.strip())
        if match:
            placed[match.group(2).split('/device:')[-1]][match.group(1)] += 1
    return placed


def run_worker(name, device, cfg):
    """Time model `name` in a fresh process with the flags of `cfg`: (result dict or error, placement summary)."""
    cmd = [sys.executable, os.path.abspath(__file__), f'--worker={name}', f'--device={device}',
           f'--steps={cfg.steps}', f'--max_seq_len={cfg.max_seq_len}', f'--hparams={cfg.hparams}']
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = (proc.stdout + '\n' + proc.stderr).splitlines()
    results = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if proc.returncode != 0 or not results:
        errors = [line for line in proc.stderr.splitlines() if line.strip()] or ['failed']
        return dict(error=errors[-1]), placement_summary(lines)
    return json.loads(results[-1]), placement_summary(lines)


def describe_tensorflow():
    """Print TensorFlow's version and build, the devices it sees and the start-up switches; return the GPU names."""
    import tensorflow as tf
    build = tf.sysconfig.get_build_info()
    print(f'TensorFlow {tf.__version__}; CUDA build: {build.get("is_cuda_build", False)}'
          + (f' (CUDA {build.get("cuda_version")}, cuDNN {build.get("cudnn_version")})'
             if build.get('is_cuda_build') else ''))
    print('switches: ' + ', '.join(f'{name}={os.environ.get(name, "(unset)")}' for name in SWITCHES))
    gpus = tf.config.list_physical_devices('GPU')
    for device in tf.config.list_physical_devices():
        details = tf.config.experimental.get_device_details(device) if device.device_type == 'GPU' else {}
        extra = ', '.join(f'{k} {v}' for k, v in details.items())
        print(f'physical device: {device.name} ({device.device_type}{", " + extra if extra else ""})')
    print('logical devices: ' + ', '.join(d.name for d in tf.config.list_logical_devices()))
    if not gpus:
        print('no GPU: ' + ('the CUDA driver (libcuda.so.1) is missing' if not utils.cuda_driver_present()
                            else 'the driver loads but TensorFlow sees no GPU (a CPU-only wheel? see '
                                 'docs/install.md#gpu)'))
    return gpus


def print_placement(placed, device):
    """Op counts per device, and which op types ran elsewhere than `device`."""
    wanted = device.strip('/').upper()
    for where, counts in sorted(placed.items()):
        print(f'  ops on {where}: {sum(counts.values())}')
        if where.upper() != wanted and counts:
            print('    of which: ' + ', '.join(f'{op} {n}' for op, n in counts.most_common(12)))


def main(cfg):
    unknown = [m for m in cfg.models if m not in MODELS]
    if unknown:
        raise utils.UserError(f'unknown --models: {", ".join(unknown)} (choose from {", ".join(MODELS)})')
    if cfg.worker:
        print(json.dumps(time_model(cfg.worker, cfg.device, cfg.hparams, cfg.max_seq_len, cfg.steps)))
        return
    gpus = describe_tensorflow()
    device = cfg.device or ('/GPU:0' if gpus else '/CPU:0')
    print(f'training on {device}: one warm-up step (tracing and compiling), then the median of {cfg.steps} '
          f'step(s), T = {cfg.max_seq_len}' + (f', overrides "{cfg.hparams}"' if cfg.hparams else ''))
    for name in cfg.models:
        result, placed = run_worker(name, device, cfg)
        if 'error' in result:
            print(f'{name}: failed: {result["error"]}')
            continue
        print(f'{name} ({result["dec_model"]} {result["dec_rnn_size"]}, batch {result["batch"]}): '
              f'{result["seconds"]:.3f} s/step, {result["batch"] / result["seconds"]:.1f} sketches/s; '
              f'warm-up {result["warmup_seconds"]:.1f} s')
        print_placement(placed, device)


if __name__ == '__main__':
    program.run(main, define_flags)
