"""The skeleton every program runs on (docs/layout.md#a-new-program): a program is its flags and a `main(cfg)` over
library calls, and `run` does the rest the same way everywhere.

Importing this module sets TensorFlow's start-up switches (utils.tensorflow_startup), which TensorFlow reads as it
is imported, so a program imports it before any module that imports TensorFlow:

    import program  # first: it sets TensorFlow's start-up switches
    # isort: split
    from absl import flags
    import training

    def define_flags():
        flags.DEFINE_string('log_root', 'model', '...')

    def main(cfg):   # cfg: the parsed flags
        training.train_and_evaluate(...)

    if __name__ == '__main__':
        program.run(main, define_flags)
"""
import sys

from absl import app, flags

import utils

utils.tensorflow_startup()


def run(main, define_flags, before_start=None):
    """Run `main(cfg)` as the program: define its flags (only here, so that importing a program defines none),
    parse the command line with absl (`--help`, bad values), refuse stray arguments, and end a utils.UserError
    raised anywhere below as the one line `error: <message>` with exit code 1.
    before_start(cfg): called with the flags this program defines already parsed, before absl starts the program;
    for process-wide switches TensorFlow reads early (train.py's --autojit). A command line absl rejects reaches
    it with the flags' defaults, and absl then reports the error."""
    define_flags()
    if before_start is not None:
        try:
            flags.FLAGS(sys.argv, known_only=True)
        except flags.Error:
            pass
        before_start(flags.FLAGS)
    app.run(lambda argv: run_main(main, argv))


def run_main(main, argv):
    """main(flags.FLAGS) for absl's argv (the program's name and the arguments left after the flags): stray
    arguments and a UserError end the program with one line on stderr and exit code 1."""
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments: {' '.join(argv[1:])}")
    try:
        return main(flags.FLAGS)
    except utils.UserError as e:
        sys.exit(f'error: {e}')
