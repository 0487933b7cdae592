"""SP-gra2seq: patch graphs of real sketches against a point-by-point transcription of docs/model.md#patch-graph, the
adjacency and clustering maths against NumPy, a few training steps on the bundled data with small patches, and sketch
healing at mask probabilities 0.1 and 0.3 scored by retrieval.py."""
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import control
import dataset
import family
import hyperparams
import metrics
import model_spgra
import raster
import sample
import sampling
import sketch_healing
import spgra_data
import tile_grids
import training
import utils

TINY_SPGRA = ('model_type=spgra, categories=[bee,bus], dec_rnn_size=32, dec_model=lstm, z_size=16, batch_size=8, '
              'num_per_category=16, graph_picture_size=16, num_clusters=8, use_recurrent_dropout=false')


@pytest.fixture(scope='module')
def sets(data_dir):
    """(train, valid, test) graph loaders of the bundled bee and bus sketches at the default graph size."""
    hps = hyperparams.HParams(model_type='spgra', categories=['bee', 'bus'])
    return spgra_data.load_graph_dataset(data_dir, hps)[:3]


# ------------------------------------------------------------------------------------------------ graph construction

def reference_graph(seq, graph_number, patch, mask_prob=0.0, uniforms=()):
    """docs/model.md#patch-graph step by step: one cv2.line per drawn point, the patch centres and masks in a loop over
    the points."""
    vertical = np.cumsum(seq[1:], axis=0)
    longer = max(int(vertical[:, 0].max() - vertical[:, 0].min()), int(vertical[:, 1].max() - vertical[:, 1].min()))
    seq = (seq / np.array([[longer, longer, 1]], np.float64) * np.array([[640, 640, 1]], np.float64)).astype(np.int16)
    vertical = np.cumsum(seq[1:], axis=0)
    (xmin, ymin, _), (xmax, ymax, _) = vertical.min(axis=0), vertical.max(axis=0)
    start = np.array([int(-xmin - seq[0][0]) + 17, int(-ymin - seq[0][1]) + 17])
    side = max(int(xmax - xmin), int(ymax - ymin)) + 34
    canvas = np.zeros((side, side), np.uint8)
    pen, move = start.copy(), False
    for dx, dy, p in seq.tolist():
        if move:
            pen, move = pen + (dx, dy), False
            continue
        cv2.line(canvas, tuple(pen.tolist()), tuple((pen + (dx, dy)).tolist()), 255, thickness=16)
        move = p != 0
        pen = pen + (dx, dy)
    border = int(patch * 1.5)
    canvas = np.pad(canvas, border)
    centres, pen, move, count = [], start + border, False, 0
    for dx, dy, p in seq.tolist():
        if move:
            pen, move = pen + (dx, dy), False
            continue
        if count % 4 == 0:
            if len(centres) == graph_number - 1:
                break
            centres.append(pen.copy())
        count += 1
        if p != 0:
            count, move = 0, True
        pen = pen + (dx, dy)
    half = patch // 2
    masked = [k for k in range(len(centres)) if mask_prob > 0 and uniforms[k] < mask_prob]
    for k in masked:
        x, y = centres[k]
        canvas[y - half:y + half, x - half:x + half] = 0
    nodes = np.zeros((graph_number, patch, patch), np.uint8)
    nodes[0] = cv2.resize(canvas[border:border + side, border:border + side], (patch, patch))
    for k, (x, y) in enumerate(centres):
        nodes[k + 1] = canvas[y - half:y + half, x - half:x + half]
    return nodes, len(centres), masked, [(x - half, y - half) for x, y in centres]


@pytest.mark.parametrize('patch, mask_prob', [(256, 0.0), (64, 0.3)])
def test_graphs_of_real_sketches_match_the_point_by_point_reference(sets, patch, mask_prob):
    rng = np.random.default_rng(0)
    counts = []
    for seq in sets[0].strokes[::23]:
        uniforms = rng.random(20)
        nodes, n, masked = spgra_data.make_graph(seq, 21, patch, mask_prob, uniforms)
        ref_nodes, ref_n, ref_masked, _ = reference_graph(seq, 21, patch, mask_prob, uniforms)
        assert (n, masked) == (ref_n, ref_masked)
        np.testing.assert_array_equal(nodes, ref_nodes)
        counts.append(n)
    assert max(counts) == 20 and min(counts) < 20  # sketches at the cap and below it


def test_masked_squares_are_blank_in_every_node_before_cropping(sets):
    seq = sets[0].strokes[5]
    uniforms = np.tile([0.0, 0.9], 10)  # mask every other patch
    nodes, n, masked = spgra_data.make_graph(seq, 21, 64, 0.5, uniforms)
    clean, _, _ = spgra_data.make_graph(seq, 21, 64)
    _, _, _, corners = reference_graph(seq, 21, 64)
    assert masked == list(range(0, n, 2))
    for k in masked:
        assert not nodes[k + 1].any()
    overlaps = 0
    for j in set(range(n)) - set(masked):
        xj, yj = corners[j]
        inside = np.zeros((64, 64), bool)
        for k in masked:
            xk, yk = corners[k]
            inside[max(yk - yj, 0):max(yk - yj + 64, 0), max(xk - xj, 0):max(xk - xj + 64, 0)] = True
        assert not nodes[j + 1][inside].any()                # no masked pixel leaks into a neighbour's crop
        np.testing.assert_array_equal(nodes[j + 1][~inside], clean[j + 1][~inside])
        overlaps += int(clean[j + 1][inside].any())
    assert overlaps > 0                                      # some neighbours did have ink there before masking
    assert clean[0].sum() > nodes[0].sum()                   # the whole-sketch node is masked too


def test_validity_mask_has_the_off_by_one_block_and_blank_masked_rows():
    full = spgra_data.validity_mask(20, [], 21)
    assert full.shape == (20, 20) and full.all()
    quirk = spgra_data.validity_mask(5, [2], 21)
    expected = np.zeros((20, 20), np.float32)
    expected[:6, :6] = 1
    expected[2, :] = expected[:, 2] = 0
    np.testing.assert_array_equal(quirk, expected)
    fixed = spgra_data.validity_mask(5, [2], 21, fix=True)
    expected[5, :] = expected[:, 5] = 0
    np.testing.assert_array_equal(fixed, expected)


def test_each_split_is_divided_by_its_own_pen_inclusive_std(data_dir, sets):
    raw = dataset.load_strokes_npz(dataset.category_npz_path(data_dir, 'bee'))['test']
    raw += dataset.load_strokes_npz(dataset.category_npz_path(data_dir, 'bus'))['test']
    test = sets[2]
    assert test.scale_factor == pytest.approx(np.std(np.concatenate(raw).astype(np.float64)))
    assert sets[0].scale_factor != pytest.approx(test.scale_factor)
    np.testing.assert_allclose(test.strokes[0][:, 0:2], raw[0][:, 0:2] / test.scale_factor, rtol=1e-6)
    hps = hyperparams.HParams(model_type='spgra', categories=['bee', 'bus'], fix_sp_scale=True)
    fixed = spgra_data.load_graph_dataset(data_dir, hps)
    assert fixed[2].scale_factor == fixed[0].scale_factor


def test_prefetched_epoch_equals_the_plain_epoch(data_dir):
    hps = hyperparams.HParams(model_type='spgra', categories=['bee'], graph_picture_size=16, batch_size=16,
                        num_per_category=64, mask_prob=0.3)
    loader = spgra_data.load_graph_dataset(data_dir, hps)[0]
    prefetched = list(loader.epoch(np.random.default_rng(3)))
    plain = list(dataset.DataLoader.epoch(loader, np.random.default_rng(3)))
    assert len(prefetched) == len(plain) == loader.num_batches == 3
    for a, b in zip(prefetched, plain):
        np.testing.assert_array_equal(a.strokes, b.strokes)
        np.testing.assert_array_equal(a.graphs[0], b.graphs[0])
        np.testing.assert_array_equal(a.graphs[1], b.graphs[1])
    unmasked = spgra_data.load_graph_dataset(data_dir, hps.replace(mask_prob=0.0))[0]
    clean = list(unmasked.epoch(np.random.default_rng(3)))
    assert any((a.graphs[0] != b.graphs[0]).any() for a, b in zip(plain, clean))  # training batches are masked


def test_healing_masks_follow_the_seed_stream_and_a_user_file(tmp_path, sets):
    sketches = sets[2].strokes[:6]
    counts = [spgra_data.patch_count(seq, 21) for seq in sketches]
    seeds = spgra_data.mask_seeds(sum(counts))
    np.testing.assert_array_equal(seeds, np.random.default_rng(spgra_data.MASK_SEED).random(sum(counts)))
    hps = hyperparams.HParams(model_type='spgra', graph_picture_size=32)
    graphs = spgra_data.healing_graphs(sketches, hps, 0.3, seeds)
    first = np.cumsum([0] + counts)
    for i in range(6):  # the seed index is carried from sketch to sketch
        assert graphs.masked[i] == np.flatnonzero(seeds[first[i]:first[i + 1]] < 0.3).tolist()
    path = tmp_path / 'seeds.npy'
    np.save(path, np.zeros(sum(counts)))
    everything = spgra_data.healing_graphs(sketches, hps, 0.3, spgra_data.mask_seeds(sum(counts), str(path)))
    assert [len(m) for m in everything.masked] == counts
    with pytest.raises(utils.UserError, match='needs'):
        spgra_data.mask_seeds(sum(counts) + 1, str(path))


@pytest.mark.parametrize('override, message', [('graph_picture_size=48', 'power of two'),
                                               ('graph_picture_size=512', 'power of two'),
                                               ('num_clusters=200', 'num_clusters')])
def test_bad_graph_hparams_are_user_errors(override, message):
    hps = hyperparams.get_default_hparams().parse(TINY_SPGRA).parse(override)
    with pytest.raises(utils.UserError, match=message):
        model_spgra.SPGra2Seq(hps)


# ------------------------------------------------------------------------------------------------ graph maths

def numpy_cosine(a, b):
    return a @ b.swapaxes(-1, -2) / (np.linalg.norm(a, axis=-1)[..., :, None]
                                     * np.linalg.norm(b, axis=-1)[..., None, :] + 1e-30)


def test_adjacency_matches_numpy_top3_weights_and_row_normalisation():
    rng = np.random.default_rng(4)
    patches = rng.uniform(0.0, 1.0, (2, 20, 8)).astype(np.float32)  # positive: the top 3 are self + the 2 best
    validity = np.stack([spgra_data.validity_mask(20, [], 21), spgra_data.validity_mask(7, [0, 3], 21)])
    got = model_spgra.adjacency(tf.constant(patches), tf.constant(validity)).numpy()
    s = numpy_cosine(patches, patches)
    a = np.zeros_like(s)
    for b in range(2):
        for i in range(20):
            for weight, j in zip((1.0, 0.5, 0.2), np.argsort(-s[b, i], kind='stable')[:3]):
                a[b, i, j] = weight * s[b, i, j]
    full = np.zeros((2, 21, 21))
    full[:, 0, 0] = 1.0
    full[:, 1:, 0] = 0.5 * validity[:, :, 0]
    full[:, 1:, 1:] = a * validity
    expected = full / (full.sum(axis=2, keepdims=True) + 1e-10)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert not got[1, 1:, 0].any()        # patch 0 masked: no patch links to the whole sketch
    assert not got[1, 4].any()            # masked patch 3 has no links at all
    np.testing.assert_allclose(got[1, 1:9].sum(axis=1)[[1, 2, 4, 5, 6, 7]], 1.0, rtol=1e-6)


def test_neighbour_weights_repeat_a_winner_when_the_rest_is_negative():
    s = tf.constant([[1.0, -0.2, -0.5], [0.3, 1.0, 0.6]])
    got = model_spgra.neighbour_weights(s).numpy()
    # row 0: with the winner zeroed, 0 beats both negatives, so w2 = w1; then S - 2 S = -1 there and w3 = index 1
    np.testing.assert_allclose(got[0], [1.0 * (1 + 0.5), -0.2 * 0.2, 0.0])
    np.testing.assert_allclose(got[1], [0.3 * 0.2, 1.0, 0.6 * 0.5])


def test_one_clustering_update_matches_numpy():
    rng = np.random.default_rng(5)
    patches = rng.normal(size=(12, 6)).astype(np.float32)
    centroids = rng.normal(size=(3, 6)).astype(np.float32)
    valid = (rng.random(12) < 0.7).astype(np.float32)
    assign = model_spgra.assign_clusters(tf.constant(patches), tf.constant(centroids)).numpy()
    winner = numpy_cosine(patches, centroids).argmax(axis=1)
    np.testing.assert_array_equal(assign, np.eye(3)[winner])
    new = model_spgra.update_centroids(tf.constant(patches), tf.constant(assign), tf.constant(valid),
                                       tf.constant(centroids)).numpy()
    for k in range(3):
        members = (winner == k) & (valid > 0)
        c_hat = patches[members].mean(axis=0) if members.any() else np.zeros(6)
        np.testing.assert_allclose(new[k], 0.75 * centroids[k] + 0.25 * c_hat, rtol=1e-5, atol=1e-6)
    loss = model_spgra.clustering_loss(tf.constant(patches), tf.constant(assign), tf.constant(valid),
                                       tf.constant(new)).numpy()
    expected = (valid * 0.5 * ((patches - new[winner]) ** 2).sum(axis=1)).sum() / valid.sum()
    assert loss == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------------------------------------ training

@pytest.fixture(scope='module')
def spgra_dir(tmp_path_factory, data_dir):
    """--log_root of a tiny SP-gra2seq (16-px patches) trained for one epoch (3 steps) on bee and bus."""
    log_root = str(tmp_path_factory.mktemp('spgra_model'))
    hps, *loaders = training.prepare_run(log_root, data_dir, TINY_SPGRA, resume=False)
    result = training.train_and_evaluate(hps, loaders, log_root, seed=0, max_epochs=1)
    assert result['step'] == 3 and result['epoch'] == 1
    assert np.isfinite(result['history'][0]['train']['cluster_loss'])
    return log_root


def test_first_step_starts_the_centroids_from_the_batch_and_updates_them(data_dir):
    tf.random.set_seed(0)
    hps = hyperparams.get_default_hparams().parse(TINY_SPGRA)
    loader, *_, hps = spgra_data.load_graph_dataset(data_dir, hps)
    net = model_spgra.SPGra2Seq(hps)
    batch = loader.batch_from_indices(np.arange(8), np.random.default_rng(0))
    nodes, validity = batch.graphs
    _, _, patches, _ = net.encoder(tf.constant(nodes), tf.constant(validity), training=True)
    patches = patches.numpy().reshape(-1, model_spgra.EMBED)
    first = patches[:8]
    winner = numpy_cosine(patches, first).argmax(axis=1)
    valid = validity[:, :, 0].reshape(-1)
    c_hat = np.stack([patches[(winner == k) & (valid > 0)].mean(axis=0) if ((winner == k) & (valid > 0)).any()
                      else np.zeros(model_spgra.EMBED) for k in range(8)])
    out = net.train_step(tf.constant(batch.strokes), (tf.constant(nodes), tf.constant(validity)),
                         tf.constant(0, tf.int64), tf.constant([0, 0], tf.int64))
    assert bool(net.centroids_ready.numpy())
    np.testing.assert_allclose(net.latent_centroids.numpy(), 0.75 * first + 0.25 * c_hat, rtol=1e-4, atol=1e-4)
    assert out['loss'].numpy() == pytest.approx(out['lil_loss'].numpy() + 0.25 * out['cluster_loss'].numpy())
    assert net.encoder.node_norm.moving_mean.numpy().any()  # batch-norm averages moved


def test_the_trained_model_restores_with_its_centroids(spgra_dir):
    net, hps = family.restore_model(spgra_dir)
    assert hps.model_type == 'spgra' and hps.graph_picture_size == 16
    assert bool(net.centroids_ready.numpy())
    assert net.encoder.graph_norm.moving_variance.numpy().min() > 0


# ------------------------------------------------------------------------------------------------ healing

@pytest.mark.parametrize('prob', [0.1, 0.3])
def test_healing_writes_outputs_that_retrieval_scores(spgra_dir, data_dir, tmp_path, prob):
    net, hps = family.restore_model(spgra_dir)
    test_set = spgra_data.load_graph_dataset(data_dir, hps)[2]
    out = str(tmp_path / f'heal_{prob}')
    total, fraction = sketch_healing.heal(net, test_set, out, prob, num_per_category=6, seed=1, progress=False)
    assert total == 12 and 0.0 < fraction < 2 * prob
    for name in ('bee_0', 'bus_5'):
        for pattern in ('{}.png', '{}.svg', 'strokes_{}.npy', 'code_{}.npy', 'masked_code_{}.npy', 'mask_{}.npy',
                        'masked_{}.png'):
            assert os.path.isfile(os.path.join(out, pattern.format(name)))
    masks = [np.load(os.path.join(out, f'mask_bee_{n}.npy')) for n in range(6)]
    counts = [spgra_data.patch_count(test_set.strokes[n], hps.graph_number) for n in range(6)]
    seeds = np.load(os.path.join(out, sketch_healing.SEED_FILE))
    first = np.cumsum([0] + counts)
    for n in range(6):
        np.testing.assert_array_equal(masks[n], np.flatnonzero(seeds[first[n]:first[n + 1]] < prob))
    real = sketch_healing.compile_graph_encoder(net)(spgra_data.hps_graphs(test_set.strokes[:1], hps))
    np.testing.assert_allclose(np.load(os.path.join(out, 'code_bee_0.npy')), real, rtol=1e-5, atol=1e-6)
    samples = metrics.load_sample_dir(out, hps.categories)
    scores = metrics.ret_scores(samples.codes, metrics.encode_generated(net, samples, out))
    assert set(scores) == {1, 10, 50} and all(0.0 <= v <= 1.0 for v in scores.values())
    assert scores[50] == 1.0  # 12 sketches: every one is within the 50 nearest


def test_healing_rejects_a_probability_outside_0_1(spgra_dir, data_dir, tmp_path):
    net, hps = family.restore_model(spgra_dir)
    test_set = spgra_data.load_graph_dataset(data_dir, hps)[2]
    with pytest.raises(utils.UserError, match=r'--prob=1.5 must be a probability in \[0, 1\]'):
        sketch_healing.heal(net, test_set, str(tmp_path), 1.5, progress=False)


def test_cli_heals(repo_dir, spgra_dir, data_dir, tmp_path):
    out = str(tmp_path / 'heal')
    healed = subprocess.run([sys.executable, os.path.join(repo_dir, 'sample.py'), f'--data_dir={data_dir}',
                             f'--model_dir={spgra_dir}', f'--output_dir={out}', '--prob=0.3', '--num_per_category=3',
                             '--seed=2'], cwd=repo_dir, capture_output=True, text=True)
    assert healed.returncode == 0, healed.stderr
    assert 'healed 6 sketches (mask probability 0.3' in healed.stdout
    assert sorted(metrics.sketch_numbers(out, 'bus')) == [0, 1, 2]
    pictured = subprocess.run([sys.executable, os.path.join(repo_dir, 'visualization.py'), '--mode=healing',
                               f'--model_dir={spgra_dir}', f'--data_dir={data_dir}', f'--sample_dir={out}',
                               '--pairs_per_category=3', '--tile_width=32', f'--output_dir={tmp_path}'],
                              cwd=repo_dir, capture_output=True, text=True)
    assert pictured.returncode == 0, pictured.stderr
    picture = np.asarray(Image.open(tmp_path / 'healing.png').convert('L'))
    step = 32 + tile_grids.GAP
    top, left = picture.shape[0] - (2 * step - tile_grids.GAP), picture.shape[1] - (9 * step - tile_grids.GAP)

    def tile(row, column):   # the grid of 2 x 9 tiles sits at the bottom right, after the labels
        return picture[top + row * step:top + row * step + 32, left + column * step:left + column * step + 32]

    _, _, test_set, hps = family.load_splits(data_dir, family.restore_model(spgra_dir)[1])
    for row, category in enumerate(hps.categories):
        for n in range(3):
            original, masked, healed = (tile(row, 3 * n + k) for k in range(3))
            sketch = test_set.strokes[sampling.category_rows(test_set, row)[n]]
            assert (original == raster.render_fast([sketch], 32, workers=1)[0]).all()
            assert (masked >= original).all()   # the original with the masked squares whitened
            assert len(np.load(os.path.join(out, f'mask_{category}_{n}.npy'))) or (masked == original).all()
            strokes = np.load(os.path.join(out, f'strokes_{category}_{n}.npy'))
            assert (healed == raster.render_fast([strokes], 32, workers=1)[0]).all()


def test_the_healing_picture_needs_a_healing_directory_of_the_same_masks(spgra_dir, data_dir, tmp_path):
    """A plain directory, or one healed with other graph settings (the same mask indices would place other squares),
    is a one-line UserError, not a wrong picture."""
    net, test_set = family.load_model_and_test_split(spgra_dir, data_dir)
    healed = str(tmp_path / 'healed')
    sketch_healing.heal(net, test_set, healed, 0.3, num_per_category=2, seed=1, progress=False)
    with pytest.raises(utils.UserError, match='is not a healing directory'):
        control.healing_triplets(str(tmp_path), net.hps, test_set, str(tmp_path / 'pictures'))
    other = net.hps.replace(graph_picture_size=2 * net.hps.graph_picture_size)
    with pytest.raises(utils.UserError, match="was healed with the masks of .* not with those of --model_dir"):
        control.healing_triplets(healed, other, test_set, str(tmp_path / 'pictures'))
    assert not os.path.exists(tmp_path / 'pictures')
    assert os.path.isfile(control.healing_triplets(healed, net.hps, test_set, str(tmp_path / 'pictures'),
                                                   per_category=2, tile_width=32))


@pytest.mark.parametrize('model_type, flags, message', [
    ('rpcl', dict(prob=0.3), 'heal sketches with an spgra model, or with an image model given --mask_model_dir; this '
                             'model is rpcl'),
    ('sketch_rnn', dict(mask_model_dir='x'), 'this model is sketch_rnn'),
    ('spgra', dict(mask_model_dir='x'), '--mask_model_dir is for an image model'),
    ('spgra', dict(mode='interpolate'), 'only heals sketches'),
])
def test_healing_flags_are_checked_against_the_model(model_type, flags, message):
    cfg = types.SimpleNamespace(**{**dict(mode='sample', prob=None, mask_seed_file=None, mask_model_dir=None), **flags})
    encoder_input = {'spgra': 'graph', 'sketch_rnn': 'strokes'}.get(model_type, 'image')
    net = types.SimpleNamespace(hps=types.SimpleNamespace(model_type=model_type), encoder_input=encoder_input)
    with pytest.raises(utils.UserError, match=message):
        sample.heal_from_flags(cfg, net, None, 'conditional', 0)


def test_the_fitted_canvas_map_recovers_a_scale_and_shift():
    canvas = np.array([[0, 0], [10, 0], [10, 20], [3, 7]], np.float64)
    a, b = sketch_healing.fit_canvas_to_render(canvas, 0.25 * canvas + [4, -2])
    assert a == pytest.approx(0.25) and b.tolist() == pytest.approx([4, -2])


def test_an_image_model_heals_the_same_masks_as_the_spgra_model(spgra_dir, png_data_dir, tmp_path):
    """The healing baseline: an image model given the seq2png image of each test sketch with the spgra model's
    masked squares whitened. Its masks are the spgra model's own (the same uniforms, graph settings and
    normalisation), the masked images lose ink only, and retrieval reads the outputs."""
    spgra_net, spgra_hps = family.restore_model(spgra_dir)
    _, _, spgra_test, spgra_hps = family.load_splits(png_data_dir, spgra_hps)
    hps = hyperparams.get_default_hparams().replace(categories=['bee', 'bus'], dec_model='lstm', dec_rnn_size=16,
                                                    z_size=8, num_mixture=2, num_sub=2,
                                                    num_per_category=spgra_hps.num_per_category)
    _, _, test_set, hps = dataset.load_dataset(png_data_dir, hps)
    net = family.build_model(hps)
    graph_dir, image_dir = str(tmp_path / 'graph'), str(tmp_path / 'image')
    sketch_healing.heal(spgra_net, spgra_test, graph_dir, 0.5, num_per_category=4, seed=1, progress=False)
    done, fraction = sketch_healing.heal(net, test_set, image_dir, 0.5, num_per_category=4, seed=1, progress=False,
                                         mask_model=(spgra_hps, spgra_test))
    assert done == 8 and fraction > 0
    whitened = 0
    for category in ('bee', 'bus'):
        for n in range(4):
            masks = [np.load(os.path.join(d, f'mask_{category}_{n}.npy')) for d in (graph_dir, image_dir)]
            assert masks[0].tolist() == masks[1].tolist()
            masked = np.asarray(Image.open(os.path.join(image_dir, f'masked_{category}_{n}.png')))[..., 0]
            full = raster.render_fast([spgra_test.strokes[sampling.category_rows(spgra_test, hps.categories.index(
                category))[n]]], hps.png_width, workers=1)[0]
            assert (masked >= full).all()   # whitening only removes ink
            assert len(masks[1]) or (masked == full).all()
            whitened += int((masked > full).sum())
    assert whitened > 0
    samples = metrics.load_sample_dir(image_dir, hps.categories)
    assert metrics.encode_generated(net, samples, image_dir).shape == (8, hps.z_size)
    assert sampling.read_config(image_dir)['mask_graph'] == dict(graph_number=spgra_hps.graph_number,
                                                                 graph_picture_size=spgra_hps.graph_picture_size)


def test_length_buckets_pad_graph_batches_to_their_bucket(data_dir):
    """bucket_width > 0 with SP-gra2seq: every training batch is padded to its bucket's length and keeps its graphs."""
    hps = hyperparams.HParams(model_type='spgra', categories=['bee', 'bus'], batch_size=16, graph_picture_size=16,
                              bucket_width=16)
    train_set = spgra_data.load_graph_dataset(data_dir, hps)[0]
    batches = list(train_set.epoch(np.random.default_rng(0)))
    assert len(batches) == train_set.num_batches
    for batch in batches:
        longest = int(batch.lengths.max())
        assert batch.strokes.shape[1] - 1 == min(-(-longest // 16) * 16, train_set.max_seq_len)
        assert batch.graphs[0].shape == (16, hps.graph_number, 16, 16)
