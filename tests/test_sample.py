"""sample.py: code sources and interpolation against NumPy formulas, the files of a run on the tiny trained model,
reproducibility, and the command line's one-line errors."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import dataset
import family
import hyperparams
import raster
import sampling
import utils

SEED = 7
PER_CATEGORY = 4


# ------------------------------------------------------------------------------------------------ pure functions

def test_lerp_and_slerp_match_their_formulas():
    rng = np.random.default_rng(0)
    p0, p1 = rng.standard_normal(8), rng.standard_normal(8)
    omega = np.arccos(p0 @ p1 / np.linalg.norm(p0) / np.linalg.norm(p1))
    for t in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(sampling.lerp(p0, p1, t), (1 - t) * p0 + t * p1)
        expected = np.sin((1 - t) * omega) / np.sin(omega) * p0 + np.sin(t * omega) / np.sin(omega) * p1
        np.testing.assert_allclose(sampling.slerp(p0, p1, t), expected, rtol=1e-12, atol=1e-12)


def test_slerp_keeps_the_norm_between_equal_norm_codes():
    p0, p1 = np.array([3.0, 0.0, 0.0]), np.array([0.0, 3.0, 0.0])
    assert np.linalg.norm(sampling.slerp(p0, p1, 0.5)) == pytest.approx(3.0)


@pytest.mark.parametrize('p1', [np.array([2.0, 4.0]), np.array([-1.0, -2.0]), np.array([0.0, 0.0])])
def test_slerp_falls_back_to_lerp_for_parallel_or_zero_codes(p1):
    p0 = np.array([1.0, 2.0])
    result = sampling.slerp(p0, p1, 0.25)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, 0.75 * p0 + 0.25 * p1)


def test_gmm_codes_follow_the_mixture_and_one_component():
    rng = np.random.default_rng(1)
    weights = np.array([0.7, 0.3, 0.0])
    means = np.array([[10.0, 0.0], [-10.0, 0.0], [0.0, 50.0]])
    variances = np.array([[1.0, 4.0], [0.25, 1.0], [1.0, 1.0]])
    z = sampling.gmm_codes(20000, weights, means, variances, rng)
    assert z.dtype == np.float32 and z.shape == (20000, 2)
    assert np.mean(z[:, 0] > 0) == pytest.approx(0.7, abs=0.02)   # component by weight; never the 0-weight one
    assert np.abs(z[:, 1]).max() < 30
    one = sampling.gmm_codes(20000, weights, means, variances, rng, component=1)
    np.testing.assert_allclose(one.mean(axis=0), means[1], atol=0.05)
    np.testing.assert_allclose(one.var(axis=0), variances[1], rtol=0.05)


def test_prior_codes_are_standard_normal():
    z = sampling.prior_codes(20000, 3, np.random.default_rng(2))
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.03)


def test_choose_references():
    rng = np.random.default_rng(3)
    assert sorted(sampling.choose_references(30, 0, rng)) == list(range(30))
    picked = sampling.choose_references(30, 5, rng)
    assert len(set(picked)) == 5 and picked.max() < 30
    with pytest.raises(utils.UserError, match='larger than the test split'):
        sampling.choose_references(30, 31, rng)


def test_derive_seed_is_deterministic_and_distinct():
    assert sampling.derive_seed(1, 2) == sampling.derive_seed(1, 2)
    assert len({sampling.derive_seed(1, i) for i in range(100)}) == 100
    assert 0 <= sampling.derive_seed(5) < 2 ** 63


def test_strip_image_layout():
    tiles = [[np.full((4, 4), 10 * (r * 3 + c), np.uint8) for c in range(3)] for r in range(2)]
    strip = sampling.strip_image(tiles)
    assert strip.shape == (2 * 4 + 1, 3 * 4 + 2)
    assert strip[5, 10] == 50 and strip[4, 0] == 200 and strip[0, 4] == 200


# ------------------------------------------------------------------------------------------------ runs on a model

@pytest.fixture(scope='module')
def restored(trained_model_dir, png_data_dir):
    return family.load_model_and_test_split(trained_model_dir, png_data_dir)


def run_sample(restored, output_dir, **options):
    net, test_set = restored
    settings = dict(num_per_category=PER_CATEGORY, seed=SEED, batch_size=3, progress=False)
    settings.update(options)
    return sampling.sample(net, test_set, str(output_dir), **settings)


@pytest.fixture(scope='module')
def sampled_dir(restored, tmp_path_factory):
    directory = tmp_path_factory.mktemp('sample')
    assert run_sample(restored, directory) == 2 * PER_CATEGORY
    return str(directory)


def read_sketches(directory):
    """{filename: bytes} of every file but sample_config.json."""
    names = sorted(set(os.listdir(directory)) - {sampling.CONFIG_FILE})
    return {name: open(os.path.join(directory, name), 'rb').read() for name in names}


def test_sample_writes_the_original_file_names(sampled_dir):
    expected = {f'{prefix}{c}_{n}{suffix}' for c in ('bee', 'bus') for n in range(PER_CATEGORY)
                for prefix, suffix in (('', '.svg'), ('', '.png'), ('code_', '.npy'), ('gau_idx_', '.npy'),
                                       ('strokes_', '.npy'))}
    assert set(os.listdir(sampled_dir)) == expected | {'sample_config.json'}


def test_sample_file_shapes_dtypes_and_black_pixels(sampled_dir, restored):
    net, test_set = restored
    for c in ('bee', 'bus'):
        for n in range(PER_CATEGORY):
            name = f'{c}_{n}'
            code = np.load(os.path.join(sampled_dir, f'code_{name}.npy'))
            assert code.shape == (1, net.hps.z_size) and code.dtype == np.float32
            label = np.load(os.path.join(sampled_dir, f'gau_idx_{name}.npy'))
            assert label.shape == () and label.dtype == np.int64
            assert label == net.gaussian_index(code).numpy()[0]
            strokes = np.load(os.path.join(sampled_dir, f'strokes_{name}.npy'))
            assert strokes.ndim == 2 and strokes.shape[1] == 3 and strokes.dtype == np.float32
            assert len(strokes) <= net.hps.max_seq_len and set(np.unique(strokes[:, 2])) <= {0.0, 1.0}
            pixels = np.asarray(Image.open(os.path.join(sampled_dir, f'{name}.png')))
            assert pixels.shape == (48, 48, 3) and pixels.dtype == np.uint8
            assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
            np.testing.assert_array_equal(pixels[..., 0], raster.render_fast([strokes], 48, workers=1)[0])
            with open(os.path.join(sampled_dir, f'{name}.svg')) as f:
                assert f.read() == raster.strokes_to_svg(strokes)


def test_conditional_codes_are_encoder_means_of_own_category_test_sketches(sampled_dir, restored):
    net, test_set = restored
    for i, c in enumerate(('bee', 'bus')):
        rows = sampling.category_rows(test_set, i)
        mu, _ = sampling.encode_batched(net, None, test_set.batch_from_indices(rows).images, 16)
        codes = np.concatenate([np.load(os.path.join(sampled_dir, f'code_{c}_{n}.npy')) for n in range(PER_CATEGORY)])
        nearest = np.min(((codes[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)
        np.testing.assert_allclose(nearest, 0.0, atol=1e-4)


def test_sample_config_names_the_reference_test_sketch_of_every_code(sampled_dir, restored):
    net, test_set = restored
    references = sampling.read_config(sampled_dir)['references']
    for i, c in enumerate(('bee', 'bus')):
        assert len(references[c]) == PER_CATEGORY and len(set(references[c])) == PER_CATEGORY
        rows = sampling.category_rows(test_set, i)[references[c]]
        mu, _ = sampling.encode_batched(net, None, test_set.batch_from_indices(rows).images, 16)
        codes = np.concatenate([np.load(os.path.join(sampled_dir, f'code_{c}_{n}.npy')) for n in range(PER_CATEGORY)])
        np.testing.assert_allclose(codes, mu, atol=1e-5)


def test_strokes_are_in_pixel_units(sampled_dir, restored):
    """Saved offsets are the decoded (normalised) ones times the training scale factor."""
    net, test_set = restored
    decode = sampling.compile_decoder(net)
    z = np.load(os.path.join(sampled_dir, 'code_bee_0.npy'))
    normalised = sampling.decode_strokes(decode, z, net.hps.max_seq_len, 0.24, 11, 1.0)[0]
    scaled = sampling.decode_strokes(decode, z, net.hps.max_seq_len, 0.24, 11, test_set.scale_factor)[0]
    assert test_set.scale_factor > 1.0
    np.testing.assert_allclose(scaled[:, :2], normalised[:, :2] * test_set.scale_factor, rtol=1e-6)
    np.testing.assert_array_equal(scaled[:, 2], normalised[:, 2])


def test_same_seed_reproduces_every_file_and_early_stop_changes_nothing(sampled_dir, restored, tmp_path):
    run_sample(restored, tmp_path / 'again')
    assert read_sketches(tmp_path / 'again') == read_sketches(sampled_dir)
    run_sample(restored, tmp_path / 'full', stop_at_eos=False)
    assert read_sketches(tmp_path / 'full') == read_sketches(sampled_dir)
    run_sample(restored, tmp_path / 'other', seed=SEED + 1)
    assert read_sketches(tmp_path / 'other') != read_sketches(sampled_dir)


def test_prior_and_gmm_component_codes(restored, tmp_path):
    net, _ = restored
    run_sample(restored, tmp_path / 'gmm', latent='gmm', component=1, num_per_category=2)
    _, means, variances = sampling.latent_gaussians(net)
    code = np.load(tmp_path / 'gmm' / 'code_bee_0.npy')[0]
    # a draw from N(m_1, v_1) is within 6 standard deviations of m_1 in every dimension
    assert (np.abs(code - means[1]) < 6 * np.sqrt(variances[1])).all()
    run_sample(restored, tmp_path / 'prior', latent='prior', num_per_category=1)
    assert np.load(tmp_path / 'prior' / 'code_bus_0.npy').shape == (1, net.hps.z_size)


@pytest.mark.parametrize('options, message', [
    (dict(latent='posterior'), "unknown --latent 'posterior'"),
    (dict(latent='gmm', component=9), 'out of range'),
    (dict(latent='prior', component=0), 'only used with --latent=gmm'),
    (dict(num_per_category=31), 'larger than the test split'),
])
def test_sample_rejects_bad_options(restored, tmp_path, options, message):
    with pytest.raises(utils.UserError, match=re.escape(message)):
        run_sample(restored, tmp_path, **options)


def test_interpolation_strip(restored, tmp_path):
    net, test_set = restored
    path = sampling.interpolate(net, test_set, str(tmp_path), 'bus', 2, 5, steps=4, seed=SEED)
    assert os.path.basename(path) == 'interpolate_bus_2_5.png'
    strip = np.asarray(Image.open(path))
    assert strip.shape == (2 * 48 + 1, 6 * 48 + 5, 3)
    real = raster.render_fast([test_set.strokes[sampling.category_rows(test_set, 1)[2]]], 48, workers=1)[0]
    np.testing.assert_array_equal(strip[:48, :48, 0], real)          # each row starts with sketch a
    with pytest.raises(utils.UserError, match='out of range'):
        sampling.interpolate(net, test_set, str(tmp_path), 'bus', 0, 30)


# ------------------------------------------------------------------------------------------------ command line

def start_cli(repo_dir, *args):
    return subprocess.Popen([sys.executable, os.path.join(repo_dir, 'sample.py'), *args], cwd=repo_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_errors(repo_dir, trained_model_dir, png_data_dir, tmp_path):
    """Three bad runs at once, each ending with one `error:` line and exit code 1."""
    runs = [(start_cli(repo_dir, '--latent=posterior', f'--model_dir={trained_model_dir}'),
             "unknown --latent 'posterior'"),
            (start_cli(repo_dir, f'--model_dir={tmp_path / "nowhere"}'), 'does not exist'),
            (start_cli(repo_dir, f'--model_dir={trained_model_dir}', f'--data_dir={png_data_dir}',
                       f'--output_dir={tmp_path / "out"}', '--num_per_category=31'),
             '--num_per_category=31 is larger than the test split (30')]
    for process, message in runs:
        _, stderr = process.communicate(timeout=300)
        errors = [line for line in stderr.splitlines() if line.startswith('error:')]
        assert process.returncode == 1 and len(errors) == 1 and message in errors[0], (process.returncode, stderr)
        assert 'Traceback' not in stderr


# ------------------------------------------------------------------------------------------------ other family members

def untrained_model(model_type, png_data_dir, **hparams):
    """(randomly initialised tiny model of model_type for bee and bus, its test loader)."""
    hps = hyperparams.get_default_hparams().replace(model_type=model_type, categories=['bee', 'bus'], dec_model='lstm',
                                              dec_rnn_size=16, enc_rnn_size=16, z_size=8, num_per_category=48,
                                              **hparams)
    _, _, test_set, hps = dataset.load_dataset(png_data_dir, hps, png_required=model_type != 'sketch_rnn')
    return family.build_model(hps), test_set


def test_rpclh_writes_group_and_gaussian_labels(png_data_dir, tmp_path):
    net, test_set = untrained_model('rpclh', png_data_dir, num_layer_i=3, num_layer_j=3)
    for transient in (False, True):
        directory = tmp_path / str(transient)
        sampling.sample(net, test_set, str(directory), num_per_category=3, seed=0, transient_labels=transient,
                      progress=False)
        names = set(os.listdir(directory))
        assert {'i_label_bee_0.npy', 'j_label_bus_2.npy', 'code_bus_2.npy'} <= names
        assert not any(name.startswith('gau_idx') for name in names)
        z = np.concatenate([np.load(directory / f'code_bee_{n}.npy') for n in range(3)])
        i_label = np.array([np.load(directory / f'i_label_bee_{n}.npy') for n in range(3)])
        j_label = np.array([np.load(directory / f'j_label_bee_{n}.npy') for n in range(3)])
        assert i_label.dtype == np.int64 and ((0 <= j_label) & (j_label < 3)).all()
        if not transient:  # under the stored parameters the labels depend on z only
            expected = net.labels(z, z, z, transient=False)
            np.testing.assert_array_equal(i_label, expected['i_label'].numpy())
            np.testing.assert_array_equal(j_label, expected['j_label'].numpy())


def test_sketch_rnn_has_codes_but_no_gaussian_index(png_data_dir, tmp_path):
    net, test_set = untrained_model('sketch_rnn', png_data_dir)
    sampling.sample(net, test_set, str(tmp_path), num_per_category=2, seed=0, progress=False)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [sampling.CONFIG_FILE] + [f'{prefix}{c}_{n}{suffix}' for c in ('bee', 'bus') for n in range(2)
                                for prefix, suffix in (('', '.svg'), ('', '.png'), ('code_', '.npy'),
                                                       ('strokes_', '.npy'))])
    with pytest.raises(utils.UserError, match='no latent mixture'):
        sampling.sample(net, test_set, str(tmp_path), latent='gmm', progress=False)
