"""retrieval.py: Ret against a NumPy reference of the original's procedure, Ret = 1 on the references themselves
and chance on shuffled pairs, Rec through a tiny trained classifier, reading sample directories, and the CLI."""
import os
import subprocess
import sys

import numpy as np
import pytest
from test_sample import untrained_model

import family
import metrics
import raster
import rec_classifier
import sampling
import utils

CATEGORIES = ['bee', 'bus']


def np_ret(real, gen, ks):
    """docs/model.md#ret as the original computes it for every n: d(n, m) = mean_d (y_m - y'_n)^2, then k times take the
    argmin (first index on ties) and mask it; a hit when y_n is picked."""
    hits = {k: 0 for k in ks}
    for n in range(len(gen)):
        d = ((real - gen[n]) ** 2).mean(axis=1)
        picked = []
        for _ in range(max(ks)):
            m = int(np.argmin(d))
            picked.append(m)
            d[m] = np.inf
        for k in ks:
            hits[k] += n in picked[:k]
    return {k: hits[k] / len(gen) for k in ks}


@pytest.mark.parametrize('chunk', [1, 7, 40])
def test_ret_scores_match_the_original_procedure(chunk):
    rng = np.random.default_rng(0)
    real = rng.standard_normal((40, 6))
    gen = real + 0.8 * rng.standard_normal((40, 6))
    real[5] = real[3]                   # a tie: the lower index wins, so n = 5 misses top-1
    gen[5] = real[5]
    gen[9] = real[9]
    expected = np_ret(real, gen, (1, 3, 10))
    assert metrics.ret_scores(real, gen, ks=(1, 3, 10), chunk=chunk) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected[1] < expected[3] < expected[10] < 1


def test_ret_is_one_for_identical_codes_and_chance_for_shuffled_pairs():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((1000, 16)).astype(np.float32)
    assert metrics.ret_scores(real, real, chunk=128) == {1: 1.0, 10: 1.0, 50: 1.0}
    shuffled = real[rng.permutation(len(real))]
    scores = metrics.ret_scores(real, shuffled, chunk=128)
    for k, value in scores.items():
        assert abs(value - k / len(real)) < 0.03, scores


def test_ret_scores_rejects_unpaired_codes():
    with pytest.raises(utils.UserError, match='paired'):
        metrics.ret_scores(np.zeros((4, 3)), np.zeros((5, 3)))


# ------------------------------------------------------------------------------------------------ sample directories

@pytest.fixture(scope='module')
def restored(trained_model_dir, png_data_dir):
    return family.load_model_and_test_split(trained_model_dir, png_data_dir)


@pytest.fixture(scope='module')
def reference_dir(restored, tmp_path_factory):
    """A sample directory whose 'generated' sketches are the real test sketches themselves, each with its code
    y_n = encoder mean of its own image (what conditional sampling saves)."""
    net, test_set = restored
    directory = str(tmp_path_factory.mktemp('references'))
    batch = test_set.batch_from_indices(np.arange(len(test_set.strokes)))
    mu, _ = sampling.encode_batched(net, None, batch.images, 64)
    for i, c in enumerate(CATEGORIES):
        for n, row in enumerate(sampling.category_rows(test_set, i)):
            files = sampling.sketch_files(f'{c}_{n}', test_set.strokes[row], test_set.images[row], mu[row], {})
            sampling.write_files(directory, files)
    return directory


def test_load_sample_dir_orders_by_number_and_reads_the_red_channel(reference_dir, restored):
    _, test_set = restored
    samples = metrics.load_sample_dir(reference_dir, CATEGORIES)
    assert samples.names[:12] == [f'bee_{n}' for n in range(12)]          # bee_10 after bee_9
    assert samples.names[30] == 'bus_0' and len(samples.names) == 60
    np.testing.assert_array_equal(samples.category_ids, np.repeat([0, 1], 30))
    np.testing.assert_array_equal(samples.images, test_set.images)
    assert samples.codes.shape == (60, 16) and samples.codes.dtype == np.float32
    assert len(samples.strokes) == 60 and samples.gaussian_labels == {}


def test_ret_is_one_when_the_generated_images_are_the_references(reference_dir, restored):
    net, _ = restored
    samples = metrics.load_sample_dir(reference_dir, CATEGORIES)
    generated = metrics.encode_generated(net, samples, reference_dir, batch_size=7)
    assert metrics.ret_scores(samples.codes, generated) == {1: 1.0, 10: 1.0, 50: 1.0}


def test_load_sample_dir_errors(tmp_path, reference_dir):
    with pytest.raises(utils.UserError, match='does not exist'):
        metrics.load_sample_dir(str(tmp_path / 'nowhere'), CATEGORIES)
    with pytest.raises(utils.UserError, match='no generated sketches'):
        metrics.load_sample_dir(str(tmp_path), CATEGORIES)
    with open(os.path.join(reference_dir, 'bee_0.png'), 'rb') as f:
        (tmp_path / 'bee_0.png').write_bytes(f.read())
    with pytest.raises(utils.UserError, match='missing .*code_bee_0.npy'):
        metrics.load_sample_dir(str(tmp_path), CATEGORIES)


def test_sketch_rnn_re_encodes_the_saved_strokes(png_data_dir, tmp_path):
    """References as samples for a stroke encoder: strokes saved in pixel units (x the scale factor recorded in
    sample_config.json) re-encode to their own codes."""
    net, test_set = untrained_model('sketch_rnn', png_data_dir)
    rows = np.arange(0, len(test_set.strokes), 3)
    mu, _ = sampling.encode_batched(net, test_set.batch_from_indices(rows).strokes, None, 16)
    scale = np.float32([test_set.scale_factor, test_set.scale_factor, 1])
    for n, row in enumerate(rows):
        pixels = test_set.strokes[row] * scale
        image = raster.render_fast([pixels], 48, workers=1)[0]
        sampling.write_files(str(tmp_path), sampling.sketch_files(f'bee_{n}', pixels, image, mu[n], {}))
    sampling.write_config(str(tmp_path), scale_factor=test_set.scale_factor)
    samples = metrics.load_sample_dir(str(tmp_path), CATEGORIES)
    generated = metrics.encode_generated(net, samples, str(tmp_path), batch_size=8)
    np.testing.assert_allclose(generated, mu, atol=1e-5)
    assert metrics.ret_scores(samples.codes, generated) == {1: 1.0, 10: 1.0, 50: 1.0}
    (tmp_path / sampling.CONFIG_FILE).unlink()
    with pytest.raises(utils.UserError, match='scale factor'):
        metrics.encode_generated(net, samples, str(tmp_path))


# ------------------------------------------------------------------------------------------------ Rec

class FixedPredictions:
    """A stand-in Keras model whose logits pick the given classes."""

    def __init__(self, classes, num_classes):
        self.logits = np.eye(num_classes)[classes]

    def predict(self, images, batch_size=None, verbose=0):
        assert len(images) == len(self.logits)
        return self.logits


def test_rec_score_maps_categories_by_name():
    # the classifier's order differs from the model's: bus is its class 0
    model = FixedPredictions([1, 1, 0, 1], num_classes=3)
    images = np.full((4, 48, 48), 255, np.uint8)
    accuracy, per_category = metrics.rec_score(model, ['bus', 'bee', 'cat'], images, [0, 0, 1, 1], CATEGORIES)
    assert accuracy == 0.75 and per_category == {'bee': 1.0, 'bus': 0.5}
    with pytest.raises(utils.UserError, match='does not know car'):
        metrics.rec_score(model, ['bus', 'bee'], images, [0, 1, 1, 1], ['car', 'bus'])


@pytest.fixture(scope='module')
def classifier_dir(png_data_dir, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('classifier'))
    rec_classifier.train_classifier(png_data_dir, CATEGORIES, directory, epochs=1, batch_size=32, seed=0, verbose=0)
    return directory


def test_rec_on_the_references_is_the_classifier_accuracy_on_real_images(reference_dir, classifier_dir,
                                                                         png_data_dir):
    model, categories = rec_classifier.load_classifier(classifier_dir)
    samples = metrics.load_sample_dir(reference_dir, CATEGORIES)
    accuracy, by_category = metrics.rec_score(model, categories, samples.images, samples.category_ids, CATEGORIES)
    real_accuracy, real_by_category = rec_classifier.evaluate(classifier_dir, png_data_dir, 'test')
    assert accuracy == pytest.approx(real_accuracy)
    assert by_category == pytest.approx(real_by_category)   # the same categories, each with the same accuracy


# ------------------------------------------------------------------------------------------------ command line

def start_cli(repo_dir, *args):
    return subprocess.Popen([sys.executable, os.path.join(repo_dir, 'retrieval.py'), *args], cwd=repo_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli(repo_dir, trained_model_dir, reference_dir, classifier_dir, png_data_dir, tmp_path):
    """Two runs at once: Ret and Rec on the references (with the original's --output_dir), and an empty sample
    directory (one `error:` line, exit 1)."""
    ok = start_cli(repo_dir, f'--output_dir={reference_dir}', f'--model_dir={trained_model_dir}',
                   f'--classifier_dir={classifier_dir}')
    empty = start_cli(repo_dir, f'--sample_dir={tmp_path}', f'--model_dir={trained_model_dir}')
    _, stderr = empty.communicate(timeout=300)
    errors = [line for line in stderr.splitlines() if line.startswith('error:')]
    assert empty.returncode == 1 and len(errors) == 1 and 'no generated sketches' in errors[0], stderr
    assert 'Traceback' not in stderr
    stdout, stderr = ok.communicate(timeout=300)
    assert ok.returncode == 0, (ok.returncode, stderr[-3000:])
    assert 'Top 1 Ret: 1.0000' in stdout and 'Top 50 Ret: 1.0000' in stdout
    samples = metrics.load_sample_dir(reference_dir, CATEGORIES)
    assert f'Code 5-NN: {metrics.knn_accuracy(samples.codes, samples.category_ids):.4f}' in stdout
    accuracy, _ = rec_classifier.evaluate(classifier_dir, png_data_dir, 'test')
    assert f'Rec: {accuracy:.4f}' in stdout
    assert 'Alive Gaussians: ' in stdout and ' of 4 (weight above 1/(10K))' in stdout


def test_purity_and_category_split_of_the_latent_components():
    labels = np.array([0, 0, 0, 2, 2, 2, 2])
    category_ids = np.array([0, 0, 1, 1, 1, 1, 0])
    assert metrics.purity(labels, category_ids) == pytest.approx((2 + 3) / 7)
    split = metrics.category_split(labels, category_ids, 3)
    assert list(split) == [0, 2]
    assert split[0][0] == 3 and split[0][1].tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    assert split[2][0] == 4 and split[2][1].tolist() == pytest.approx([1 / 4, 3 / 4, 0])
