"""Convert a checkpoint of the original TF1 code (RPCL-pix2seq or magenta sketch-rnn) into a run directory.

    python3 convert_tf1_checkpoint.py --tf1_checkpoint=old_run/vector-12 --config=old_run/model_config.json \\
        --output_dir=runs/converted [--hparams="categories=[cat]"]

--config is the model_config.json the original trainer wrote beside its checkpoints (magenta's recent versions
write the hparam names alone: then give the categories, and max_seq_len if not magenta's 250, with --hparams).
The output directory holds model_config.json and the checkpoint `vector-<epoch>`, ready for sample.py,
retrieval.py, visualization.py and train.py --resume_training. The variable map: docs/tf1_checkpoints.md.
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split


from absl import flags, logging

import tf1_checkpoint


def define_flags():
    flags.DEFINE_string('tf1_checkpoint', None, 'Checkpoint prefix (e.g. run/vector-12) or a directory with a '
                        '`checkpoint` state file (its latest checkpoint).')
    flags.DEFINE_string('config', None, "The original's model_config.json.")
    flags.DEFINE_string('output_dir', None, 'New run directory for model_config.json and the converted checkpoint.')
    flags.DEFINE_string('hparams', '', 'Overrides, e.g. "categories=[bee], max_seq_len=170".')
    flags.mark_flags_as_required(['tf1_checkpoint', 'config', 'output_dir'])


def main(cfg):
    logging.set_verbosity(logging.WARNING)   # TensorFlow logs the checkpoint save at INFO
    path, hps, step = tf1_checkpoint.convert(cfg.tf1_checkpoint, cfg.config, cfg.output_dir, cfg.hparams)
    print(f'wrote {path} ({hps.model_type}, dec_model {hps.dec_model}, step {step}) and model_config.json')


if __name__ == '__main__':
    program.run(main, define_flags)
