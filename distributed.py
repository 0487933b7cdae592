"""Data-parallel training with tf.distribute: the strategies of `train.py --strategy` and their compiled steps.

    default       one device, no strategy: sketch_model.compile_steps, unchanged
    mirrored      tf.distribute.MirroredStrategy over every local GPU, or over --devices
    multi_worker  tf.distribute.MultiWorkerMirroredStrategy over the cluster described by TF_CONFIG

hparam batch_size is the global batch: every worker builds the same global batch (same seed, same shuffle) and each
replica trains on its 1/R slice. Every statistic over the batch is the global batch's (ReplicaBatch): the
latent-mixture updates all-reduce their sufficient statistics and the gradients are averaged before clipping, so a
step on R replicas equals the single-device step on the same global batch up to float rounding. Variables are
mirrored, so checkpoints hold one copy of each and load into a single-device model and back.
"""
import json
import os

import tensorflow as tf

import sketch_model
import utils

HEARTBEAT_SECONDS = 60  # a worker silent this long is taken for dead (TensorFlow's default 10 s aborts loaded runs)


# ------------------------------------------------------------------------------------------------ building

def parse_devices(text):
    """'/gpu:0,/gpu:1' or 'GPU:0, GPU:1' -> ['/device:GPU:0', '/device:GPU:1']; '' -> [] (every local GPU)."""
    devices = []
    for item in (part.strip() for part in text.split(',') if part.strip()):
        kind, _, index = item.lstrip('/').replace('device:', '').rpartition(':')
        if kind.upper() not in ('CPU', 'GPU') or not index.isdigit():
            raise utils.UserError(f"--devices: '{item}' is not a device name like /gpu:0 or /cpu:1")
        devices.append(f'/device:{kind.upper()}:{int(index)}')
    if len(set(devices)) != len(devices):
        raise utils.UserError(f'--devices names a device twice: {text}')
    return devices


def split_cpu(count):
    """Make the host CPU `count` logical devices /cpu:0 .. /cpu:<count-1> (to run replicas on a CPU-only box); only
    possible before TensorFlow initialises its devices."""
    cpu = tf.config.list_physical_devices('CPU')[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as err:
        raise utils.UserError(f'cannot split the CPU into {count} devices: {err}') from None


def mirrored_strategy(devices):
    """MirroredStrategy over `devices` (parse_devices names; CPUs beyond /cpu:0 are logical splits of the host CPU),
    or over every local GPU when empty."""
    cpus = [int(d.rpartition(':')[2]) for d in devices if ':CPU:' in d]
    if cpus and max(cpus) > 0:
        split_cpu(max(cpus) + 1)
    available = {d.name.replace('/job:localhost/replica:0/task:0', '') for d in tf.config.list_logical_devices()}
    missing = [d for d in devices if d not in available]
    if missing:
        raise utils.UserError(f"--devices: no device {', '.join(missing)} here (found: {', '.join(sorted(available))})")
    return tf.distribute.MirroredStrategy(devices or None)


def cluster_config():
    """TF_CONFIG as a dict, checked for the cluster and this task, or a UserError."""
    text = os.environ.get('TF_CONFIG')
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise utils.UserError(f'--strategy=multi_worker reads the cluster from TF_CONFIG, which is not set; e.g. '
                              f'{example}')
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise utils.UserError(f'TF_CONFIG is not valid JSON ({err})') from None
    if not isinstance(config, dict) or not isinstance(config.get('cluster'), dict) or 'task' not in config:
        raise utils.UserError(f'TF_CONFIG needs "cluster" and "task" entries; e.g. {example}')
    task = config['task']
    if not isinstance(task, dict) or not isinstance(task.get('index'), int) or \
            not 0 <= task['index'] < len(config['cluster'].get(task.get('type'), [])):
        raise utils.UserError(f'TF_CONFIG task {task} is not a member of the cluster {config["cluster"]}')
    return config


def configure_coordination(cluster):
    """Configure TensorFlow's coordination service as MultiWorkerMirroredStrategy does (leader: the chief, else
    worker 0; chief and workers coordinated), with a heartbeat timeout of HEARTBEAT_SECONDS. The strategy keeps a
    service configured before it; TensorFlow has no public switch for the timeout, so this one function uses its
    private API (imported here, only for a multi-worker run)."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
            for job in ('chief', 'worker') if job in cluster]
    leader = '/job:chief/replica:0/task:0' if 'chief' in cluster else '/job:worker/replica:0/task:0'
    context.context().configure_coordination_service(service_type='standalone', service_leader=leader,
                                                     coordinated_jobs=jobs,
                                                     heartbeat_timeout_in_ms=1000 * HEARTBEAT_SECONDS)


def make_strategy(name, devices=''):
    """The tf.distribute strategy of --strategy=mirrored or multi_worker. Call it before anything else runs TensorFlow:
    the CPU split and MultiWorkerMirroredStrategy must come before TensorFlow initialises."""
    if devices and name != 'mirrored':
        raise utils.UserError('--devices applies to --strategy=mirrored only (multi_worker uses every local GPU '
                              'of each worker; choose them with CUDA_VISIBLE_DEVICES)')
    if name == 'mirrored':
        return mirrored_strategy(parse_devices(devices))
    if name != 'multi_worker':
        raise utils.UserError(f"unknown --strategy '{name}'")
    configure_coordination(cluster_config()['cluster'])
    return tf.distribute.MultiWorkerMirroredStrategy()


# ------------------------------------------------------------------------------------------------ workers

def task(strategy):
    """(task type, index) of this process in a multi-worker cluster, or (None, 0)."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not resolver.task_type:
        return None, 0
    return resolver.task_type, resolver.task_id


def is_chief(strategy):
    """True for the process that writes the run directory: the only one, or the cluster's chief (the 'chief' task,
    else worker 0)."""
    task_type, index = task(strategy)
    if task_type is None:
        return True
    has_chief = 'chief' in strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == 'chief' or (not has_chief and task_type == 'worker' and index == 0)


def run_dir(log_root, strategy):
    """Where this process keeps its checkpoints: log_root for the chief; <log_root>/workers/<type>-<index> for the
    other workers, whose identical copies serve their own rollbacks and resumes."""
    if is_chief(strategy):
        return log_root
    task_type, index = task(strategy)
    return os.path.join(log_root, 'workers', f'{task_type}-{index}')


def worker_index(strategy):
    """This worker's position in the cluster (0 without one): offsets TensorFlow's seed so that the workers draw
    different noise and dropout for their shards (initial weights are broadcast from the chief)."""
    task_type, index = task(strategy)
    if task_type is None:
        return 0
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    order = [(t, i) for t in ('chief', 'worker') for i in range(len(spec.get(t, [])))]
    return order.index((task_type, index))


def shared_seed(strategy, seed):
    """Replica 0's seed on every worker (an all-reduce of the seed on replica 0 and 0 elsewhere), so that all
    workers shuffle and augment the same global batches; the seed itself without a multi-worker cluster."""
    if task(strategy)[0] is None:
        return seed

    def replica_seed():
        context = tf.distribute.get_replica_context()
        own = tf.where(tf.equal(context.replica_id_in_sync_group, 0), tf.constant(seed, tf.int64),
                       tf.constant(0, tf.int64))
        return context.all_reduce(tf.distribute.ReduceOp.SUM, own)

    return int(strategy.experimental_local_results(strategy.run(tf.function(replica_seed)))[0])


# ------------------------------------------------------------------------------------------------ compiled steps

class ReplicaBatch(sketch_model.LocalBatch):
    """The same inside `strategy.run` of a tf.distribute strategy, where every replica holds an equal shard of the
    global batch: partial sums are all-reduced (SUM), so that every replica computes the single-device statistic of
    the global batch (and the gradient of an all-sum is the all-sum of the gradients); gradients are averaged (MEAN),
    the gradient of the global mean loss when each replica's loss is the mean over its shard."""

    def total(self, partial):
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, partial)

    def mean(self, x, axis=0):
        count = tf.size(x) if axis is None else tf.shape(x)[0]
        return self.total(tf.reduce_sum(x, axis=axis)) / self.total(tf.cast(count, x.dtype))

    def size(self, x):
        return self.total(super().size(x))

    def average(self, grads):
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, grads)

    def shard_seed(self, seed):
        """Each replica folds its index into the step seed, so that shards draw different noise."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), replica)


def compile_replica_steps(strategy, net, batch_size, max_seq_len, image_size):
    """Distributed train and eval steps with sketch_model.compile_steps' interface: each takes the global batch
    (strokes [B, T+1, 5], the model's image_spec input, step, seed) and returns the losses averaged over the replicas
    (eval also the winners of every code, in batch order). The model's batch statistics become the global batch's
    (ReplicaBatch)."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise utils.UserError(f'batch_size={batch_size} does not split over the {replicas} replicas of the '
                              f'strategy: use a multiple of {replicas}')
    local = batch_size // replicas
    net.batch = ReplicaBatch()

    def shard(tensors):
        """This replica's rows of the global batch (of each tensor of a nest): slice replica_id of R equal slices."""
        index = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.nest.map_structure(
            lambda x: tf.gather(tf.reshape(x, [replicas, local] + x.shape[1:].as_list()), index), tensors)

    def mean(values):
        return {key: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None) for key, value in values.items()}

    signature = [tf.TensorSpec([batch_size, max_seq_len + 1, 5], tf.float32), net.image_spec(batch_size, image_size),
                 tf.TensorSpec([], tf.int64), tf.TensorSpec([2], tf.int64)]

    @tf.function(input_signature=signature)
    def train(strokes, images, step, seed):
        return mean(strategy.run(lambda s, i, t, r: net.train_step(shard(s), shard(i), t, r),
                                 args=(strokes, images, step, seed)))

    @tf.function(input_signature=signature)
    def evaluate(strokes, images, step, seed):
        out = strategy.run(lambda s, i, t, r: net.eval_step(shard(s), shard(i), t, r),
                           args=(strokes, images, step, seed))
        winners = strategy.gather(out.pop('winners'), axis=0)
        return dict(mean(out), winners=winners)

    return reporting_lost_workers(train), reporting_lost_workers(evaluate)


def reporting_lost_workers(step_fn):
    """step_fn, with the collective failures of a lost worker (aborted or unreachable peers) as a UserError."""
    def run(*args):
        try:
            return step_fn(*args)
        except (tf.errors.AbortedError, tf.errors.UnavailableError) as err:
            reason = next((line for line in str(err).splitlines() if 'aborted by' in line), str(err).splitlines()[0])
            raise utils.UserError(f'the replicas lost contact ({reason.strip()}); restart every worker with '
                                  f'--resume_training') from None
    return run
