"""Run many command lines of the top-level programs in one Python process, each ending as `python3 <script> <args>`
would: the exit code and the stderr text the interpreter would leave. The bad-input table (test_reliability.py)
uses it so that TensorFlow is imported once for all its cases instead of once per case (4-5 s each here).

    python3 tests/cli_inprocess.py CASES_JSON RESULTS_JSON

CASES_JSON holds [[script, [arg, ...]], ...]; RESULTS_JSON receives [{"code": int, "stderr": str}, ...] in order.
"""
import contextlib
import io
import json
import os
import runpy
import sys
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import app, flags  # noqa: E402

import utils  # noqa: E402


def interpreter_exit(code):
    """(exit code, text on stderr) of an uncaught SystemExit(code), as CPython ends a program."""
    if code is None:
        return 0, ''
    if isinstance(code, int):
        return code, ''
    return 1, f'{code}\n'


def run_command(script, args):
    """Run <REPO>/<script> as __main__ with those arguments; its own flags are removed afterwards so the next
    program can define its own."""
    before = set(flags.FLAGS)
    stderr = io.StringIO()
    sys.argv = [os.path.join(REPO, script), *args]
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(sys.argv[0], run_name='__main__')
        code, tail = 0, ''
    except SystemExit as e:
        code, tail = interpreter_exit(e.code)
    except BaseException:  # what the interpreter prints for any other uncaught exception
        code, tail = 1, traceback.format_exc()
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
    return dict(code=code, stderr=stderr.getvalue() + tail)


def main(cases_path, results_path):
    app.define_help_flags()  # absl's own flags, defined once by the first app.run, stay for all programs
    with open(cases_path, encoding='utf-8') as f:
        cases = json.load(f)
    results = [run_command(script, args) for script, args in cases]
    utils.atomic_write_bytes(results_path, json.dumps(results).encode('utf-8'))


if __name__ == '__main__':
    main(*sys.argv[1:])
