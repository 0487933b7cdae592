"""control.py: the alive rule, the calculator's formula and picture layout, the galleries (one tile row per alive
component), the calculators on the tiny trained model (s = 0 reproduces the plain decodes; a Gaussian-to-Gaussian
direction lands on the other mean; the analogy's codes), RPCL-pix2seqH groups, and visualization.py's modes."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_sample import untrained_model

import control
import family
import sampling
import tile_grids
import utils

SEED = 5
TILE = 32  # tile width of the pictures in these tests
STEP = TILE + tile_grids.GAP


def tile_at(picture, row, column, rows, columns):
    """The tile (row, column) of a labelled_grid picture of rows x columns tiles, located from its bottom-right
    corner (the labels sit above and left of the tiles)."""
    top = picture.shape[0] - (rows * STEP - tile_grids.GAP)
    left = picture.shape[1] - (columns * STEP - tile_grids.GAP)
    return picture[top + row * STEP:top + row * STEP + TILE, left + column * STEP:left + column * STEP + TILE, 0]


def read_png(path):
    return np.asarray(Image.open(path))


# ------------------------------------------------------------------------------------------------ pure functions

def test_alive_means_weight_above_a_tenth_of_uniform():
    np.testing.assert_array_equal(control.is_alive(np.array([0.5, 0.3, 0.176, 0.024])), [True, True, True, False])
    np.testing.assert_array_equal(control.is_alive(np.array([0.02, 0.98, 0.0, 0.0, 0.0])), [False, True, False,
                                                                                             False, False])


def test_shifted_codes_are_z_plus_s_times_the_direction():
    rng = np.random.default_rng(0)
    codes, direction, scales = rng.normal(size=(3, 5)), rng.normal(size=5), [-1.0, 0.0, 0.5, 2.0]
    shifted = control.shifted_codes(codes, direction, scales)
    assert shifted.shape == (3, 4, 5) and shifted.dtype == np.float32
    for n in range(3):
        for s, scale in enumerate(scales):
            np.testing.assert_allclose(shifted[n, s], codes[n] + scale * direction, rtol=1e-6)
    np.testing.assert_array_equal(shifted[:, 1], codes.astype(np.float32))


def test_labelled_grid_places_every_tile_after_the_label_margins():
    rows = [[np.full((TILE, TILE), 10 * (3 * r + c), np.uint8) for c in range(3)] for r in range(2)]
    plain = tile_grids.labelled_grid(rows)
    assert plain.shape == (2 * STEP - tile_grids.GAP, 3 * STEP - tile_grids.GAP, 3)
    labelled = tile_grids.labelled_grid(rows, ['row zero', 'row one, longer'], ['a', 'b', 'c'])
    assert labelled.shape[0] > plain.shape[0] and labelled.shape[1] > plain.shape[1]
    for picture in (plain, labelled):
        for r in range(2):
            for c in range(3):
                assert (tile_at(picture, r, c, 2, 3) == 10 * (3 * r + c)).all()
    assert (labelled[:, :labelled.shape[1] - plain.shape[1]] < 255).any()  # the row labels are drawn


def test_tile_grid_pads_the_last_row_with_white():
    images = [np.zeros((4, 4), np.uint8)] * 5
    grid = tile_grids.tile_grid(images, 3)
    assert [len(row) for row in grid] == [3, 3] and (grid[1][2] == 255).all() and (grid[1][1] == 0).all()


def test_mix_label_names_the_most_frequent_categories():
    component = control.Component('gaussian', 3, 0.4123, True)
    label = control.mix_label(component, {'bee': 8, 'bus': 0, 'cat': 2, 'car': 10})
    assert label == 'gaussian 3  w=0.412  wins 20: car 50%, bee 40%, cat 10%'
    assert control.mix_label(component, {'bee': 0}) == 'gaussian 3  w=0.412  wins 0'


# ------------------------------------------------------------------------------------------------ the tiny model

@pytest.fixture(scope='module')
def restored(trained_model_dir, png_data_dir):
    """The tiny trained RPCL-pix2seq (K = 4) with weights set so that Gaussians 0, 1, 3 are alive and 2 is dead."""
    net, test_set = family.load_model_and_test_split(trained_model_dir, png_data_dir)
    net.gmm.de_alpha.assign(np.array([[0.45], [0.35], [0.01], [0.19]], np.float32))
    return net, test_set


def test_gallery_has_one_tile_row_per_alive_component(restored, tmp_path):
    net, test_set = restored
    paths = control.gallery(net, test_set, str(tmp_path), num_per_component=5, columns=3, seed=SEED,
                            tile_width=TILE)
    names = ['gallery_gaussian_0.png', 'gallery_gaussian_1.png', 'gallery_gaussian_3.png', 'gallery_gaussians.png',
             'gallery.json']
    assert [os.path.basename(p) for p in paths] == names and sorted(os.listdir(tmp_path)) == sorted(names)
    overview = read_png(tmp_path / 'gallery_gaussians.png')
    assert overview.shape[0] == 3 * STEP - tile_grids.GAP                      # one row per alive Gaussian
    gap = tile_grids.GAP
    assert read_png(tmp_path / 'gallery_gaussian_1.png').shape[:2] == (2 * STEP - gap, 3 * STEP - gap)
    single = read_png(tmp_path / 'gallery_gaussian_3.png')
    for c in range(3):  # the overview row of Gaussian 3 is the first row of its own grid
        np.testing.assert_array_equal(tile_at(overview, 2, c, 3, 3), tile_at(single, 0, c, 2, 3))
    summary = json.loads((tmp_path / 'gallery.json').read_text())['components']
    assert [(c['index'], c['alive'], c['file']) for c in summary] == [
        (0, True, names[0]), (1, True, names[1]), (2, False, None), (3, True, names[2])]
    assert sum(sum(c['wins'].values()) for c in summary) == len(test_set.strokes)  # each test sketch wins one
    labels = net.gaussian_index(sampling.reference_encodings(net, test_set, np.arange(60), 60)[0]).numpy()
    assert summary[3]['wins']['bus'] == int(((labels == 3) & (test_set.labels == 1)).sum())
    again = tmp_path / 'again'
    control.gallery(net, test_set, str(again), num_per_component=5, columns=3, seed=SEED, tile_width=TILE)
    np.testing.assert_array_equal(read_png(again / 'gallery_gaussians.png'), overview)


def test_gallery_codes_are_draws_of_their_component(restored):
    net, _ = restored
    _, means, variances = sampling.latent_gaussians(net)
    z = control.component_codes(net, control.Component('gaussian', 3, 0.19, True), 200, np.random.default_rng(0))
    np.testing.assert_allclose(z.mean(axis=0), means[3], atol=4 * np.sqrt(variances[3].max() / 200))


def test_direction_with_scale_zero_reproduces_the_plain_decodes(restored, tmp_path):
    net, test_set = restored
    path, codes = control.direction_grid(net, test_set, str(tmp_path), 'bee', 'bus', 'bee:0,4,7', [0.0, 1.0],
                                         seed=SEED, tile_width=TILE)
    assert os.path.basename(path) == 'direction_bee_bus.png'
    rows = sampling.category_rows(test_set, 0)[[0, 4, 7]]
    mu, _ = sampling.reference_encodings(net, test_set, rows, 3)
    np.testing.assert_array_equal(codes[:, 0], mu)
    bee, bus = (sampling.reference_encodings(net, test_set, sampling.category_rows(test_set, i), 30)[0] for i in (0, 1))
    np.testing.assert_allclose(codes[:, 1], mu + (bus.mean(axis=0) - bee.mean(axis=0)), rtol=1e-5, atol=1e-5)
    drawer = control.Drawer(net, tile_width=TILE)
    plain = drawer.tiles(mu, SEED)
    real = drawer.real([test_set.strokes[r] for r in rows])
    picture = read_png(path)
    for n in range(3):
        np.testing.assert_array_equal(tile_at(picture, n, 0, 3, 3), real[n])     # the real sketch
        np.testing.assert_array_equal(tile_at(picture, n, 1, 3, 3), plain[n])    # s = 0: the plain decode, same seed
    with np.load(tmp_path / 'direction_bee_bus.npz') as saved:
        np.testing.assert_array_equal(saved['codes'], codes)
        assert list(saved['rows']) == ['bee:0', 'bee:4', 'bee:7']


def test_reconstruction_pairs_put_each_real_sketch_beside_the_decode_of_its_mean(restored, tmp_path):
    net, test_set = restored
    path, shown = control.reconstruction_pairs(net, test_set, str(tmp_path), pairs_per_category=3, seed=SEED,
                                               tile_width=TILE)
    assert os.path.basename(path) == 'pairs.png' and list(shown) == ['bee', 'bus']
    picture = read_png(path)
    drawer = control.Drawer(net, tile_width=TILE)
    for index, (category, picked) in enumerate(shown.items()):
        assert len(set(picked)) == 3 and all(0 <= i < 30 for i in picked)
        rows = sampling.category_rows(test_set, index)[picked]
        mu, _ = sampling.reference_encodings(net, test_set, rows, 3)
        drawn = drawer.tiles(mu, sampling.derive_seed(SEED, index))
        real = drawer.real([test_set.strokes[r] for r in rows])
        for n in range(3):
            np.testing.assert_array_equal(tile_at(picture, index, 2 * n, 2, 6), real[n])
            np.testing.assert_array_equal(tile_at(picture, index, 2 * n + 1, 2, 6), drawn[n])
    with pytest.raises(utils.UserError, match='pairs_per_category=0'):
        control.reconstruction_pairs(net, test_set, str(tmp_path), pairs_per_category=0)


def test_direction_from_one_gaussian_mean_lands_on_another(restored, tmp_path):
    net, test_set = restored
    _, means, _ = sampling.latent_gaussians(net)
    _, codes = control.direction_grid(net, test_set, str(tmp_path), 'gaussian:0', 'gaussian:3', 'gaussian:0',
                                      [0.0, 0.5, 1.0], seed=SEED, tile_width=TILE)
    np.testing.assert_array_equal(codes[0, 0], means[0])
    np.testing.assert_allclose(codes[0, 2], means[3], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(codes[0, 1], (means[0] + means[3]) / 2, rtol=1e-6, atol=1e-6)
    # no real sketch
    assert (tile_at(read_png(tmp_path / 'direction_gaussian-0_gaussian-3.png'), 0, 0, 1, 4) == 255).all()


def test_analogy_decodes_c_plus_b_minus_a(restored, tmp_path):
    net, test_set = restored
    path, codes = control.analogy_grid(net, test_set, str(tmp_path), ['bee:1,bus:2,bee:3', 'bus:0,gaussian:1,bus:5'],
                                       seed=SEED, tile_width=TILE)
    bee, bus = (sampling.reference_encodings(net, test_set, sampling.category_rows(test_set, i), 30)[0] for i in (0, 1))
    _, means, _ = sampling.latent_gaussians(net)
    np.testing.assert_allclose(codes[0], [bee[1], bus[2], bee[3], bee[3] + bus[2] - bee[1]], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(codes[1, 3], bus[5] + means[1] - bus[0], rtol=1e-5, atol=1e-5)
    picture = read_png(path)
    drawer = control.Drawer(net, tile_width=TILE)
    np.testing.assert_array_equal(tile_at(picture, 0, 0, 2, 7), drawer.real([test_set.strokes[1]])[0])  # bee 1
    assert (tile_at(picture, 1, 1, 2, 7) == 255).all()                                # a Gaussian has no sketch
    np.testing.assert_array_equal(tile_at(picture, 1, 6, 2, 7), drawer.tiles(codes[:, 3], SEED)[1])


@pytest.mark.parametrize('spec, message', [
    ('bee:30', 'bee:30 is out of range: bee has 30 test sketches'),
    ('horse:1', "'horse' is not one of the model's categories (bee, bus)"),
    ('gaussian:4', 'gaussian:4 is out of range: the model has 4 gaussians'),
    ('group:0', 'has no groups'),
    ('bee:1,x', "cannot read the latent point 'bee:1,x'"),
])
def test_bad_latent_points(restored, tmp_path, spec, message):
    net, test_set = restored
    with pytest.raises(utils.UserError, match=re.escape(message)):
        control.direction_grid(net, test_set, str(tmp_path), spec, 'bus', 'bee:0', [1.0], tile_width=TILE)


def test_bad_analogies(restored, tmp_path):
    net, test_set = restored
    for analogy, message in (('bee:0,bus:1', 'needs three points'), ('bee:0,bus:1,cat:2', "'cat' is not one")):
        with pytest.raises(utils.UserError, match=message):
            control.analogy_grid(net, test_set, str(tmp_path), [analogy], tile_width=TILE)
    with pytest.raises(utils.UserError, match='an analogy term is one point'):
        control.single_point('bee:0+bus:1', net, test_set, control.Drawer(net, tile_width=TILE))


# ------------------------------------------------------------------------------------------------ RPCL-pix2seqH

def test_rpclh_galleries_of_gaussians_and_groups(png_data_dir, tmp_path):
    net, test_set = untrained_model('rpclh', png_data_dir, num_layer_i=3, num_layer_j=3)
    net.gmm.de_i.assign(np.array([[0.6], [0.39], [0.01]], np.float32))  # group 2 dead
    q_i, q_ji = control.group_weights(net)
    _, means, _ = sampling.latent_gaussians(net)
    np.testing.assert_allclose(control.component_mean(net, 'group', 1), q_ji[:, 1] @ means, rtol=1e-6)
    paths = control.gallery(net, test_set, str(tmp_path), num_per_component=2, columns=2, seed=SEED, tile_width=TILE)
    names = {os.path.basename(p) for p in paths}
    alive_j = np.flatnonzero(control.is_alive(sampling.latent_gaussians(net)[0]))
    assert names == ({f'gallery_gaussian_{j}.png' for j in alive_j} | {'gallery_group_0.png', 'gallery_group_1.png',
                                                                         'gallery_gaussians.png', 'gallery_groups.png',
                                                                         'gallery.json'})
    assert read_png(tmp_path / 'gallery_groups.png').shape[0] == 2 * STEP - tile_grids.GAP
    summary = json.loads((tmp_path / 'gallery.json').read_text())['components']
    groups = [c for c in summary if c['kind'] == 'group']
    assert sum(sum(c['wins'].values()) for c in groups) == len(test_set.strokes)


def test_ia_gallery_labels_by_harmony_weights(png_data_dir, tmp_path):
    net, test_set = untrained_model('ia', png_data_dir, num_mixture=2, num_sub=1)
    control.gallery(net, test_set, str(tmp_path), num_per_component=1, columns=1, seed=SEED, tile_width=TILE)
    mu, sigma2 = sampling.reference_encodings(net, test_set, np.arange(len(test_set.strokes)), 60)
    labels = net.labels(mu, mu, sigma2)['gau_idx'].numpy()
    summary = json.loads((tmp_path / 'gallery.json').read_text())['components']
    assert [sum(c['wins'].values()) for c in summary] == [int((labels == k).sum()) for k in range(2)]


def test_sketch_rnn_has_no_gallery_but_sketch_analogies(png_data_dir, tmp_path):
    net, test_set = untrained_model('sketch_rnn', png_data_dir)
    with pytest.raises(utils.UserError, match='sketch_rnn model has no latent mixture'):
        control.gallery(net, test_set, str(tmp_path), tile_width=TILE)
    _, codes = control.analogy_grid(net, test_set, str(tmp_path), ['bee:0,bus:0,bee:1'], tile_width=TILE)
    np.testing.assert_allclose(codes[0, 3], codes[0, 2] + codes[0, 1] - codes[0, 0], rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------ command line

def run_cli(repo_dir, *args):
    return subprocess.run([sys.executable, os.path.join(repo_dir, 'visualization.py'), *args], capture_output=True,
                          text=True, cwd=repo_dir, timeout=300)


def test_cli_modes(repo_dir, trained_model_dir, png_data_dir, tmp_path):
    common = [f'--model_dir={trained_model_dir}', f'--data_dir={png_data_dir}', '--seed=1', '--tile_width=32']
    result = run_cli(repo_dir, '--mode=analogy', *common, f'--output_dir={tmp_path}', '--analogy=bee:0,bus:0,bee:1',
                     '--analogy=bus:1,bee:1,bus:2')
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ['analogy.npz', 'analogy.png'] and 'seed 1' in result.stdout
    result = run_cli(repo_dir, '--mode=direction', *common, '--direction_from=bee', '--scales=0,x')
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert result.returncode == 1 and errors == ['error: --mode=direction needs --direction_to, --apply_to'], \
        result.stderr
    assert 'Traceback' not in result.stderr
