"""Shared fixtures: the bundled data and a copy of it with rendered images. The checkout's modules are importable
through pyproject.toml's pytest `pythonpath`."""
import os
import shutil

import numpy as np
import pytest

import dataset
import raster

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CATEGORIES = ('bee', 'bus', 'car', 'cat', 'flower')


@pytest.fixture(scope='session')
def repo_dir():
    return REPO


@pytest.fixture(scope='session')
def data_dir():
    """The bundled real QuickDraw data (read only): <c>.npz for the five CATEGORIES, 340/30/30 sketches each."""
    return os.path.join(REPO, 'data')


@pytest.fixture(scope='session')
def png_data_dir(tmp_path_factory, data_dir):
    """A temporary copy of data/ plus <c>_png.npz for every category (fast renderer, in-process), as
    load_dataset expects."""
    directory = str(tmp_path_factory.mktemp('data'))
    for c in CATEGORIES:
        shutil.copy(dataset.category_npz_path(data_dir, c), directory)
        raster.write_png_npz(directory, directory, c, workers=1)
    return directory


TINY_HPARAMS = ('categories=[bee,bus], dec_rnn_size=32, dec_model=lstm, z_size=16, batch_size=16, num_mixture=2, '
                'num_sub=2, num_per_category=48')


@pytest.fixture(scope='session')
def trained_model_dir(tmp_path_factory, png_data_dir):
    """--log_root of a tiny RPCL-pix2seq (TINY_HPARAMS: bee and bus, 48 sketches of each split per category) trained
    for one epoch by training.train_and_evaluate; its test split holds the 30 bundled test sketches per category."""
    import training
    log_root = str(tmp_path_factory.mktemp('tiny_model'))
    hps, *sets = training.prepare_run(log_root, png_data_dir, TINY_HPARAMS, resume=False)
    training.train_and_evaluate(hps, sets, log_root, seed=0, max_epochs=1)
    return log_root


TINY_SPGRA_HPARAMS = ('model_type=spgra, categories=[bee,bus], dec_rnn_size=32, dec_model=lstm, z_size=16, '
                      'batch_size=8, num_per_category=16, graph_picture_size=16, num_clusters=8, '
                      'use_recurrent_dropout=false')


@pytest.fixture(scope='session')
def trained_spgra_dir(tmp_path_factory, data_dir):
    """--log_root of a tiny SP-gra2seq (TINY_SPGRA_HPARAMS: bee and bus, 16 sketches of each split per category,
    16-pixel patches) trained for one epoch."""
    import training
    log_root = str(tmp_path_factory.mktemp('tiny_spgra'))
    hps, *sets = training.prepare_run(log_root, data_dir, TINY_SPGRA_HPARAMS, resume=False)
    training.train_and_evaluate(hps, sets, log_root, seed=0, max_epochs=1)
    return log_root


def _object_array(sketches):
    """A 1-D object array of sketches, as the sketch-rnn files store them (also when all have one length)."""
    split = np.empty(len(sketches), dtype=object)
    for i, sketch in enumerate(sketches):
        split[i] = np.asarray(sketch)
    return split


@pytest.fixture(scope='session')
def write_category():
    """write_category(directory, name, train, valid, test) -> path of a new <name>.npz of stroke-3 sketches."""
    def write(directory, name, train, valid, test):
        path = dataset.category_npz_path(str(directory), name)
        np.savez(path, train=_object_array(train), valid=_object_array(valid), test=_object_array(test))
        return path
    return write
