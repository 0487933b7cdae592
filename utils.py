"""Shared library of the programs: one-line user errors, TensorFlow's runtime set-up and all-or-nothing file
writing. No TensorFlow import here, so this module imports fast.
"""
import contextlib
import ctypes
import json
import os
import sys
import tempfile

import numpy as np

# ----------------------------------------------------------------------------------------------------------------
# User-facing errors
# ----------------------------------------------------------------------------------------------------------------

class UserError(Exception):
    """A problem with the user's input; CLIs print 'error: <msg>' and exit 1."""


def resolve_seed(seed):
    """A --seed flag's value, or a fresh random seed in [0, 2^31) when it is None (the programs print it)."""
    return seed if seed is not None else int(np.random.SeedSequence().entropy % (2 ** 31))


def tensorflow_startup():
    """Set TensorFlow's start-up switches: call it before TensorFlow is imported, which reads them as it starts
    (values already in the environment win, docs/install.md#start-up-switches).
    - TF_ENABLE_ONEDNN_OPTS=1: oneDNN's CPU kernels, which TensorFlow turns on by itself only on some x86 CPUs;
      they make training faster where TensorFlow leaves them off (docs/speed.md#this-machine-amd-epyc-2026-12-07).
    - TF_CPP_MIN_LOG_LEVEL=2 drops TensorFlow's C++ INFO and WARNING lines and keeps its errors.
    - TF_ENABLED_DEVICE_TYPES=CPU where the CUDA driver is missing: no GPU can be used there, and TensorFlow's GPU
      probe would only log 'failed call to cuInit' as an error.
    The lines TensorFlow logs while its libraries load, before its log level applies, remain."""
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if sys.platform.startswith('linux') and not cuda_driver_present():
        os.environ.setdefault('TF_ENABLED_DEVICE_TYPES', 'CPU')


def cuda_driver_present():
    """Whether the CUDA driver library loads here, under the name TensorFlow loads it by (libcuda.so.1)."""
    try:
        ctypes.CDLL('libcuda.so.1')
    except OSError:
        return False
    return True


# XLA auto-clustering of the element-wise ops only: each step's chains of them fuse, the matmuls stay TensorFlow's
AUTOJIT_XLA_FLAGS = ('--tf_xla_auto_jit=2', '--tf_xla_cpu_global_jit', '--tf_xla_ops_to_cluster=FUSIBLE')


def configure_runtime(autojit=False):
    """Set TensorFlow's process-wide switches of train.py (bench/train_bench.py): host tensors from TensorFlow's
    pooling BFC allocator (TF_CPU_ALLOCATOR_USE_BFC) instead of one malloc each, and with autojit the XLA
    auto-clustering of the element-wise ops (TF_XLA_FLAGS). TensorFlow may read both as soon as it is imported,
    so call this before importing it (or, in a program that imports it at the top, before absl's app.run);
    switches already in the environment are kept."""
    os.environ.setdefault('TF_CPU_ALLOCATOR_USE_BFC', 'true')
    xla_flags = os.environ.get('TF_XLA_FLAGS', '')
    if autojit and '--tf_xla_auto_jit' not in xla_flags:
        os.environ['TF_XLA_FLAGS'] = ' '.join([xla_flags, *AUTOJIT_XLA_FLAGS]).strip()


# ----------------------------------------------------------------------------------------------------------------
# All-or-nothing file writing
# ----------------------------------------------------------------------------------------------------------------

def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path, write):
    """Call write(file) on a temporary file next to `path`, fsync it, then os.replace it onto `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
    except OSError as e:
        raise UserError(f'cannot write {path}: {e.strerror}') from None
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise


def atomic_write_bytes(path, data: bytes):
    _atomic_write(path, lambda f: f.write(data))


def copy_atomically(source, target):
    """Copy a file through a temporary name, so that the target is never half-written."""
    with open(source, 'rb') as f:
        atomic_write_bytes(target, f.read())


def make_output_dir(path, flag):
    """os.makedirs(path, exist_ok=True), or one UserError naming the flag (e.g. a file stands at path)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UserError(f'cannot create {flag} {path}: {e.strerror}') from None


def atomic_write_json(path, value):
    """Write value as indented JSON, atomically; returns path."""
    atomic_write_bytes(path, (json.dumps(value, indent=2) + '\n').encode('utf-8'))
    return path


def atomic_savez(path, **arrays):
    """np.savez to exactly `path` (no '.npz' appended), all or nothing."""
    _atomic_write(path, lambda f: np.savez(f, **arrays))
