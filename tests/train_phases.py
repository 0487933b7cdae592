"""`python3 train.py <flags>` that also logs which phase it is in, for the kill -9 test (test_reliability.py).

Before and after every training step, checkpoint write and evaluation pass (validation and test) it appends the
line 'begin <phase>' or 'end <phase>' to the file named by $TRAIN_PHASE_LOG, with one unbuffered O_APPEND write
per line, so that a process killed at any moment leaves a log that says what it was doing.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import program  # noqa: E402
import sketch_model  # noqa: E402
import train  # noqa: E402
import training  # noqa: E402

LOG = os.open(os.environ['TRAIN_PHASE_LOG'], os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def logged(phase, function):
    """function, with 'begin <phase>' and 'end <phase>' written around each call."""
    def wrapper(*args, **kwargs):
        os.write(LOG, f'begin {phase}\n'.encode())
        result = function(*args, **kwargs)
        os.write(LOG, f'end {phase}\n'.encode())
        return result
    return wrapper


def compile_logged_steps(*args, **kwargs):
    train_step, eval_step = compile_steps(*args, **kwargs)
    return logged('step', train_step), eval_step


compile_steps = sketch_model.compile_steps
sketch_model.compile_steps = compile_logged_steps
training.evaluate = logged('validation', training.evaluate)
training.Checkpoints.save_best = logged('checkpoint', training.Checkpoints.save_best)
training.Checkpoints.save_last = logged('checkpoint', training.Checkpoints.save_last)

if __name__ == '__main__':
    program.run(train.main, train.define_flags, before_start=train.configure_runtime)
