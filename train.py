"""Train a model of the RPCL-pix2seq family with the original's epoch loop (docs/model.md#training-loop; flags,
the run directory and resuming: docs/training.md).

    python3 train.py --log_root=runs/demo --data_dir=data --hparams="categories=[bee,bus], dec_rnn_size=256"
"""

import program  # first: it sets TensorFlow's start-up switches

# isort: split
import tensorflow as tf
from absl import flags, logging

import training
import utils

tf.get_logger().setLevel('ERROR')


def define_flags():
    flags.DEFINE_string('log_root', 'model', 'Directory for checkpoints, model_config.json and TensorBoard events.')
    flags.DEFINE_string('data_dir', 'data', 'Directory holding <category>.npz and <category>_png.npz.')
    flags.DEFINE_boolean('resume_training', False, 'Continue from the last save in --log_root.')
    flags.DEFINE_string('hparams', '', 'Overrides, e.g. "categories=[bee,bus], dec_rnn_size=256, batch_size=64".')
    flags.DEFINE_integer('seed', None, 'Seed for TensorFlow and NumPy; with it, runs on the CPU are repeatable.',
                         lower_bound=0)
    flags.DEFINE_boolean('jit_compile', False, 'Compile the training step with XLA (slower for the RNN loop on CPU).')
    flags.DEFINE_boolean('autojit', False, 'XLA auto-clustering of the element-wise ops, matmuls left to TensorFlow '
                         '(on a 2-core CPU faster at 512 decoder units, slower at 256 and 2048: docs/speed.md).')
    flags.DEFINE_integer('log_every', 20, 'Print and log training losses every this many steps.', lower_bound=1)
    flags.DEFINE_integer('max_epochs', 100000, 'Hard cap on epochs (the original: 100000).', lower_bound=0)
    flags.DEFINE_integer('max_strikes', training.MAX_STRIKES, 'Stop after this many non-improving epochs in a row (the '
                         'original: 5; 0: never, so that a run always trains max_epochs epochs).', lower_bound=0)
    flags.DEFINE_float('checkpoint_minutes', 30.0, 'Also save a resumable mid-epoch checkpoint this often (0: never).',
                       lower_bound=0.0)
    flags.DEFINE_enum('strategy', 'default', training.STRATEGIES,
                      'default: one device; mirrored: data-parallel over every local GPU (or --devices); '
                      'multi_worker: over the machines of TF_CONFIG. batch_size is the global batch.')
    flags.DEFINE_string('devices', '', 'mirrored: the devices to use, e.g. /gpu:0,/gpu:1 (/cpu:0,/cpu:1 splits the '
                        'CPU); empty: every local GPU.')


def main(cfg):
    logging.set_verbosity(logging.WARNING)   # TensorFlow logs every checkpoint save at INFO
    strategy = training.make_strategy(cfg.strategy, cfg.devices)   # first: it must precede TF's initialisation
    if strategy is not None and cfg.jit_compile:
        raise utils.UserError('--jit_compile compiles the single-device step only: drop it with --strategy')
    seed, global_seed = training.run_seeds(strategy, utils.resolve_seed(cfg.seed))
    tf.random.set_seed(global_seed)
    if cfg.seed is not None:
        tf.config.experimental.enable_op_determinism()
    hps, *sets = training.prepare_run(cfg.log_root, cfg.data_dir, cfg.hparams, cfg.resume_training)
    if strategy is not None and hps.bucket_width:
        raise utils.UserError('bucket_width batches vary in length, which --strategy does not support: drop one')
    seed_note = '' if cfg.resume_training else f', seed {seed}'   # a resumed run prints its stored seed
    print(f"model_type {hps.model_type}, categories {hps.categories}, max_seq_len {hps.max_seq_len}, "
          f"{len(sets[0].strokes)} training sketches, {sets[0].num_batches} steps/epoch{seed_note}")
    result = training.train_and_evaluate(hps, sets, cfg.log_root, seed=seed, jit_compile=cfg.jit_compile,
                                log_every=cfg.log_every, max_epochs=cfg.max_epochs, max_strikes=cfg.max_strikes,
                                checkpoint_minutes=cfg.checkpoint_minutes, resume=cfg.resume_training,
                                strategy=strategy)
    print(f"done: step {result['step']}, best valid lil {result['best_valid_loss']:.3f}, "
          f"checkpoints in {cfg.log_root}")


def configure_runtime(cfg):
    """TensorFlow's process-wide switches, --autojit among them, which must reach it before the program starts."""
    utils.configure_runtime(cfg['autojit'].value)   # ['autojit'].value: the default when the command line is bad


if __name__ == '__main__':
    program.run(main, define_flags, before_start=configure_runtime)
