"""export_lib.py: SavedModels of a converted RPCL-pix2seq and a converted sketch-rnn, loaded with plain
tf.saved_model.load in a fresh process that cannot import this repository, give sample.py's sketches and codes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_tf1_equivalence import FIXTURES, HPARAMS, fixture_path

import dataset
import export_lib
import family
import sampling
import tf1_checkpoint
import utils

pytestmark = pytest.mark.skipif(not os.path.isdir(FIXTURES), reason=f'no TF1 fixtures at {FIXTURES}')

SEED, TEMPERATURE, PER_CATEGORY = 3, 0.24, 4

# run in a temporary directory with nothing of this repository on sys.path: tensorflow and numpy only
FRESH_PROCESS = r'''
import importlib.util, sys
import numpy as np
import tensorflow as tf
assert importlib.util.find_spec('model') is None and importlib.util.find_spec('export_lib') is None
exported = tf.saved_model.load(sys.argv[1])
inputs = np.load(sys.argv[2])
out = {}
for c in range(len(inputs['seeds'])):
    out[f'strokes_{c}'] = exported.generate(tf.constant(inputs[f'z_{c}']), tf.constant(inputs['temperature']),
                                            tf.constant(inputs['seeds'][c]), tf.constant(inputs['max_len']))['strokes']
    encoded = exported.encode(tf.constant(inputs[f'references_{c}']))
    out[f'mu_{c}'] = encoded['mu']
    out[f'gamma_{c}'] = encoded.get('gamma', tf.zeros([0]))
    rebuilt = exported.reconstruct(tf.constant(inputs[f'references_{c}']), tf.constant(inputs['temperature']),
                                   tf.constant(inputs['seeds'][c]))
    out[f'reconstructed_{c}'] = rebuilt['strokes']
np.savez(sys.argv[3], **{key: np.asarray(value) for key, value in out.items()})
'''


def sample_and_export(name, png_data_dir, tmp_path):
    """Convert the fixture's step-3 checkpoint, draw PER_CATEGORY sketches per category with sampling.sample and
    export the model: (net, test loader, sample directory, SavedModel directory)."""
    run = str(tmp_path / 'run')
    tf1_checkpoint.convert(fixture_path(name, 'ckpt_step3'), fixture_path(name, 'model_config.json'), run,
                           HPARAMS[name])
    net, test_set = family.load_model_and_test_split(run, png_data_dir)
    samples = str(tmp_path / 'samples')
    sampling.sample(net, test_set, samples, PER_CATEGORY, temperature=TEMPERATURE, seed=SEED, progress=False)
    exported = str(tmp_path / 'exported')
    export_lib.export(run, exported)
    return net, test_set, samples, exported


def fresh_process_outputs(net, test_set, samples, exported, tmp_path):
    """The SavedModel's generate (for sample.py's codes and seeds), encode and reconstruct (for the references),
    run by FRESH_PROCESS."""
    config = sampling.read_config(samples)
    inputs = dict(seeds=np.array([sampling.derive_seed(SEED, c, 0) for c in range(len(net.hps.categories))]),
                  temperature=np.float32(TEMPERATURE), max_len=np.int32(net.hps.max_seq_len))
    for c, category in enumerate(net.hps.categories):
        inputs[f'z_{c}'] = np.concatenate([np.load(os.path.join(samples, f'code_{category}_{n}.npy'))
                                           for n in range(PER_CATEGORY)])
        rows = sampling.category_rows(test_set, c)[config['references'][category]]
        batch = test_set.batch_from_indices(rows)
        inputs[f'references_{c}'] = batch.strokes if net.hps.model_type == 'sketch_rnn' else batch.images
    np.savez(tmp_path / 'inputs.npz', **inputs)
    env = {key: value for key, value in os.environ.items() if key != 'PYTHONPATH'}
    subprocess.run([sys.executable, '-c', FRESH_PROCESS, exported, str(tmp_path / 'inputs.npz'),
                    str(tmp_path / 'outputs.npz')], cwd=str(tmp_path), env=env, check=True, timeout=300,
                   capture_output=True)
    with np.load(tmp_path / 'outputs.npz') as outputs:
        return inputs, dict(outputs)


@pytest.mark.parametrize('name', ['rpcl_pix2seq', 'sketch_rnn_layer_norm'])
def test_the_saved_model_generates_sample_py_sketches(png_data_dir, tmp_path, name):
    """generate(z, temperature, seed, max_len) gives sample.py's stroke-3 files exactly (the same codes and seed);
    encode gives its codes (the references' mu), and gamma their Gaussian labels; reconstruct decodes mu."""
    net, test_set, samples, exported = sample_and_export(name, png_data_dir, tmp_path)
    inputs, outputs = fresh_process_outputs(net, test_set, samples, exported, tmp_path)
    for c, category in enumerate(net.hps.categories):
        strokes = outputs[f'strokes_{c}']
        assert strokes.shape == (PER_CATEGORY, net.hps.max_seq_len, 5)
        for n in range(PER_CATEGORY):
            expected = np.load(os.path.join(samples, f'strokes_{category}_{n}.npy'))
            scale = np.float32([test_set.scale_factor, test_set.scale_factor, 1])
            np.testing.assert_array_equal((dataset.stroke5_to_stroke3(strokes[n]) * scale).astype(np.float32), expected)
        np.testing.assert_allclose(outputs[f'mu_{c}'], inputs[f'z_{c}'], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(outputs[f'reconstructed_{c}'], strokes)
        if name == 'rpcl_pix2seq':
            labels = [int(np.load(os.path.join(samples, f'gau_idx_{category}_{n}.npy'))) for n in range(PER_CATEGORY)]
            assert outputs[f'gamma_{c}'].argmax(axis=1).tolist() == labels


def test_the_saved_model_documents_itself(png_data_dir, tmp_path):
    """Signatures named as docs/export.md says, and the run's config inside."""
    import tensorflow as tf
    net, _, _, exported = sample_and_export('sketch_rnn', png_data_dir, tmp_path)
    loaded = tf.saved_model.load(exported)
    assert sorted(loaded.signatures) == ['encode', 'generate', 'reconstruct']
    _, generate_inputs = loaded.signatures['generate'].structured_input_signature
    assert {key: (spec.dtype, spec.shape.as_list()) for key, spec in generate_inputs.items()} == {
        'z': (tf.float32, [None, 8]), 'temperature': (tf.float32, []), 'seed': (tf.int64, []),
        'max_len': (tf.int32, [])}
    assert json.loads(loaded.config.numpy().decode()) == net.hps.values()
    assert int(loaded.max_seq_len) == 170 and int(loaded.z_size) == 8
    with pytest.raises(utils.UserError, match='already exists'):
        export_lib.export(str(tmp_path / 'run'), exported)
