"""The model family: model_type -> class, building a model, reading its data splits, restoring a trained one and
writing its weights-only copy. Every caller that starts from a model_type or a model directory goes through here;
the models themselves (model.py, model_*.py) do not know the registry."""
import os

import tensorflow as tf

import hyperparams
import model
import model_ia
import model_rpclh
import model_sketch_rnn
import model_spgra
import utils

# model_type -> the class implementing it (the interface: sketch_model.SketchModel; docs/model_interface.md)
MODEL_TYPES = {'rpcl': model.RPCLPix2Seq, 'rpclh': model_rpclh.RPCLPix2SeqH, 'ia': model_ia.IAPix2Seq,
               'sketch_rnn': model_sketch_rnn.SketchRNN, 'spgra': model_spgra.SPGra2Seq}


def model_class(hps):
    """The class of hps.model_type, or one UserError naming the known ones."""
    if hps.model_type not in MODEL_TYPES:
        raise utils.UserError(f"unknown model_type '{hps.model_type}' (one of {', '.join(sorted(MODEL_TYPES))})")
    return MODEL_TYPES[hps.model_type]


def load_splits(data_dir, hps):
    """(train, valid, test, hps with max_seq_len) loaders of what a model of hps.model_type reads."""
    return model_class(hps).load_splits(data_dir, hps)


def build_model(hps):
    """The model named by hps.model_type."""
    return model_class(hps)(hps)


CHECKPOINTS = ('best', 'last')   # a run's best validation (vector-<epoch>) or its newest resumable save (last/)


def checkpoint_path(model_dir, which='best'):
    """The checkpoint of <model_dir> that `which` names (CHECKPOINTS); UserError when there is none."""
    if which == 'last':
        path = tf.train.latest_checkpoint(os.path.join(model_dir, 'last'))
        if path is None:
            raise utils.UserError(f'no last/ checkpoint in {model_dir}: train.py writes one every --checkpoint_minutes '
                                  'and when it stops')
        return path
    path = tf.train.latest_checkpoint(model_dir)
    if path is None:
        raise utils.UserError(f'no checkpoint in {model_dir}: train.py saves one after the first improving epoch')
    return path


def restore_model(model_dir, which='best'):
    """Rebuild a trained model for inference from <model_dir>/model_config.json and its best checkpoint (a train.py
    checkpoint, or a weights-only one of save_for_inference), or with which='last' the run's newest resumable save:
    (model without optimiser, hps)."""
    config_path = os.path.join(model_dir, 'model_config.json')
    if not os.path.exists(config_path):
        raise utils.UserError(f'no model_config.json in {model_dir} (is it a train.py --log_root?)')
    hps = hyperparams.load_hparams_json(config_path)
    path = checkpoint_path(model_dir, which)
    net = build_model(hps)
    del net.optimizer   # inference reads the weights and the latent mixture; saved Adam moments are skipped
    try:
        tf.train.Checkpoint(model=net).restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise utils.UserError(f'checkpoint {path} does not match {config_path}: {str(err).splitlines()[0]}')
    return net, hps


def save_for_inference(model_dir, output_dir, which='best'):
    """Write <output_dir>/model_config.json and a checkpoint of the best model of <model_dir> (or with which='last'
    its newest resumable save) holding only what inference reads (weights, latent mixture; no Adam moments, a third
    of a training checkpoint), as vector-<n>, n the source checkpoint's number. Returns the checkpoint path."""
    net, hps = restore_model(model_dir, which)
    epoch = int(checkpoint_path(model_dir, which).rsplit('-', 1)[1])
    utils.make_output_dir(output_dir, '--output_dir')
    hyperparams.save_hparams_json(hps, os.path.join(output_dir, 'model_config.json'))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=net), output_dir, max_to_keep=1,
                                         checkpoint_name='vector')
    return manager.save(checkpoint_number=epoch)


def load_model_and_test_split(model_dir, data_dir):
    """(net, test loader) for the model's categories, normalised as in training."""
    net, hps = restore_model(model_dir)
    _, _, test_set, _ = load_splits(data_dir, hps)
    return net, test_set
