"""How long does the playground page wait for an answer (docs/serve.md)?

Starts serve.py's server (webapp.make_server) in this process on a free loopback port over --model_dir, then
times whole HTTP requests from a client thread: `encode` (the drawn sketch rendered, encoded, placed in the
mixture, and --count redrawings decoded), `gaussian` (8 sketches from one Gaussian) and `compare` (needs
--data_dir). Prints the median and the slowest of --runs requests after one warm-up request per step (the first
call of each compiled function traces it; the server does that once per model).

  python3 bench/serve_bench.py --model_dir=pretrained/rpcl512-quickdraw3 --data_dir=data
"""
import http.client
import json
import os
import statistics
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import program  # noqa: E402  (first: it sets TensorFlow's start-up switches)

# isort: split
from absl import flags  # noqa: E402


def define_flags():
    flags.DEFINE_string('model_dir', os.path.join(REPO, 'pretrained', 'rpcl512-quickdraw3'), 'The model to serve.')
    flags.DEFINE_string('data_dir', None, 'Test sketches for `compare` (skipped without).')
    flags.DEFINE_integer('runs', 20, 'Timed requests per step.', lower_bound=1)
    flags.DEFINE_integer('count', 4, 'Redrawings per encode request.', lower_bound=1)

# A face drawn on a 320-pixel pad: outline, eyes, nose, mouth
FACE = [[[70, 70], [160, 45], [250, 70], [275, 160], [250, 255], [160, 285], [70, 255], [45, 160], [70, 70]],
        [[115, 125], [125, 135]], [[195, 125], [205, 135]], [[160, 150], [150, 190], [165, 195]],
        [[115, 225], [160, 250], [205, 225]]]


def post(port, path, body):
    """Seconds for one POST and its whole answer (HTTP status checked)."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
    connection.request('POST', path, body=json.dumps(body), headers={'Content-Type': 'application/json'})
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    if response.status != 200:
        raise SystemExit(f'error: {path} answered {response.status}: {answer.decode()[:200]}')
    return time.perf_counter() - start


def main(cfg):
    import playground
    import webapp
    name = os.path.basename(os.path.normpath(cfg.model_dir))
    start = time.perf_counter()
    server = webapp.make_server(playground.load_playgrounds([cfg.model_dir], cfg.data_dir), '127.0.0.1', 0)
    loaded = time.perf_counter() - start
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    steps = {'encode': {'strokes': FACE, 'count': cfg.count},
             'gaussian': {'index': 0, 'count': 8}}
    if cfg.data_dir:
        steps['compare'] = {}
    print(f'{name}: loaded in {loaded:.1f} s; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; '
          f'median and slowest of {cfg.runs} requests after one warm-up')
    print(f'{"step":<10} {"first s":>8} {"median s":>9} {"slowest s":>10}')
    for step, body in steps.items():
        path = f'/api/models/{name}/{step}'
        first = post(port, path, dict(body, seed=0))
        times = [post(port, path, dict(body, seed=k + 1)) for k in range(cfg.runs)]
        print(f'{step:<10} {first:>8.3f} {statistics.median(times):>9.3f} {max(times):>10.3f}')
    server.shutdown()
    server.server_close()


if __name__ == '__main__':
    program.run(main, define_flags)
