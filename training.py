"""The training loop of every model type, as library functions (docs/training.md): epochs as the original's,
validation with rollback to the best checkpoint and strikes, mid-epoch resumable saves, exact resume, numerical
fault handling, TensorBoard scalars and the progress bar.
"""
import os
import signal
from time import monotonic

import numpy as np
import tensorflow as tf
import tqdm

import dataset
import family
import hyperparams
import model as model_lib
import sketch_model
import utils

STRATEGIES = ('default', 'mirrored', 'multi_worker')   # --strategy: one device, or tf.distribute (distributed.py)
TRAIN_NOISE, EVAL_NOISE = 0, 1   # first key of dataset.step_seed: training steps, evaluation batches
MAX_STRIKES = 5


FAULT_PATIENCE = 5        # training steps in a row with non-finite values before a rollback to the best checkpoint


MAX_FAULT_ROLLBACKS = 3   # such rollbacks without an improving epoch between them before the run stops


# The TensorBoard tags (docs/training.md#the-run-directory), the one place that names them: a split's prefix and a
# loss's name, magenta's where it has one (Valid_Reconstr_Cost); the alive counts have no prefix.
TAGS = dict(loss='Cost', lil_loss='Reconstr_Cost', alpha_loss='Alpha_Cost', gaussian_loss='Gaussian_Cost',
            de_loss='Image_Cost', kl_loss='KL_Cost', ij_loss='IJ_Cost', kl_weight='KL_Weight',
            learning_rate='Learning_Rate', z_dependence='Z_Dependence')
TRAIN, VALID, TEST = 'Train_', 'Valid_', 'Eval_'
ALIVE_WIN, ALIVE_ALPHA = 'Alive_Gaussians_Win', 'Alive_Gaussians_Alpha'


def tag(prefix, key):
    """The TensorBoard tag of value `key` (a losses-dict key) in a split: e.g. tag(VALID, 'lil_loss')."""
    return prefix + TAGS.get(key, key)


class TrainState(tf.Module):
    """What the original kept in para.npz, checkpointed with the model: counters, best loss, strikes."""

    def __init__(self):
        super().__init__(name='train_state')
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)          # s, the global step fed to the model
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)         # completed (kept) epochs
        self.batch_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # > 0 only in mid-epoch saves
        self.epochs_run = tf.Variable(0, dtype=tf.int64, trainable=False)    # never rewound: seeds the shuffles
        self.best_valid_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.strikes = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.serial = tf.Variable(0, dtype=tf.int64, trainable=False)        # orders saves across managers
        self.seed = tf.Variable(0, dtype=tf.int64, trainable=False)          # the run's seed, kept on resume
        self.fault_rollbacks = tf.Variable(0, dtype=tf.int64, trainable=False)  # since the last improving epoch


class NumericalFault(utils.UserError):
    """Training produced NaN or inf: FAULT_PATIENCE skipped steps in a row, or a variable about to be saved."""


class Checkpoints:
    """`vector-<epoch>` checkpoints of improving epochs (the rollback target) and one `last/` resumable save."""

    def __init__(self, log_root, net, state):
        self.net = net
        self.state = state
        self.saved_at = monotonic()   # of the newest save of either kind: what --checkpoint_minutes counts from
        self.ckpt = tf.train.Checkpoint(model=net, state=state)
        self.best = tf.train.CheckpointManager(self.ckpt, log_root, max_to_keep=10, checkpoint_name='vector')
        self.last = tf.train.CheckpointManager(self.ckpt, os.path.join(log_root, 'last'), max_to_keep=1,
                                               checkpoint_name='last')

    def save_best(self):
        self.check_finite()
        self.state.serial.assign_add(1)
        self.saved_at = monotonic()
        return self.best.save(checkpoint_number=int(self.state.epoch))

    def save_last(self):
        self.check_finite()
        self.state.serial.assign_add(1)
        self.saved_at = monotonic()
        return self.last.save()

    def save_last_if_due(self, minutes):
        """Save last/ when `minutes` (> 0) have passed since the newest save, across epochs and validations; returns
        the saved path or None."""
        if minutes > 0 and monotonic() - self.saved_at > 60 * minutes:
            return self.save_last()
        return None

    def check_finite(self):
        """NumericalFault naming the first model variable holding NaN or inf: such a state is never saved."""
        for variable in self.net.variables:
            if not np.isfinite(variable.numpy()).all():
                raise NumericalFault(f'{variable.name} holds NaN or inf at step {int(self.state.step)}; not saved')

    def newest(self):
        """Path of the most recent save of either kind, or None."""
        paths = [p for p in (self.best.latest_checkpoint, self.last.latest_checkpoint) if p]
        if not paths:
            return None
        return max(paths, key=self.serial)

    @staticmethod
    def serial(path):
        """The save order number stored in checkpoint `path`."""
        try:
            return tf.train.load_variable(path, 'state/serial/.ATTRIBUTES/VARIABLE_VALUE')
        except (ValueError, tf.errors.OpError) as err:
            raise utils.UserError(f'unreadable checkpoint {path}: {str(err).splitlines()[0]}') from None

    def restore(self, path):
        try:
            self.ckpt.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as err:
            raise utils.UserError(f'checkpoint {path} does not fit the model of model_config.json '
                                  f'({str(err).splitlines()[0]})') from None


def prepare_run(log_root, data_dir, hparams, resume):
    """Resolve hparams (saved config first when resuming, then --hparams), load the data, write model_config.json."""
    if os.path.exists(log_root) and not os.path.isdir(log_root):
        raise utils.UserError(f'--log_root {log_root} is a file, not a directory')
    config_path = os.path.join(log_root, 'model_config.json')
    if resume and os.path.exists(config_path):
        hps = hyperparams.load_hparams_json(config_path)
        saved_type = hps.model_type
        hps.parse(hparams)
        if hps.model_type != saved_type:
            raise utils.UserError(f'--resume_training: {log_root} holds a model_type={saved_type} model, not '
                                  f'{hps.model_type}; train that in a new --log_root')
    else:
        hps = hyperparams.get_default_hparams().parse(hparams)
    train_set, valid_set, test_set, hps = family.load_splits(data_dir, hps)
    if valid_set.num_batches == 0 or train_set.num_batches == 0:
        raise utils.UserError(f'batch_size={hps.batch_size} is larger than the validation or training split '
                              f'({len(valid_set.strokes)} / {len(train_set.strokes)} sketches); lower batch_size')
    try:
        os.makedirs(log_root, exist_ok=True)
    except OSError as e:
        raise utils.UserError(f'cannot create --log_root {log_root}: {e.strerror}') from None
    hyperparams.save_hparams_json(hps, config_path)
    return hps, train_set, valid_set, test_set


def step_inputs(batch, step, image_size, seed):
    """(strokes, images, step, seed) tensors for a compiled step; blank images for models that read no images
    (the encoder's input may be a tuple of arrays, as SP-gra2seq's graphs)."""
    images = batch.encoder_inputs
    if images is None:
        images = np.ones([len(batch.strokes), image_size, image_size], np.float32)
    return (tf.constant(batch.strokes), tf.nest.map_structure(tf.constant, images), tf.constant(step, tf.int64),
            tf.constant(seed, tf.int64))


def evaluate(eval_step, loader, step, run_seed=0):
    """Mean losses over the loader's sequential batches, and the set of Gaussians that win at least one code.
    Batch i's noise (for models that sample z in validation) comes from (run_seed, i), the same every epoch."""
    totals, winners = {}, set()
    for i in range(loader.num_batches):
        seed = dataset.step_seed(run_seed, EVAL_NOISE, i)
        out = eval_step(*step_inputs(loader.get_batch(i), step, loader.hps.png_width, seed))
        winners.update(out.pop('winners').numpy().tolist())
        for key, value in out.items():
            totals[key] = totals.get(key, 0.0) + float(value) / loader.num_batches
    return totals, winners


def alive_counts(net, winners):
    """Alive Gaussians: those winning at least one validation code, and those with prior weight above 1/(10K)."""
    weights = net.mixture_weights()
    if weights is None:
        return {}
    weights = weights.numpy()
    return {ALIVE_WIN: len(winners), ALIVE_ALPHA: int(model_lib.is_alive(weights).sum())}


def write_scalars(writer, prefix, values, step):
    with writer.as_default(step=step):
        for key, value in values.items():
            tf.summary.scalar(tag(prefix, key), value)


def run_epoch(train_step, train_set, state, hps, writer, log_every, checkpoints, checkpoint_minutes):
    """One pass over the training batches from state.batch_in_epoch on (stopping early at num_steps); returns the
    mean training losses. The shuffle and augmentation depend only on (seed, epochs_run) and each step's noise
    only on (seed, epochs_run, step), so a resumed epoch replays what the uninterrupted one would have done."""
    rng = np.random.default_rng([int(state.seed), int(state.epochs_run)])
    start = int(state.batch_in_epoch)
    means, count, skipped = {}, 0, 0
    bar = tqdm.tqdm(total=train_set.num_batches, initial=start, desc=f'pass {int(state.epochs_run) + 1}',
                    unit='step', dynamic_ncols=True, leave=False)
    for index, batch in enumerate(train_set.epoch(rng)):
        if index < start:
            continue
        if int(state.step) >= hps.num_steps:
            break
        step = int(state.step)
        seed = dataset.step_seed(int(state.seed), TRAIN_NOISE, int(state.epochs_run), step)
        out = train_step(*step_inputs(batch, step, hps.png_width, seed))
        state.batch_in_epoch.assign(index + 1)
        values = {k: float(v) for k, v in out.items()}
        if not values.pop('finite'):
            skipped += 1
            report_skipped_step(step, values, skipped)
            bar.update(1)
            continue
        skipped = 0
        state.step.assign_add(1)
        count += 1
        for key, value in values.items():
            means[key] = means.get(key, 0.0) + (value - means.get(key, 0.0)) / count
        if step % log_every == 0:
            write_scalars(writer, TRAIN, values, step)
            bar.set_postfix(loss=f"{values['loss']:.2f}", lil=f"{values['lil_loss']:.2f}")
        checkpoints.save_last_if_due(checkpoint_minutes)
        bar.update(1)
    bar.close()
    return means


def report_skipped_step(step, values, skipped):
    """Log a training step that train_step skipped for NaN or inf values; NumericalFault at FAULT_PATIENCE in a
    row."""
    bad = [key for key, value in values.items() if not np.isfinite(value)]
    what = ', '.join(bad) if bad else 'gradient or latent-mixture update'
    tqdm.tqdm.write(f'step {step}: non-finite {what}; step skipped ({skipped} in a row, rollback at {FAULT_PATIENCE})')
    if skipped >= FAULT_PATIENCE:
        raise NumericalFault(f'{skipped} training steps in a row had non-finite values (up to step {step})')


def roll_back(checkpoints, state, **counters):
    """Restore the best checkpoint if there is one (weights, Adam, latent mixture, step), set the TrainState
    `counters` (name=value) that the rollback keeps or advances, and save that state as the resumable `last/`.
    Returns the restored path, or None."""
    path = checkpoints.best.latest_checkpoint
    if path:
        checkpoints.restore(path)
    for name, value in counters.items():
        getattr(state, name).assign(value)
    checkpoints.save_last()
    return path


def roll_back_after_faults(checkpoints, state, fault):
    """Recover from a NumericalFault as from a non-improving epoch, without a strike: restore the best checkpoint
    and start a fresh epoch. After MAX_FAULT_ROLLBACKS rollbacks with no improving epoch between, stop."""
    rollbacks = int(state.fault_rollbacks) + 1
    if checkpoints.best.latest_checkpoint is None:
        raise utils.UserError(f'{fault} before the first checkpoint, so there is nothing to roll back to; '
                              f'lower learning_rate or check the data')
    if rollbacks > MAX_FAULT_ROLLBACKS:
        raise utils.UserError(f'{fault}; stopping: {MAX_FAULT_ROLLBACKS} rollbacks to the best checkpoint did not '
                              f'help (lower learning_rate or grad_clip, or check the data)')
    path = roll_back(checkpoints, state, fault_rollbacks=rollbacks, strikes=int(state.strikes),
                     epochs_run=int(state.epochs_run) + 1, batch_in_epoch=0)
    print(f'{fault}: restored {path} (step {int(state.step)}), rollback {rollbacks}/{MAX_FAULT_ROLLBACKS}',
          flush=True)


def train_summary(train_means):
    """The training part of the end-of-epoch line; an epoch resumed after its last batch trained no step."""
    if not train_means:
        return 'no training step in this process (resumed after the last batch)'
    return (f"train loss {train_means['loss']:.3f} lil {train_means['lil_loss']:.3f} "
            f"lr {train_means['learning_rate']:.2e}")


def close_epoch(state):
    """Count a finished pass over the training batches: the next one starts a new shuffle from its first batch."""
    state.epochs_run.assign_add(1)
    state.batch_in_epoch.assign(0)


def end_of_epoch(net, eval_step, sets, state, checkpoints, writer, train_means, max_strikes=MAX_STRIKES):
    """Validate; save and test on improvement, else count a strike and, with hparam rollback (the original), restore
    the best checkpoint. Returns the epoch's record (train means, valid and test losses, alive counts, outcome)."""
    _, valid_set, test_set = sets
    step = int(state.step)
    valid, winners = evaluate(eval_step, valid_set, step, int(state.seed))
    close_epoch(state)
    alive = alive_counts(net, winners)
    write_scalars(writer, VALID, valid, step)
    write_scalars(writer, '', alive, step)
    line = (f"epoch {int(state.epoch) + 1} step {step}: {train_summary(train_means)} | "
            f"valid lil {valid['lil_loss']:.3f} z-dep {valid['z_dependence']:.3f} | kl_w {valid['kl_weight']:.4f}")
    if alive:
        k = net.mixture_weights().shape[0]
        line += f" | alive {alive[ALIVE_WIN]}/{k} winning, {alive[ALIVE_ALPHA]}/{k} alpha>1/(10K)"
        with writer.as_default(step=step):
            tf.summary.histogram('de_alpha', net.mixture_weights())
    if valid['lil_loss'] < float(state.best_valid_loss):
        state.best_valid_loss.assign(valid['lil_loss'])
        state.strikes.assign(0)
        state.fault_rollbacks.assign(0)
        state.epoch.assign_add(1)
        checkpoints.save_best()
        test, _ = evaluate(eval_step, test_set, step, int(state.seed))
        write_scalars(writer, TEST, test, step)
        print(f"{line} | test lil {test['lil_loss']:.3f} loss {test['loss']:.3f} | saved", flush=True)
        return dict(step=step, train=train_means, valid=valid, test=test, improved=True, **alive)
    strikes = int(state.strikes) + 1
    limit = f'/{max_strikes}' if max_strikes else ''
    if net.hps.rollback:
        roll_back(checkpoints, state, strikes=strikes, epochs_run=int(state.epochs_run))
        print(f'{line} | no improvement: restored step {int(state.step)}, strike {strikes}{limit}', flush=True)
    else:
        state.strikes.assign(strikes)
        print(f'{line} | no improvement: kept training (rollback=false), strike {strikes}{limit}', flush=True)
    return dict(step=step, train=train_means, valid=valid, test=None, improved=False, **alive)


def build_and_compile(hps, log_root, strategy, jit_compile=False):
    """(model, its checkpoint directory, whether this process writes the run's logs, compiled train and eval steps):
    on one device, or mirrored over the replicas of a tf.distribute `strategy` (distributed.py, imported only
    then). The steps trace on their first call, so a checkpoint restored afterwards is what they run."""
    if strategy is None:
        net = family.build_model(hps)
        steps = sketch_model.compile_steps(net, hps.batch_size, hps.max_seq_len, hps.png_width, jit_compile=jit_compile,
                                        bucketed=hps.bucket_width > 0)
        return net, log_root, True, *steps
    import distributed  # tf.distribute's machinery loads only when a strategy asks for it
    with strategy.scope():
        net = family.build_model(hps)
    steps = distributed.compile_replica_steps(strategy, net, hps.batch_size, hps.max_seq_len, hps.png_width)
    return net, distributed.run_dir(log_root, strategy), distributed.is_chief(strategy), *steps


def train_and_evaluate(hps, sets, log_root, seed=0, jit_compile=False, log_every=20, max_epochs=100000,
                       max_strikes=MAX_STRIKES, checkpoint_minutes=30.0, resume=False, strategy=None):
    """Build the model, optionally resume, and train until max_strikes strikes in a row (0: no limit), max_epochs
    or num_steps. With a tf.distribute `strategy` (distributed.make_strategy) the model is mirrored over its replicas
    and every step is data-parallel over them; a multi-worker cluster's other workers keep their checkpoints under
    log_root/workers."""
    net, run_dir, chief, train_step, eval_step = build_and_compile(hps, log_root, strategy, jit_compile)
    state = TrainState()
    state.seed.assign(seed)
    checkpoints = Checkpoints(run_dir, net, state)
    if resume:
        path = checkpoints.newest()
        if path is None:
            raise utils.UserError(f'--resume_training: no checkpoint in {log_root}')
        checkpoints.restore(path)
        print(f'resumed {path}: step {int(state.step)}, epoch {int(state.epoch)}, strikes {int(state.strikes)}, '
              f'seed {int(state.seed)}')
    writer = tf.summary.create_file_writer(log_root) if chief else tf.summary.create_noop_writer()
    with writer.as_default(step=0):
        tf.summary.scalar('Num_Trainable_Params', sum(int(np.prod(v.shape)) for v in net.trainable_variables))
    interrupted, history = False, []

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        while ((not max_strikes or int(state.strikes) < max_strikes) and int(state.epochs_run) < max_epochs
               and int(state.step) < hps.num_steps):
            try:
                means = run_epoch(train_step, sets[0], state, hps, writer, log_every, checkpoints, checkpoint_minutes)
                # validate after every save_every-th epoch and when num_steps or max_epochs ends the run
                last_epoch = int(state.step) >= hps.num_steps or int(state.epochs_run) + 1 >= max_epochs
                if (int(state.epochs_run) + 1) % hps.save_every and not last_epoch:
                    close_epoch(state)
                    continue
                history.append(end_of_epoch(net, eval_step, sets, state, checkpoints, writer, means, max_strikes))
                if last_epoch:
                    break   # spent, even when a rollback has rewound the step counter below num_steps
            except NumericalFault as fault:
                roll_back_after_faults(checkpoints, state, fault)
        checkpoints.save_last()   # where the run stopped: --resume_training with a larger budget continues from here
    except KeyboardInterrupt:
        path = checkpoints.save_last()
        print(f'\ninterrupted: saved {path} at step {int(state.step)}; continue with --resume_training', flush=True)
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        writer.flush()
    return dict(step=int(state.step), epoch=int(state.epoch), best_valid_loss=float(state.best_valid_loss),
                strikes=int(state.strikes), fault_rollbacks=int(state.fault_rollbacks), interrupted=interrupted,
                history=history, model=net)


def make_strategy(name, devices=''):
    """None for one device (--strategy=default), else the tf.distribute strategy of distributed.py, which is
    imported only then. Call it before anything else runs TensorFlow."""
    if name == 'default' and not devices:
        return None
    import distributed
    return distributed.make_strategy(name, devices)


def run_seeds(strategy, seed):
    """(the run's seed, TensorFlow's global seed): on one device both are `seed`; a multi-worker cluster shares
    worker 0's run seed and offsets the global seed by the worker's index (distributed.py)."""
    if strategy is None:
        return seed, seed
    import distributed
    shared = distributed.shared_seed(strategy, seed)
    return shared, shared + distributed.worker_index(strategy)
