"""Data-parallel training (distributed.py): a mirrored step on two logical CPUs equals the single-device step on the
same global batch, checkpoints move between the two, and a two-worker MultiWorkerMirroredStrategy run on localhost
trains and checkpoints.

TensorFlow's devices can only be split before it initialises, so the comparison runs in a fresh process: this file
run as a program (`python3 tests/test_distributed.py <data_dir> <out_dir> <model_type>...`) prints one JSON line of
differences per model type.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = ('categories=[bee,bus], dec_rnn_size=32, dec_model=lstm, z_size=16, batch_size=16, num_mixture=2, '
           'num_sub=2, num_per_category=48, use_recurrent_dropout=false, hyper_num_units=16, '
           'hyper_embedding_size=8, num_layer_i=4, num_layer_j=4, enc_rnn_size=16')
WARMUP = 8
STEPS = (501, 502, 504)   # RPCL, EM and RPCL steps; rpclh: image, image and stroke steps
TOLERANCE = 1e-5


def compare_mirrored_step(strategy, model_type, data_dir, out_dir):
    """Warm a single-device model up for WARMUP steps (so that Adam's moments are set: from zero moments its first
    update is about lr sign(g), which turns float rounding into flipped signs) and checkpoint it. Then, for each of
    STEPS, restore that checkpoint into it and into a model mirrored over two logical CPUs, train one step on both
    with the same global batch and take the largest relative differences of the losses, weights, latent mixture and
    Adam moments; compare the eval steps too. Only single steps compare: training is so sensitive that a 1e-7
    relative change of the weights moves them by ~5e-3 a step later, on one device alone. Prints the differences
    as JSON, and checks that the mirrored model's checkpoint loads into a single-device model (all under out_dir)."""
    import tensorflow as tf

    import dataset
    import distributed
    import family
    import hyperparams
    import sketch_model
    tf.random.set_seed(0)
    out_dir = os.path.join(out_dir, model_type)
    hps = hyperparams.get_default_hparams()
    hps.parse(HPARAMS + f', model_type={model_type}')
    train_set, _, _, hps = dataset.load_dataset(data_dir, hps, png_required=True)
    single = family.build_model(hps)
    with strategy.scope():
        mirrored = family.build_model(hps)
    # the codes' noise, the same for a sketch on whichever replica it lands: z = mu + 0.5 sigma (patched once the
    # initial weights, drawn with tf.random.normal, are made; restored below)
    normal, tf.random.stateless_normal = tf.random.stateless_normal, lambda shape, *args, **kwargs: tf.fill(shape, 0.5)
    single_train, single_eval = sketch_model.compile_steps(single, hps.batch_size, hps.max_seq_len, hps.png_width)
    mirrored_train, mirrored_eval = distributed.compile_replica_steps(strategy, mirrored, hps.batch_size,
                                                                      hps.max_seq_len, hps.png_width)
    rng = np.random.default_rng(1)
    batches = [(tf.constant(b.strokes), tf.constant(b.images)) for _ in range(3) for b in train_set.epoch(rng)]
    for step in range(WARMUP):
        single_train(*batches[step], tf.constant(step, tf.int64), tf.constant([0, step], tf.int64))
    start = tf.train.Checkpoint(model=single).write(os.path.join(out_dir, 'start'))
    groups = dict(weights=lambda net: net.trainable_variables, optimizer=lambda net: net.optimizer.variables,
                  gmm=lambda net: net.gmm.variables if hasattr(net, 'gmm') else [])
    diffs = dict(losses=0.0, moved=0.0, **{name: 0.0 for name in groups})
    for step, batch in zip(STEPS, batches[WARMUP:]):
        for net in (single, mirrored):
            tf.train.Checkpoint(model=net).read(start).assert_existing_objects_matched()
        initial = [v.numpy() for v in single.trainable_variables]
        args = batch + (tf.constant(step, tf.int64), tf.constant([0, step], tf.int64))
        want, got = single_train(*args), mirrored_train(*args)
        diffs['losses'] = max([diffs['losses']] + [relative_difference(want[k], got[k]) for k in want])
        for name, pick in groups.items():
            diffs[name] = max([diffs[name]] + [relative_difference(v, w) for v, w in zip(pick(single),
                                                                                          pick(mirrored))])
        diffs['moved'] = max([diffs['moved']] + [float(np.max(np.abs(v.numpy() - w)))
                                                 for v, w in zip(single.trainable_variables, initial)])
    want, got = single_eval(*args), mirrored_eval(*args)
    same_winners = bool(np.array_equal(want.pop('winners'), got.pop('winners')))
    for out in (want, got):   # each replica rolls the codes of its own shard: another pairing of sketches and codes
        out.pop('z_dependence')
    eval_diff = max(relative_difference(want[k], got[k]) for k in want)
    tf.random.stateless_normal = normal
    saved = tf.train.Checkpoint(model=mirrored).write(os.path.join(out_dir, 'mirrored'))
    reloaded = family.build_model(hps)
    tf.train.Checkpoint(model=reloaded).read(saved).assert_existing_objects_matched()
    reload_diff = max(relative_difference(v, w) for v, w in zip(mirrored.variables, reloaded.variables))
    print(json.dumps(dict(diffs, model_type=model_type, eval=eval_diff, same_winners=same_winners, reload=reload_diff,
                          replicas=strategy.num_replicas_in_sync)), flush=True)


def relative_difference(want, got):
    """max |got - want| / max(1, |want|) over the elements of two tensors or variables."""
    want, got = np.asarray(want), np.asarray(got)
    return float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)), initial=0.0))


MODEL_TYPES = ('rpcl', 'rpclh')


@pytest.fixture(scope='module')
def mirrored_results(tmp_path_factory, png_data_dir):
    """model_type -> the differences compare_mirrored_step found, from one fresh process."""
    out_dir = str(tmp_path_factory.mktemp('mirrored'))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), png_data_dir, out_dir, *MODEL_TYPES],
                          capture_output=True, text=True, timeout=1800, cwd=REPO)   # a hang guard, not a speed test
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
    return {result['model_type']: result for result in results}


@pytest.mark.parametrize('name', ['ia', 'sketch_rnn', 'rpcl_em'])
def test_sharded_latent_update_equals_single_device_update(mirrored_results, name):
    assert mirrored_results[name]['update'] < TOLERANCE, mirrored_results[name]


@pytest.mark.parametrize('model_type', MODEL_TYPES)
def test_mirrored_step_equals_single_device_step(mirrored_results, model_type):
    result = mirrored_results[model_type]
    assert result['replicas'] == 2
    assert result['losses'] < TOLERANCE and result['weights'] < TOLERANCE and result['gmm'] < TOLERANCE, result
    # Adam's moments are running means of the gradients, whose float rounding differs by up to ~4e-5 of their size
    # (the first conv layer's gradient sums B x 48 x 48 large terms in another order)
    assert result['optimizer'] < 10 * TOLERANCE, result
    assert result['eval'] < TOLERANCE and result['same_winners'], result
    assert result['reload'] == 0.0
    assert result['moved'] > 1e-4, result           # the steps did change the model

def compare_sharded_updates(strategy):
    """Latent updates of the models not trained above (IA's two harmony rounds, sketch-rnn's floored KL) and
    RPCL-pix2seq's EM update, on a latent case of 16 codes: as one batch on one device, and sharded over the
    strategy's two replicas with distributed.ReplicaBatch. Prints, per update, the largest relative difference of any
    replica's result (the updated mixture, the KL) from the single-device one, as JSON."""
    import cases
    import tensorflow as tf

    import distributed
    import model
    import model_ia
    import model_sketch_rnn
    import sketch_model
    c = {k: tf.constant(v) for k, v in cases.latent_case(2, k=4, d=6, b=16, s2_low=0.05, s2_high=0.5).items()}
    updates = dict(  # name -> f(batch statistics, z, mu, sigma2)
        ia=lambda batch, z, mu, s2: model_ia.harmony_update(z, s2, (c['alpha'], c['m'], c['v']), 2, batch)[2],
        sketch_rnn=lambda batch, z, mu, s2: model_sketch_rnn.kl_with_tolerance(mu, tf.math.log(s2), 0.2, batch),
        rpcl_em=lambda batch, z, mu, s2: model.gmm_update(model.e_step(z, c['alpha'], c['m'], c['v']), mu, s2,
                                                          (c['alpha'], c['m'], c['v']), tf.constant(2, tf.int64),
                                                          batch))
    for name, update in updates.items():
        want = tf.nest.flatten(update(sketch_model.LOCAL_BATCH, c['z'], c['mu'], c['s2']))

        def replica(update=update):
            index = tf.distribute.get_replica_context().replica_id_in_sync_group
            shard = [c[k][8 * index:8 * (index + 1)] for k in ('z', 'mu', 's2')]
            return update(distributed.ReplicaBatch(), *shard)

        results = strategy.run(tf.function(replica))
        per_replica = [strategy.experimental_local_results(x) for x in tf.nest.flatten(results)]
        diff = max(relative_difference(w, got) for w, gots in zip(want, per_replica) for got in gots)
        print(json.dumps(dict(model_type=name, update=diff)), flush=True)


def free_ports(count):
    """`count` distinct free localhost ports (bound together, then released for the workers)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(('localhost', 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_train_and_checkpoint(tmp_path, png_data_dir):
    """train.py --strategy=multi_worker as two localhost workers: both finish the same run (same seed, same losses),
    the chief's checkpoint loads into a single-device model and equals the other worker's copy."""
    import tensorflow as tf

    import family

    hosts = [f'localhost:{port}' for port in free_ports(2)]
    log_root = str(tmp_path / 'run')
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(dict(cluster=dict(worker=hosts),
                                                         task=dict(type='worker', index=index))))
        cmd = [sys.executable, os.path.join(REPO, 'train.py'), f'--log_root={log_root}', f'--data_dir={png_data_dir}',
               '--strategy=multi_worker', '--max_epochs=1', f'--hparams={HPARAMS}, num_steps=2']
        workers.append(subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True))
    try:
        outputs = [worker.communicate(timeout=1200) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    logs = ''.join(f'\n--- worker {i} stderr:\n{err[-2500:]}' for i, (_, err) in enumerate(outputs))
    assert [worker.returncode for worker in workers] == [0, 0], logs
    summaries = [[line for line in out.splitlines() if line.startswith(('model_type', 'epoch', 'done'))]
                 for out, _ in outputs]
    assert summaries[0] == summaries[1] and 'done: step 2' in summaries[0][-1], summaries
    net, hps = family.restore_model(log_root)
    assert hps.num_steps == 2 and net.gmm.de_mu.shape == (4, 16)
    chief = tf.train.latest_checkpoint(log_root)
    other = tf.train.latest_checkpoint(os.path.join(log_root, 'workers', 'worker-1'))
    assert os.path.basename(chief) == os.path.basename(other) == 'vector-1'
    for key, _ in tf.train.list_variables(chief):
        if key.startswith('model/'):
            np.testing.assert_array_equal(tf.train.load_variable(chief, key), tf.train.load_variable(other, key),
                                          err_msg=key)


def test_strategy_errors(monkeypatch):
    import distributed
    import utils
    assert distributed.parse_devices('/gpu:0, GPU:1,/device:CPU:0') == ['/device:GPU:0', '/device:GPU:1',
                                                                       '/device:CPU:0']
    for text, message in [('/tpu:0', "'/tpu:0' is not a device name"), ('/gpu:x', "'/gpu:x'"),
                          ('/gpu:0,/gpu:0', 'twice')]:
        with pytest.raises(utils.UserError, match=message):
            distributed.parse_devices(text)
    with pytest.raises(utils.UserError, match='no device /device:GPU:7'):
        distributed.make_strategy('mirrored', '/gpu:7')
    with pytest.raises(utils.UserError, match='--devices applies to --strategy=mirrored only'):
        distributed.make_strategy('multi_worker', '/gpu:0')
    monkeypatch.delenv('TF_CONFIG', raising=False)
    with pytest.raises(utils.UserError, match='TF_CONFIG, which is not set'):
        distributed.make_strategy('multi_worker')
    for config, message in [('{"cluster": ', 'not valid JSON'), ('{"cluster": {}}', 'needs "cluster" and "task"'),
                            ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
                             'is not a member')]:
        monkeypatch.setenv('TF_CONFIG', config)
        with pytest.raises(utils.UserError, match=message):
            distributed.make_strategy('multi_worker')


def main(data_dir, out_dir, *model_types):
    sys.path[:0] = [REPO, os.path.join(REPO, 'tests')]
    import distributed
    strategy = distributed.make_strategy('mirrored', '/cpu:0,/cpu:1')
    for model_type in model_types:
        compare_mirrored_step(strategy, model_type, data_dir, out_dir)
    compare_sharded_updates(strategy)


if __name__ == '__main__':
    main(*sys.argv[1:])
