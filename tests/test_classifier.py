"""Sketch-a-Net-48 (classifier.py): input scaling, shapes, accuracy bookkeeping, a short real training, the
save/load round trip and the command line's one-line errors."""
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import dataset
import rec_classifier
import utils

CATEGORIES = ['bee', 'bus', 'flower']  # chance = 1/3


@pytest.fixture(scope='module')
def trained(png_data_dir, tmp_path_factory):
    """A short training (3 epochs, quarter width) on the bundled bee/bus/flower images: (model, config, dir)."""
    model_dir = str(tmp_path_factory.mktemp('classifier'))
    model, config = rec_classifier.train_classifier(png_data_dir, CATEGORIES, model_dir, epochs=3, batch_size=32,
                                                seed=0, channel_scale=0.25, patience=3, verbose=0)
    return model, config, model_dir


def test_normalise_images_scales_pixels_like_the_generative_model():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(3, 48, 48), dtype=np.uint8)
    expected = pixels.astype(np.float64) / 255 * 2 - 1  # x = pixel/255*2-1
    x = rec_classifier.normalise_images(pixels)
    assert x.shape == (3, 48, 48, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], expected, atol=1e-6)
    np.testing.assert_array_equal(rec_classifier.normalise_images(x), x)  # float in [-1, 1] passes through


@pytest.mark.parametrize('images, problem', [
    (np.zeros((2, 32, 32), np.uint8), 'shape'),
    (np.full((2, 48, 48), 255.0), '[-1, 1]'),
    (np.zeros((2, 48, 48), np.int64), 'uint8 or float'),
])
def test_normalise_images_rejects_bad_input(images, problem):
    with pytest.raises(utils.UserError, match=re.escape(problem)):
        rec_classifier.normalise_images(images)


def test_build_classifier_map_sizes_follow_the_documented_table():
    model = rec_classifier.build_classifier(7, channel_scale=0.5)
    convs = [layer for layer in model.layers if layer.__class__.__name__ == 'Conv2D']
    # L1..L8: (map side, channels) for a 48x48 input; canonical channels 64,128,256,256,256,512,512 halved
    assert [(c.output.shape[1], c.output.shape[3]) for c in convs] == [
        (48, 32), (19, 64), (9, 128), (9, 128), (9, 128), (1, 256), (1, 256), (1, 7)]
    assert model.output_shape == (None, 7)


def test_accuracy_by_category_counts_each_category_separately():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 2, 1, 0, 0])
    accuracy, per_category = rec_classifier.accuracy_by_category(labels, predicted, ['a', 'b', 'c', 'd'])
    assert accuracy == pytest.approx(3 / 7)
    assert per_category == {'a': 0.5, 'b': 0.5, 'c': 0.0}  # 'd' has no images
    assert rec_classifier.format_accuracy(accuracy, per_category).splitlines()[-1].split() == ['overall', '42.86%']


def test_short_training_beats_chance_on_real_test_images(trained, png_data_dir):
    _, config, model_dir = trained
    accuracy, per_category = rec_classifier.evaluate(model_dir, png_data_dir, 'test')
    assert accuracy > 0.6, per_category  # chance is 1/3 on 3 x 30 test sketches
    assert list(per_category) == CATEGORIES
    with open(os.path.join(model_dir, rec_classifier.CONFIG_FILE)) as f:
        saved = json.load(f)
    assert saved == config and saved['categories'] == CATEGORIES
    assert 1 <= saved['best_epoch'] <= saved['epochs_run'] <= 3


def test_save_load_round_trip_gives_identical_predictions(trained, png_data_dir):
    model, _, model_dir = trained
    loaded, categories = rec_classifier.load_classifier(model_dir)
    assert categories == CATEGORIES
    images, _ = rec_classifier.load_labelled_images(png_data_dir, CATEGORIES)['valid']
    x = rec_classifier.normalise_images(images)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(rec_classifier.predict(loaded, images), rec_classifier.predict(model, x))
    with zipfile.ZipFile(os.path.join(model_dir, rec_classifier.MODEL_FILE)) as archive:
        with h5py.File(io.BytesIO(archive.read('model.weights.h5'))) as weights:
            assert 'layers' in weights and 'optimizer' not in weights   # inference weights only


def test_load_labelled_images_orders_labels_like_the_categories(png_data_dir):
    images, labels = rec_classifier.load_labelled_images(png_data_dir, ['flower', 'bee'])['test']
    with np.load(dataset.category_png_path(png_data_dir, 'bee')) as bee:
        np.testing.assert_array_equal(images[30:], bee['test'])
    np.testing.assert_array_equal(labels, [0] * 30 + [1] * 30)


def test_library_errors_name_the_problem(tmp_path, png_data_dir):
    with pytest.raises(utils.UserError, match='no classifier in'):
        rec_classifier.load_classifier(str(tmp_path))
    with pytest.raises(utils.UserError, match="unknown split 'dev'"):
        rec_classifier.evaluate(str(tmp_path), png_data_dir, 'dev')
    with pytest.raises(utils.UserError, match='distinct'):
        rec_classifier.train_classifier(png_data_dir, ['bee', 'bee'], str(tmp_path))
    (tmp_path / rec_classifier.MODEL_FILE).write_bytes(b'not a zip')
    (tmp_path / rec_classifier.CONFIG_FILE).write_text('{"categories": ["bee"]}')
    with pytest.raises(utils.UserError, match='cannot read'):
        rec_classifier.load_classifier(str(tmp_path))


CLI_ERRORS = {
    'unknown category': (['--mode=train', '--categories=bee,unicorn'], 'error: no images for unicorn in {data}; '
                         'make them with: python3 seq2png.py --input_dir={data} --output_dir={data} '
                         '--categories=unicorn'),
    'no classifier': (['--mode=eval', '--model_dir={empty}'], 'error: no classifier in {empty} (expected '
                      'classifier.keras and classifier_config.json, written by python3 classifier.py --mode=train)'),
}
TF_STARTUP_LOG = re.compile(r'^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} )')


@pytest.fixture(scope='module')
def cli_runs(repo_dir, png_data_dir, tmp_path_factory):
    """Every CLI_ERRORS case run at once (each process pays the TensorFlow import): name -> (run, expected)."""
    names = {'data': png_data_dir, 'empty': str(tmp_path_factory.mktemp('empty'))}
    processes = {}
    for case, (args, message) in CLI_ERRORS.items():
        argv = [sys.executable, 'classifier.py', f'--data_dir={png_data_dir}', *[a.format(**names) for a in args]]
        processes[case] = (subprocess.Popen(argv, cwd=repo_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True), message.format(**names))
    runs = {}
    for case, (process, message) in processes.items():
        _, stderr = process.communicate(timeout=300)
        runs[case] = (process.returncode, stderr, message)
    return runs


@pytest.mark.parametrize('case', list(CLI_ERRORS))
def test_cli_errors_are_one_line(cli_runs, case):
    returncode, stderr, message = cli_runs[case]
    assert returncode == 1, stderr
    assert [line for line in stderr.strip().splitlines() if not TF_STARTUP_LOG.match(line)] == [message]
