"""visualization.py: placement maths, t-SNE keeping separated clusters apart, the images written for flat and
hierarchical labels, and one run of the command line on sketches of the tiny trained model."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import family
import latent_map
import metrics
import raster
import sampling


def test_normalise_maps_each_column_to_the_unit_interval():
    positions = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]])
    np.testing.assert_allclose(latent_map.normalise(positions), [[0, 0], [1, 0], [0.5, 0]])


def test_thumbnail_canvas_places_images_at_scaled_positions_and_keeps_the_darker_pixel():
    a = np.full((4, 4), 100, np.uint8)
    b = np.full((4, 4), 50, np.uint8)
    b[0, 0] = 200
    canvas = latent_map.thumbnail_canvas([a, b, a], np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]), (20, 10))
    assert canvas.shape == (10, 20, 3) and (canvas[..., 0] == canvas[..., 2]).all()
    grey = canvas[..., 0]
    assert (grey[:4, :4] == 100).all() and grey[4, 4] == 255
    assert grey[6, 16] == 100 and (grey[7:, 17:] == 50).all()      # (20 - 4) * 1, (10 - 4) * 1; min(100, 200)


def clustered_samples(num_per_cluster=12, hierarchical=False):
    """Samples with three well-separated code clusters in 8-D and bundled bee images as thumbnails."""
    rng = np.random.default_rng(0)
    means = np.array([[0.0] * 8, [20.0] * 8, [-20.0] + [0.0] * 7])
    cluster = np.repeat(np.arange(3), num_per_cluster)
    codes = (means[cluster] + rng.standard_normal((len(cluster), 8))).astype(np.float32)
    with np.load(os.path.join(os.path.dirname(__file__), '..', 'data', 'bee.npz'), allow_pickle=True,
                 encoding='latin1') as data:
        images = raster.render_fast(list(data['test'][:len(cluster)]), 48, workers=1)
    labels = {'j_label': cluster, 'i_label': cluster // 2} if hierarchical else {'gau_idx': cluster}
    names = [f'bee_{n}' for n in range(len(cluster))]
    return metrics.Samples(names, np.zeros(len(cluster), np.int64), images, codes, None, labels), means, cluster


def test_tsne_keeps_separated_clusters_apart():
    samples, means, cluster = clustered_samples(num_per_cluster=25)
    embedded = latent_map.tsne_embedding(samples.codes, seed=0)
    assert embedded.shape == (len(cluster), 2)
    distance = ((embedded[:, None] - embedded[None]) ** 2).sum(-1) + np.diag(np.full(len(cluster), np.inf))
    assert (cluster[distance.argmin(axis=1)] == cluster).all()
    np.testing.assert_allclose(latent_map.tsne_embedding(samples.codes, seed=0), embedded)
    assert latent_map.tsne_embedding(samples.codes[:3], fast=True, seed=0).shape == (3, 2)  # perplexity 2


@pytest.mark.parametrize('hierarchical', [False, True])
def test_visualise_writes_the_images(tmp_path, hierarchical):
    samples, means, _ = clustered_samples(hierarchical=hierarchical)
    paths = latent_map.visualise(samples, means, str(tmp_path), fast=True, seed=0)
    expected = ['result.jpg', 'level_k.jpg'] + (['level_l.jpg'] if hierarchical else [])
    assert [os.path.basename(p) for p in paths] == expected
    assert sorted(os.listdir(tmp_path)) == sorted(expected)
    assert Image.open(tmp_path / 'result.jpg').size == (2000, 1500)
    assert Image.open(tmp_path / 'level_k.jpg').format == 'JPEG'


def test_cli_on_generated_sketches(repo_dir, trained_model_dir, png_data_dir, tmp_path):
    net, test_set = family.load_model_and_test_split(trained_model_dir, png_data_dir)
    sampling.sample(net, test_set, str(tmp_path / 'sample'), num_per_category=6, seed=0, progress=False)
    assert latent_map.gaussian_means(net).shape == (4, net.hps.z_size)
    result = subprocess.run([sys.executable, os.path.join(repo_dir, 'visualization.py'),
                             f'--sample_dir={tmp_path / "sample"}', f'--model_dir={trained_model_dir}',
                             f'--output_dir={tmp_path / "out"}', '--fast', '--seed=0'],
                            capture_output=True, text=True, cwd=repo_dir, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / 'out')) == ['level_k.jpg', 'result.jpg']
    assert 'wrote' in result.stdout
