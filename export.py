"""Export a trained model as a TensorFlow SavedModel, usable from Python without this repository.

    python3 export.py --model_dir=runs/rpcl --export_dir=exported/rpcl

The SavedModel has encode(images | strokes), generate(z, temperature, seed, max_len) and reconstruct(images |
strokes, temperature, seed), also as serving signatures; signatures, dtypes and shapes: docs/export.md.
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split
import os

from absl import flags, logging

import export_lib


def define_flags():
    flags.DEFINE_string('model_dir', None, 'train.py --log_root or convert_tf1_checkpoint.py --output_dir of the '
                        'model.')
    flags.DEFINE_string('export_dir', None, 'New directory for the SavedModel.')
    flags.mark_flags_as_required(['model_dir', 'export_dir'])


def main(cfg):
    logging.set_verbosity(logging.WARNING)   # TensorFlow logs every saved function at INFO
    hps = export_lib.export(cfg.model_dir, cfg.export_dir)
    print(f'wrote the SavedModel of a {hps.model_type} model to {os.path.abspath(cfg.export_dir)}')


if __name__ == '__main__':
    program.run(main, define_flags)
