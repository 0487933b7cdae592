"""The library under the programs: hparams (hyperparams.py), the program skeleton (program.py), safe writing
(utils.py), loading, stroke formats, augmentation and batching (dataset.py), against docs/model.md#data by hand and
against small NumPy references."""
import json
import os
import re

import cv2
import numpy as np
import pytest
from absl import flags

import dataset
import hyperparams
import program
import utils

# ---------------------------------------------------------------------------------------------------- hparams

def test_defaults_follow_the_readme_table():
    hps = hyperparams.get_default_hparams()
    assert hps.categories == ['bee', 'bus'] and hps.batch_size == 128 and hps.dec_model == 'hyper'
    assert hps.max_seq_len == -1 and hps.num_mixture == 5 and hps.num_sub == 2 and hps.dec_rnn_size == 2048
    assert hps.png_scale_ratio == 0.98 and hps.png_rotate_angle == 0.0 and hps.num_per_category == 70000
    assert hps.model_type == 'rpcl' and hps.init == 'original' and hps.fix_png_rescale is False
    assert isinstance(hps.png_rotate_angle, float) and isinstance(hps.use_recurrent_dropout, bool)


def test_the_hparams_page_lists_every_hparam_once_with_its_default(repo_dir):
    """docs/hparams.md groups the table of hyperparams.py for reading; it must not drift from it."""
    with open(os.path.join(repo_dir, 'docs', 'hparams.md'), encoding='utf-8') as f:
        rows = re.findall(r'^\| `(\w+)` \| ([^|]*) \|', f.read(), re.M)

    def shown(value):
        if isinstance(value, bool):
            return str(value).lower()
        return '[' + ', '.join(value) + ']' if isinstance(value, list) else str(value)

    assert sorted(name for name, _ in rows) == sorted(name for name, _, _ in hyperparams._HPARAMS)
    assert {name: default.strip() for name, default in rows} == {
        name: shown(default) for name, default, _ in hyperparams._HPARAMS}


def test_parse_original_grammar():
    hps = hyperparams.get_default_hparams()
    out = hps.parse("categories=[bee, bus,'car'], dec_model=lstm, batch_size = 64, learning_rate=1e-3, "
                    "use_recurrent_dropout=False, conditional=0, png_rotate_angle=5, init=he,")
    assert out is hps
    assert hps.categories == ['bee', 'bus', 'car'] and hps.dec_model == 'lstm' and hps.batch_size == 64
    assert hps.learning_rate == 0.001 and hps.use_recurrent_dropout is False and hps.conditional is False
    assert hps.png_rotate_angle == 5.0 and isinstance(hps.png_rotate_angle, float) and hps.init == 'he'
    assert hps.parse('categories=cat').categories == ['cat']
    assert hps.parse('') == hps


@pytest.mark.parametrize('text, message', [
    ('batchsize=3', "unknown hparam 'batchsize' (did you mean 'batch_size'?)"),
    ('batch_size', "malformed --hparams item 'batch_size'"),
    ('=3', "malformed --hparams item '=3'"),
    ('categories=[bee,bus', 'unbalanced brackets'),
    ('categories=bee]', 'unbalanced brackets'),
    ('batch_size=12.5', "batch_size expects an integer, got '12.5'"),
    ('learning_rate=fast', "learning_rate expects a number, got 'fast'"),
    ('learning_rate=nan', 'learning_rate expects a number'),
    ('conditional=yes', "conditional expects a boolean (true/false), got 'yes'"),
    ('batch_size=[1,2]', 'batch_size expects an integer'),
    ('batch_size=1, batch_size=2', "hparam 'batch_size' is given twice"),
    ('dec_model=gru', "hparam dec_model='gru' is not one of lstm, layer_norm, hyper"),
    ('enc_model=gru', "hparam enc_model='gru' is not one of lstm, layer_norm, hyper"),
    ('model_type=vae', "hparam model_type='vae' is not one of rpcl, rpclh, ia, sketch_rnn"),
    ('init=xavier', "hparam init='xavier' is not one of original, he"),
])
def test_parse_errors_name_the_problem(text, message):
    hps = hyperparams.get_default_hparams()
    with pytest.raises(utils.UserError) as error:
        hps.parse('batch_size=7, ' * ('batch_size' not in text) + text)
    assert message in str(error.value)
    assert hps == hyperparams.get_default_hparams()  # all or nothing


def test_replace_values_and_setattr_copy_and_check():
    hps = hyperparams.get_default_hparams()
    other = hps.replace(batch_size=5, categories='cat')
    assert (other.batch_size, other.categories, hps.batch_size) == (5, ['cat'], 128)
    values = hps.values()
    values['categories'].append('pig')
    assert hps.categories == ['bee', 'bus']
    hps.max_seq_len = 99
    assert hps.max_seq_len == 99
    with pytest.raises(AttributeError):
        hps.no_such_name = 1
    with pytest.raises(utils.UserError, match="unknown hparam 'z_sise'"):
        hps.replace(z_sise=3)
    with pytest.raises(utils.UserError, match='z_size expects an integer'):
        hps.replace(z_size=2.5)


def test_config_json_round_trip_and_old_configs(tmp_path):
    path = str(tmp_path / 'model_config.json')
    hps = hyperparams.get_default_hparams().replace(categories=['cat'], max_seq_len=77, stable_estep=True)
    hyperparams.save_hparams_json(hps, path)
    assert hyperparams.load_hparams_json(path) == hps
    assert os.listdir(tmp_path) == ['model_config.json']
    with open(path) as f:
        assert set(json.load(f)) == set(hyperparams.get_default_hparams().values())
    # An original RPCL-pix2seq config: fewer keys, integer angles; the rest takes defaults.
    original = {'categories': ['bee', 'bus'], 'batch_size': 200, 'png_rotate_angle': 0, 'is_training': True,
                'max_seq_len': 130, 'dec_model': 'hyper', 'grad_clip': 1}
    (tmp_path / 'old.json').write_text(json.dumps(original))
    old = hyperparams.load_hparams_json(str(tmp_path / 'old.json'))
    assert old.batch_size == 200 and old.png_rotate_angle == 0.0 and old.max_seq_len == 130
    assert old.model_type == 'rpcl' and old.z_size == 128


@pytest.mark.parametrize('text, message', [
    ('{"batch_size": 3, "foo": 1, "bar": 2}', 'unknown hparam(s) in config: bar, foo'),
    ('{"batch_size": "big"}', "batch_size expects an integer, got 'big'"),
    ('{"categories": [1, 2]}', 'categories expects a list of names'),
    ('{"dec_model": "gru"}', "dec_model='gru' is not one of"),
    ('[1, 2]', 'a config must be a JSON object of hparams'),
    ('{"batch_size": 3', 'config is not valid JSON'),
])
def test_config_errors_name_file_and_problem(tmp_path, text, message):
    path = tmp_path / 'model_config.json'
    path.write_text(text)
    with pytest.raises(utils.UserError) as error:
        hyperparams.load_hparams_json(str(path))
    assert str(error.value).startswith(f'{path}: ') and message in str(error.value)


def test_missing_config_is_a_user_error(tmp_path):
    with pytest.raises(utils.UserError, match='cannot read config'):
        hyperparams.load_hparams_json(str(tmp_path / 'nothing.json'))


# ---------------------------------------------------------------------------------------------------- files, CLI

def test_atomic_writes_replace_whole_files(tmp_path):
    path = str(tmp_path / 'x.npz')
    utils.atomic_savez(path, a=np.arange(3))
    with np.load(path) as data:
        np.testing.assert_array_equal(data['a'], np.arange(3))
    utils.atomic_write_bytes(str(tmp_path / 'b.txt'), b'hello')
    assert (tmp_path / 'b.txt').read_bytes() == b'hello'
    assert sorted(os.listdir(tmp_path)) == ['b.txt', 'x.npz']
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_failed_atomic_write_keeps_the_old_file_and_no_temp(tmp_path):
    class Exploding:
        def __array__(self, *args, **kwargs):
            raise RuntimeError('boom')

    path = str(tmp_path / 'x.npz')
    utils.atomic_savez(path, a=np.arange(3))
    before = open(path, 'rb').read()
    with pytest.raises(RuntimeError, match='boom'):
        utils.atomic_savez(path, a=np.arange(5), b=Exploding())
    assert open(path, 'rb').read() == before and os.listdir(tmp_path) == ['x.npz']
    with pytest.raises(utils.UserError, match='cannot write'):
        utils.atomic_write_bytes(str(tmp_path / 'no' / 'dir.txt'), b'x')


def test_program_main_gets_the_flags_and_ends_errors_and_stray_arguments_in_one_line():
    def main(cfg):
        if cfg is not flags.FLAGS:
            raise AssertionError('main must receive the parsed flags')
        raise utils.UserError('bad thing')

    with pytest.raises(SystemExit) as exit_info:
        program.run_main(main, ['prog'])
    assert exit_info.value.code == 'error: bad thing'
    with pytest.raises(SystemExit) as exit_info:
        program.run_main(lambda cfg: 'ran', ['prog', 'oops', 'x'])
    assert exit_info.value.code == 'error: unexpected arguments: oops x'
    assert program.run_main(lambda cfg: 'ok', ['prog']) == 'ok'


# ---------------------------------------------------------------------------------------------------- loading

def test_load_bundled_category(data_dir):
    strokes = dataset.load_strokes_npz(os.path.join(data_dir, 'bee.npz'))
    assert {split: len(v) for split, v in strokes.items()} == {'train': 340, 'valid': 30, 'test': 30}
    assert all(seq.dtype == np.int16 and seq.shape[1] == 3 for seq in strokes['train'])
    assert dataset.available_categories(data_dir) == ['alarm clock', 'bee', 'bus', 'car', 'cat', 'face', 'flower',
                                                    'radio']


def test_load_float_sketches(tmp_path, write_category):
    path = write_category(tmp_path, 'kanji', [[[0.5, 1.25, 0], [2.0, -1.0, 1]]], [[[1.0, 1.0, 1]]],
                           [[[1.0, 2.0, 1]]])
    strokes = dataset.load_strokes_npz(path)
    assert strokes['train'][0].dtype == np.float64 and strokes['train'][0][0, 1] == 1.25


GOOD = [[1, 2, 0], [3, 4, 1]]


def test_load_reports_missing_split(tmp_path):
    path = str(tmp_path / 'bad.npz')
    np.savez(path, train=np.zeros(2), valid=np.zeros(2))
    with pytest.raises(utils.UserError, match=r'bad.npz has no key\(s\) test \(found: train, valid\)'):
        dataset.load_strokes_npz(path)


@pytest.mark.parametrize('splits, message', [
    (dict(train=[GOOD, [[1, 2], [3, 4]]], valid=[GOOD], test=[GOOD]),
     'train[1] has shape (2, 2), expected (L, 3)'),
    (dict(train=[GOOD], valid=[np.zeros((0, 3))], test=[GOOD]), 'valid[0] is an empty sketch'),
    (dict(train=[GOOD], valid=[GOOD], test=[[[1, np.nan, 0], [1, 1, 1]]]), 'test[0] contains NaN or infinite'),
    (dict(train=[[[np.inf, 1, 1]]], valid=[GOOD], test=[GOOD]), 'train[0] contains NaN or infinite'),
    (dict(train=[[['a', 'b', 'c']]], valid=[GOOD], test=[GOOD]), 'expected integers or floats'),
])
def test_load_errors_name_file_and_problem(tmp_path, write_category, splits, message):
    path = write_category(tmp_path, 'bad', **splits)
    with pytest.raises(utils.UserError) as error:
        dataset.load_strokes_npz(path)
    assert str(error.value).startswith(path) and message in str(error.value)


def test_missing_and_damaged_files(tmp_path, data_dir):
    with pytest.raises(utils.UserError, match=r'missing file .*unicorn\.npz \(found categories: alarm clock, bee, bus'):
        dataset.load_strokes_npz(os.path.join(data_dir, 'unicorn.npz'))
    (tmp_path / 'junk.npz').write_bytes(b'not a zip')
    with pytest.raises(utils.UserError, match='cannot read .*junk.npz'):
        dataset.load_strokes_npz(str(tmp_path / 'junk.npz'))


# ---------------------------------------------------------------------------------------------------- stroke formats

def test_to_stroke5_hand_checked():
    batch = dataset.to_stroke5([np.array([[1, 2, 0], [3, 4, 1]], np.int16), np.array([[5., 6., 1.]])], max_len=3)
    expected = np.array([
        [[0, 0, 1, 0, 0], [1, 2, 1, 0, 0], [3, 4, 0, 1, 0], [0, 0, 0, 0, 1]],
        [[0, 0, 1, 0, 0], [5, 6, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]]], np.float32)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, expected)
    with pytest.raises(utils.UserError, match='length 2 is longer than max_seq_len=1'):
        dataset.to_stroke5([np.array(GOOD)], max_len=1)


def test_stroke5_to_stroke3_inverts_and_keeps_row0_quirk(data_dir):
    sketches = dataset.load_strokes_npz(os.path.join(data_dir, 'cat.npz'))['valid']
    batch = dataset.to_stroke5(sketches, max(len(s) for s in sketches))
    for seq, seq5 in zip(sketches, batch):
        np.testing.assert_array_equal(dataset.stroke5_to_stroke3(seq5[1:]), seq)
    no_end = np.array([[1, 2, 1, 0, 0], [3, 4, 0, 1, 0]])
    np.testing.assert_array_equal(dataset.stroke5_to_stroke3(no_end), [[1, 2, 0], [3, 4, 1]])
    assert dataset.stroke5_to_stroke3(np.array([[0, 0, 0, 0, 1], [3, 4, 0, 1, 0]])).shape == (0, 3)


def test_scale_factor_is_pooled_population_std(data_dir):
    assert dataset.scale_factor([np.array([[3, 4, 0]]), np.array([[-3, -4, 1]])]) == pytest.approx(np.sqrt(12.5))
    sketches = dataset.load_strokes_npz(os.path.join(data_dir, 'bus.npz'))['train']
    values = np.concatenate([s[:, 0:2].ravel() for s in sketches]).astype(np.float64)
    assert dataset.scale_factor(sketches) == pytest.approx(np.sqrt(np.mean((values - values.mean()) ** 2)), rel=1e-12)


# ---------------------------------------------------------------------------------------------------- augmentation

def test_random_scale_draws_x_then_y_factor():
    seq = np.array([[10, 20, 0], [-30, 40, 1]], np.int16)
    out = dataset.random_scale(seq, 0.1, np.random.default_rng(3))
    u_x, u_y = np.random.default_rng(3).random(2)
    np.testing.assert_allclose(out[:, 0], seq[:, 0] * ((u_x - 0.5) * 0.2 + 1), rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], seq[:, 1] * ((u_y - 0.5) * 0.2 + 1), rtol=1e-6)
    np.testing.assert_array_equal(out[:, 2], seq[:, 2])
    assert out.dtype == np.float32 and seq[0, 0] == 10


def test_augment_strokes_hand_checked():
    one_stroke = np.array([[1, 10, 0], [2, 20, 0], [3, 30, 0], [4, 40, 0], [5, 50, 0], [6, 60, 0], [7, 70, 1]])
    out = dataset.augment_strokes(one_stroke, 1.0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, [[1, 10, 0], [2, 20, 0], [3 + 4 + 5 + 6, 180, 0], [7, 70, 1]])
    two_strokes = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1],
                            [1, 0, 0], [1, 0, 0], [1, 0, 0], [5, 0, 0], [1, 0, 1]])
    out = dataset.augment_strokes(two_strokes, 1.0, np.random.default_rng(0))  # the run restarts after a pen-up
    np.testing.assert_array_equal(out, [[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1],
                                        [1, 0, 0], [1, 0, 0], [1 + 5, 0, 0], [1, 0, 1]])
    np.testing.assert_array_equal(dataset.augment_strokes(one_stroke, 0.0, np.random.default_rng(0)), one_stroke)


def _augment_strokes_literal(seq3, prob, uniforms):
    """docs/model.md#point-dropping as written: walk the points, count pen-down runs, merge dropped points into the last
    kept one."""
    result, previous_pen, count = [], 1, 0
    for (dx, dy, pen), u in zip(seq3.tolist(), uniforms):
        count = 0 if (pen == 1 or previous_pen == 1) else count + 1
        if pen == 0 and previous_pen == 0 and count > 2 and u < prob:
            result[-1][0] += dx
            result[-1][1] += dy
        else:
            result.append([dx, dy, pen])
            previous_pen = pen
    return np.array(result)


def test_augment_strokes_matches_the_literal_walk(data_dir):
    sketches = dataset.load_strokes_npz(os.path.join(data_dir, 'flower.npz'))['train'][:60]
    for seed, seq in enumerate(sketches):
        expected = _augment_strokes_literal(seq, 0.5, np.random.default_rng(seed).random(len(seq)))
        out = dataset.augment_strokes(seq, 0.5, np.random.default_rng(seed))
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(out[:, 0:2].sum(axis=0), seq[:, 0:2].sum(axis=0))


def _image(seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (48, 48)).astype(np.float32)


def test_rescale_quirk_is_47_pixels_top_left():
    image = _image()
    for ratio in (0.98, 0.99, 0.9999):
        out = dataset.rescale_image(image, ratio)
        np.testing.assert_array_equal(out[:47, :47], cv2.resize(image, (47, 47), interpolation=cv2.INTER_AREA))
        assert (out[47, :] == 1).all() and (out[:, 47] == 1).all()
    np.testing.assert_array_equal(dataset.rescale_image(image, 1.0), image)


def test_fixed_rescale_is_centred_and_continuous():
    black = -np.ones((48, 48), np.float32)
    out = dataset.rescale_image(black, 0.9, centred=True)
    np.testing.assert_allclose(out, out[::-1, ::-1], atol=1e-4)
    assert out[0, 0] == 1 and out[24, 24] == -1
    quirky = dataset.rescale_image(black, 0.99)
    assert quirky[0, 0] == -1 and quirky[47, 47] == 1
    np.testing.assert_array_equal(dataset.rescale_image(_image(), 1.0, centred=True), _image())
    edge = [dataset.rescale_image(black, ratio, centred=True)[47, 24] for ratio in (0.99, 0.995, 1.0)]
    assert edge[0] > edge[1] > edge[2] == -1  # the white margin grows continuously as the ratio falls


def test_rotate_and_translate_hand_checked():
    bar = np.ones((48, 48), np.float32)
    bar[22:26] = -1  # a horizontal black bar
    turned = dataset.rotate_image(bar, 90.0)
    assert turned.shape == (48, 48) and turned[5, 23] < -0.9 and turned[23, 5] > 0.9
    diamond = dataset.rotate_image(-np.ones((48, 48), np.float32), 45.0)  # canvas 68 px, shrunk back to 48
    assert diamond[0, 0] == pytest.approx(1) and diamond[24, 24] == pytest.approx(-1)
    np.testing.assert_allclose(dataset.rotate_image(_image(), 0.0), _image(), atol=1e-6)
    image = _image()
    shifted = dataset.translate_image(image, 2, 0)
    np.testing.assert_array_equal(shifted[:, 2:], image[:, :-2])
    assert (shifted[:, :2] == 1).all()


def test_augment_image_default_is_the_quirk_and_switch_fixes_it():
    image = _image()
    hps = hyperparams.get_default_hparams()
    np.testing.assert_array_equal(dataset.augment_image(image, hps, np.random.default_rng(1)),
                                  dataset.rescale_image(image, 0.99))
    fixed = dataset.augment_image(image, hps.replace(fix_png_rescale=True), np.random.default_rng(1))
    ratio = np.random.default_rng(1).uniform(0.98, 1.0)
    np.testing.assert_array_equal(fixed, dataset.rescale_image(image, ratio, centred=True))
    moved = dataset.augment_image(image, hps.replace(png_scale_ratio=1.0, png_translate_dist=3.0),
                                np.random.default_rng(2))
    _, _, dx, dy = np.random.default_rng(2).uniform(size=4) * [0, 0, 6, 6] - [0, 0, 3, 3]
    np.testing.assert_allclose(moved, dataset.translate_image(image, dx, dy), atol=1e-6)


# ---------------------------------------------------------------------------------------------------- batching

def _loader(n, batch_size, training, **hparams):
    strokes = [np.array([[i, 1, 0], [1, i, 1]] * (1 + i % 3), np.float32) for i in range(n)]
    images = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)
    hps = hyperparams.get_default_hparams().replace(png_width=4, **hparams)
    return dataset.DataLoader(strokes, images, np.arange(n), batch_size, 6, hps, training=training)


@pytest.mark.parametrize('n, training, expected', [
    (10, True, 1), (11, True, 2), (14, True, 2), (5, True, 0), (4, True, 0),
    (10, False, 2), (11, False, 2), (4, False, 0)])
def test_num_batches_quirk(n, training, expected):
    loader = _loader(n, 5, training)
    assert loader.num_batches == expected
    assert len(list(loader.epoch(np.random.default_rng(0)))) == expected


def test_training_epoch_shuffles_distinct_full_batches():
    loader = _loader(23, 5, True, random_scale_factor=0.0, augment_stroke_prob=0.0, png_scale_ratio=1.0)
    batches = list(loader.epoch(np.random.default_rng(0)))
    seen = np.concatenate([b.labels for b in batches])
    assert len(batches) == 4 and len(set(seen.tolist())) == 20 and seen.tolist() != sorted(seen.tolist())
    for batch in batches:
        assert batch.strokes.shape == (5, 7, 5) and batch.labels.dtype == np.int32
        np.testing.assert_array_equal(batch.lengths, [len(loader.strokes[i]) for i in batch.labels])
        np.testing.assert_array_equal(batch.strokes, dataset.to_stroke5([loader.strokes[i] for i in batch.labels], 6))
        np.testing.assert_allclose(batch.images, (batch.labels[:, None, None] / 255 * 2 - 1) * np.ones((1, 4, 4)),
                                   rtol=1e-6)


def test_bucketed_epoch_holds_the_sketches_of_the_unbucketed_epoch_each_once():
    """bucket_width regroups the same sketches as the faithful epoch (the first num_batches * B of its shuffle), each
    once, in batches of similar length, each padded to the next multiple of the width (at most max_seq_len)."""
    plain = dict(random_scale_factor=0.0, augment_stroke_prob=0.0, png_scale_ratio=1.0)
    strokes = [np.tile(np.array([[1, 1, 0]], np.float32), (1 + i % 23, 1)) for i in range(400)]
    images = np.zeros((400, 4, 4), np.uint8)
    loaders = [dataset.DataLoader(strokes, images, np.arange(400), 8, 23,
                                hyperparams.get_default_hparams().replace(png_width=4, bucket_width=width, **plain),
                                training=True) for width in (0, 4)]
    faithful, bucketed = (list(loader.epoch(np.random.default_rng(3))) for loader in loaders)
    assert len(bucketed) == len(faithful) == loaders[0].num_batches == 49
    seen = np.concatenate([b.labels for b in bucketed])
    assert sorted(seen.tolist()) == sorted(np.concatenate([b.labels for b in faithful]).tolist())
    assert len(set(seen.tolist())) == len(seen)
    spreads, padded = [], []
    for batch in bucketed:
        lengths = np.array([len(strokes[i]) for i in batch.labels])
        rows = min(-(-lengths.max() // 4) * 4, 23)
        np.testing.assert_array_equal(batch.strokes, dataset.to_stroke5([strokes[i] for i in batch.labels], rows))
        spreads.append(lengths.max() - lengths.min())
        padded.append(rows)
    assert np.mean(spreads) < 3 and np.mean(padded) < 0.7 * 23   # faithful batches span ~20 steps, padded to 23


def test_step_seeds_depend_on_the_keys_only():
    seed = dataset.step_seed(5, 0, 2, 17)
    assert seed.dtype == np.int64 and seed.shape == (2,)
    np.testing.assert_array_equal(seed, dataset.step_seed(5, 0, 2, 17))
    others = [dataset.step_seed(*keys) for keys in ((6, 0, 2, 17), (5, 1, 2, 17), (5, 0, 3, 17), (5, 0, 2, 18))]
    assert len({tuple(s) for s in others + [seed]}) == 5


def test_eval_batches_are_sequential_and_unaugmented():
    loader = _loader(11, 5, False)
    batches = list(loader.epoch())
    assert [b.labels.tolist() for b in batches] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    np.testing.assert_array_equal(batches[1].images, dataset.pixels_to_unit(loader.images[5:10]))
    np.testing.assert_array_equal(batches[1].strokes, loader.get_batch(1).strokes)
    with pytest.raises(IndexError):
        loader.get_batch(2)


def test_training_batches_are_augmented_with_the_rng():
    loader = _loader(12, 4, True, random_scale_factor=0.2)
    batch = loader.batch_from_indices([3, 4, 5, 6], np.random.default_rng(0))
    assert (batch.images[:, 3, :] == 1).all() and (batch.images[:, :, 3] == 1).all()  # 3-px top-left quirk
    assert not np.allclose(batch.strokes[0, 1:3], dataset.to_stroke5([loader.strokes[3]], 6)[0, 1:3])
    plain = loader.batch_from_indices([3, 4, 5, 6])
    np.testing.assert_array_equal(plain.images, dataset.pixels_to_unit(loader.images[3:7]))


def test_loader_rejects_count_mismatch():
    with pytest.raises(utils.UserError, match='3 sketches but 3 labels and 2 images'):
        dataset.DataLoader([np.array(GOOD)] * 3, np.zeros((2, 4, 4), np.uint8), [0, 0, 0], 2, 4,
                         hyperparams.get_default_hparams(), training=False)


# ---------------------------------------------------------------------------------------------------- load_dataset

def test_load_dataset_on_bundled_data(png_data_dir, data_dir):
    hps = hyperparams.get_default_hparams().replace(categories=['bee', 'cat'], batch_size=16)
    train, valid, test, hps_out = dataset.load_dataset(png_data_dir, hps)
    raw = [dataset.load_strokes_npz(os.path.join(data_dir, f'{c}.npz')) for c in ('bee', 'cat')]
    assert (len(train.strokes), len(valid.strokes), len(test.strokes)) == (680, 60, 60)
    assert hps_out.max_seq_len == max(len(s) for r in raw for split in r.values() for s in split)
    assert hps.max_seq_len == -1 and train.max_seq_len == hps_out.max_seq_len
    np.testing.assert_array_equal(train.labels, [0] * 340 + [1] * 340)
    np.testing.assert_array_equal(valid.labels, [0] * 30 + [1] * 30)
    values = np.concatenate([s[:, 0:2].ravel() for r in raw for s in r['train']]).astype(np.float64)
    sigma = np.sqrt(np.mean((values - values.mean()) ** 2))
    assert train.scale_factor == pytest.approx(sigma, rel=1e-12)
    np.testing.assert_allclose(test.strokes[31][:, 0:2], raw[1]['test'][1][:, 0:2] / sigma, rtol=1e-6)
    with np.load(os.path.join(png_data_dir, 'cat_png.npz')) as pngs:
        np.testing.assert_array_equal(valid.images[45], pngs['valid'][15])
    assert train.training and not valid.training and train.num_batches == 42 and valid.num_batches == 3
    batch = next(train.epoch(np.random.default_rng(0)))
    assert batch.strokes.shape == (16, hps_out.max_seq_len + 1, 5) and batch.images.shape == (16, 48, 48)


def test_load_dataset_slices_num_per_category(png_data_dir):
    hps = hyperparams.get_default_hparams().replace(categories=['bus', 'car', 'flower'], num_per_category=50)
    train, valid, _, _ = dataset.load_dataset(png_data_dir, hps)
    assert len(train.strokes) == 150 and len(valid.strokes) == 90 and len(train.images) == 150


def test_load_dataset_clips_and_works_without_images(tmp_path, write_category):
    write_category(tmp_path, 'big', [[[5000, 0, 0], [0, -1000, 1]]], [[[1, 1, 1]]], [[[2, 2, 1]]])
    hps = hyperparams.get_default_hparams().replace(categories=['big'], batch_size=1)
    train, valid, _, hps_out = dataset.load_dataset(str(tmp_path), hps, png_required=False)
    sigma = np.sqrt((1000 ** 2 + 1000 ** 2) / 4)  # pooled clipped offsets 1000, 0, 0, -1000
    np.testing.assert_allclose(train.strokes[0], [[1000 / sigma, 0, 0], [0, -1000 / sigma, 1]], rtol=1e-6)
    assert hps_out.max_seq_len == 2 and train.images is None and valid.get_batch(0).images is None


def test_load_dataset_errors(tmp_path, data_dir, write_category):
    directory = str(tmp_path)
    hps = hyperparams.get_default_hparams().replace(categories=['bee'])
    with pytest.raises(utils.UserError, match='missing category file .*bee.npz'):
        dataset.load_dataset(directory, hps)
    write_category(tmp_path, 'bee', [GOOD, GOOD], [GOOD], [GOOD])
    with pytest.raises(utils.UserError) as error:
        dataset.load_dataset(directory, hps)
    assert str(error.value).endswith(
        f'make them with: python3 seq2png.py --input_dir={directory} --output_dir={directory} --categories=bee')
    images = np.full((1, 48, 48), 255, np.uint8)
    np.savez(dataset.category_png_path(directory, 'bee'), train=images, valid=images, test=images)
    with pytest.raises(utils.UserError, match='has 1 train images but .* has 2 sketches'):
        dataset.load_dataset(directory, hps)
    with pytest.raises(utils.UserError, match='expected uint8 32x32'):
        dataset.load_dataset(directory, hps.replace(png_width=32))
    with pytest.raises(utils.UserError, match='categories is empty'):
        dataset.load_dataset(data_dir, hps.replace(categories=[]))


def test_configure_runtime_sets_the_allocator_and_autojit_and_keeps_the_users_switches(monkeypatch):
    monkeypatch.delenv('TF_CPU_ALLOCATOR_USE_BFC', raising=False)
    monkeypatch.setenv('TF_XLA_FLAGS', '--tf_xla_clustering_debug')
    utils.configure_runtime(autojit=True)
    assert os.environ['TF_CPU_ALLOCATOR_USE_BFC'] == 'true'
    assert os.environ['TF_XLA_FLAGS'].split() == ['--tf_xla_clustering_debug', *utils.AUTOJIT_XLA_FLAGS]
    utils.configure_runtime(autojit=True)   # idempotent
    assert os.environ['TF_XLA_FLAGS'].split() == ['--tf_xla_clustering_debug', *utils.AUTOJIT_XLA_FLAGS]

    monkeypatch.setenv('TF_CPU_ALLOCATOR_USE_BFC', 'false')
    monkeypatch.setenv('TF_XLA_FLAGS', '--tf_xla_auto_jit=1')
    utils.configure_runtime(autojit=True)
    assert os.environ['TF_CPU_ALLOCATOR_USE_BFC'] == 'false' and os.environ['TF_XLA_FLAGS'] == '--tf_xla_auto_jit=1'

    monkeypatch.delenv('TF_XLA_FLAGS')
    utils.configure_runtime(autojit=False)
    assert 'TF_XLA_FLAGS' not in os.environ
