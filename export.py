"""Export a trained model as a TensorFlow SavedModel, usable from Python without this repository.

    python3 export.py --model_dir=runs/rpcl --export_dir=exported/rpcl

The SavedModel has encode(images | strokes), generate(z, temperature, seed, max_len) and reconstruct(images |
strokes, temperature, seed), also as serving signatures; signatures, dtypes and shapes: docs/export.md.
"""
import os

import utils

utils.tensorflow_startup()   # before TensorFlow is imported: it reads these switches as it starts

from absl import app, flags, logging  # noqa: E402

import export_lib  # noqa: E402


def define_flags():
    """The command-line flags, defined only when run as a program."""
    flags.DEFINE_string('model_dir', None, 'train.py --log_root or convert_tf1_checkpoint.py --output_dir of the '
                        'model.')
    flags.DEFINE_string('export_dir', None, 'New directory for the SavedModel.')
    flags.mark_flags_as_required(['model_dir', 'export_dir'])


@utils.cli_main
def main(argv):
    if len(argv) > 1:
        raise utils.UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)   # TensorFlow logs every saved function at INFO
    cfg = flags.FLAGS
    hps = export_lib.export(cfg.model_dir, cfg.export_dir)
    print(f'wrote the SavedModel of a {hps.model_type} model to {os.path.abspath(cfg.export_dir)}')


if __name__ == '__main__':
    define_flags()
    app.run(main)
