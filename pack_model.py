"""Pack a trained model for inference: model_config.json and a weights-only checkpoint of its best epoch.

    python3 pack_model.py --model_dir=runs/rpcl --output_dir=pretrained/rpcl
    python3 pack_model.py --model_dir=runs/rpcl --output_dir=runs/rpcl_now --checkpoint=last   # where it stopped

The output directory is a --model_dir for sample.py, retrieval.py and visualization.py. It holds the weights and
the latent mixture without the optimiser's moments (about a third of a training checkpoint), so it cannot be resumed
with train.py --resume_training: keep the run directory for that.
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split
import os

from absl import flags

import family
import utils


def define_flags():
    flags.DEFINE_string('model_dir', None, 'train.py --log_root of the trained model.', required=True)
    flags.DEFINE_string('output_dir', None, 'Directory for model_config.json and the weights-only checkpoint.',
                        required=True)
    flags.DEFINE_enum('checkpoint', 'best', family.CHECKPOINTS,
                      "best: the best validation's vector-<epoch>; last: the newest resumable save in last/ (the "
                      'weights where training stopped, e.g. to score a run that no validation improved).')


def main(cfg):
    if os.path.abspath(cfg.model_dir) == os.path.abspath(cfg.output_dir):
        raise utils.UserError('--output_dir must differ from --model_dir')
    print(f'wrote {family.save_for_inference(cfg.model_dir, cfg.output_dir, cfg.checkpoint)}')


if __name__ == '__main__':
    program.run(main, define_flags)
