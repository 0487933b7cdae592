"""The models shipped under pretrained/: they load, decode, and what they draw is recognised (a regression test of
the whole encode -> decode -> render -> classify path on real QuickDraw test sketches)."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import dataset
import family
import latent_map
import metrics
import model
import raster
import rec_classifier
import sampling
import sketch_healing

PRETRAINED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'pretrained')
CATEGORIES = ('alarm clock', 'face', 'radio')
PER_CATEGORY = 10


@pytest.fixture(scope='module')
def quickdraw3_dir(tmp_path_factory, data_dir):
    """A copy of the three bundled categories with their rendered images."""
    directory = str(tmp_path_factory.mktemp('quickdraw3'))
    for c in CATEGORIES:
        shutil.copy(dataset.category_npz_path(data_dir, c), directory)
        raster.write_png_npz(directory, directory, c, workers=1)
    return directory


def test_the_shipped_classifier_recognises_real_test_sketches(quickdraw3_dir):
    accuracy, per_category = rec_classifier.evaluate(os.path.join(PRETRAINED, 'classifier-quickdraw3'), quickdraw3_dir)
    assert list(per_category) == list(CATEGORIES) and accuracy > 0.9


@pytest.mark.parametrize('name', ['rpcl-quickdraw3', 'rpcl512-quickdraw3', 'rpclh-quickdraw3', 'ia-quickdraw3',
                                  'sketch_rnn-quickdraw3'])
def test_a_shipped_model_draws_sketches_the_classifier_recognises(quickdraw3_dir, tmp_path, name):
    """10 conditional samples per category (temperature 0.24, seed 1): the shipped classifier recognises well above
    chance (1/3) what the shipped model draws, and a latent mixture has alive Gaussians."""
    net, test_set = family.load_model_and_test_split(os.path.join(PRETRAINED, name), quickdraw3_dir)
    assert net.hps.categories == list(CATEGORIES)
    weights = net.mixture_weights()
    assert weights is None or model.is_alive(weights.numpy()).sum() >= 2
    written = sampling.sample(net, test_set, str(tmp_path), num_per_category=PER_CATEGORY, seed=1, progress=False)
    assert written == PER_CATEGORY * len(CATEGORIES)
    samples = metrics.load_sample_dir(str(tmp_path), net.hps.categories)
    assert all(len(seq) > 3 for seq in samples.strokes)
    network, names = rec_classifier.load_classifier(os.path.join(PRETRAINED, 'classifier-quickdraw3'))
    rec, _ = metrics.rec_score(network, names, samples.images, samples.category_ids, net.hps.categories)
    assert rec >= 0.5, rec


def test_the_shipped_rpclh_draws_its_two_level_hierarchy_maps(quickdraw3_dir, tmp_path):
    """RPCL-pix2seqH's picture: t-SNE maps of the codes coloured by Gaussian (level k) and by group (level l), from
    the shipped model's own labels; at least two groups and two Gaussians are alive."""
    net, test_set = family.load_model_and_test_split(os.path.join(PRETRAINED, 'rpclh-quickdraw3'), quickdraw3_dir)
    q_i, _ = net.group_weights()
    assert model.is_alive(q_i.numpy()).sum() >= 2 and model.is_alive(net.mixture_weights().numpy()).sum() >= 2
    sample_dir = str(tmp_path / 'sample')
    sampling.sample(net, test_set, sample_dir, num_per_category=PER_CATEGORY, seed=1, progress=False)
    samples = metrics.load_sample_dir(sample_dir, net.hps.categories)
    assert set(samples.gaussian_labels) == {'i_label', 'j_label'}
    paths = latent_map.visualise(samples, latent_map.gaussian_means(net), str(tmp_path / 'maps'), fast=True, seed=0)
    assert sorted(os.path.basename(p) for p in paths) == ['level_k.jpg', 'level_l.jpg', 'result.jpg']
    for path in paths:
        with Image.open(path) as image:
            assert min(image.size) >= 200


def test_the_shipped_spgra_heals_masked_sketches_the_classifier_recognises(quickdraw3_dir, tmp_path):
    """SP-gra2seq's healing (docs/spgra.md): 10 test sketches per category with their patches masked at p = 0.3 are
    redrawn whole, and the shipped classifier recognises the healed sketches well above chance (1/3); the uniforms
    file the run writes, given back, reproduces every mask."""
    net, test_set = family.load_model_and_test_split(os.path.join(PRETRAINED, 'spgra-quickdraw3'), quickdraw3_dir)
    first, again = str(tmp_path / 'first'), str(tmp_path / 'again')
    written, fraction = sketch_healing.heal(net, test_set, first, 0.3, num_per_category=PER_CATEGORY, seed=1,
                                            progress=False)
    assert written == PER_CATEGORY * len(CATEGORIES) and 0.2 < fraction < 0.4
    samples = metrics.load_sample_dir(first, net.hps.categories)
    network, names = rec_classifier.load_classifier(os.path.join(PRETRAINED, 'classifier-quickdraw3'))
    rec, _ = metrics.rec_score(network, names, samples.images, samples.category_ids, net.hps.categories)
    assert rec >= 0.5, rec
    sketch_healing.heal(net, test_set, again, 0.3, num_per_category=PER_CATEGORY, seed=2, progress=False,
                        mask_seed_file=os.path.join(first, sketch_healing.SEED_FILE))
    masks = sorted(name for name in os.listdir(first) if name.startswith('mask_'))
    assert len(masks) == written and masks == sorted(n for n in os.listdir(again) if n.startswith('mask_'))
    assert all(np.array_equal(np.load(os.path.join(first, name)), np.load(os.path.join(again, name)))
               for name in masks)

