"""How many SP-gra2seq patch graphs per second does the data pipeline build, against the original's way?

At the default size (G = 21 nodes of P = 256 px, training masks with probability 0.1) on the bundled real
sketches, normalised as the loaders do:
  original   a replay of the original's make_graph_ and its feed preparation: three Python passes over the points,
             one cv2.line call per point, crops sliced one by one, the graph turned node by node into a float64
             [G, P, P, 1] tensor, the adjacency mask assembled from concatenations; one thread
  ours       spgra_data.build_graphs: one polyline call per sketch, one strided gather of all crops, uint8 nodes
             (the model converts them); 1 thread and one per core
The builders take turns run after run, so that a change in the machine's load hits them alike. Prints graphs/s and
CPU seconds per graph (medians of --runs after a warm-up), the speed-up over `original` measured in the same run,
and checks that both give the same graphs (node values v/255*2-1, masks, counts).

  python3 bench/graph_bench.py [--num_sketches=512 --runs=3 --patch=256]
"""
import os
import statistics
import sys
import time

import cv2
import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hyperparams  # noqa: E402
import spgra_data  # noqa: E402

flags.DEFINE_string('data_dir', 'data', 'Directory with the <category>.npz files.')
flags.DEFINE_list('categories', ['bee', 'bus', 'car', 'cat', 'flower'], 'Categories to take sketches from.')
flags.DEFINE_integer('num_sketches', 512, 'Sketches per run: the training sketches in order, repeated as needed.',
                     lower_bound=1)
flags.DEFINE_integer('runs', 3, 'Timed runs per builder, after one warm-up run.', lower_bound=1)
flags.DEFINE_integer('patch', 256, 'Patch side P (graph_picture_size).', lower_bound=4)
flags.DEFINE_float('mask_prob', 0.1, 'Masking probability (training: 0.1).')
FLAGS = flags.FLAGS

GRAPH_NUMBER = 21


def original_graph(seq, patch, uniforms, mask_prob):
    """The original's steps for one sketch: (float64 tensor [G, P, P, 1], patch count, masked indices)."""
    vertical = np.cumsum(seq[1:], axis=0)
    longer = max(int(np.ptp(vertical[:, 0])), int(np.ptp(vertical[:, 1])))
    seq = (seq / np.array([[longer, longer, 1]], np.float64) * np.array([[640, 640, 1]], np.float64)).astype(np.int16)
    vertical = np.cumsum(seq[1:], axis=0)
    xmin, ymin, _ = vertical.min(axis=0)
    start = np.array([int(-xmin - seq[0][0]) + 17, int(-ymin - seq[0][1]) + 17])
    side = max(int(np.ptp(vertical[:, 0])), int(np.ptp(vertical[:, 1]))) + 34
    canvas = np.zeros((side, side), np.uint8)
    pen, move = start.copy(), False
    for row in seq:
        if move:
            pen, move = pen + row[0:2], False
            continue
        cv2.line(canvas, tuple(pen.tolist()), tuple((pen + row[0:2]).tolist()), 255, thickness=16)
        move = int(row[2]) != 0
        pen = pen + row[0:2]
    border = int(patch * 1.5)
    band = np.zeros((border, side), np.uint8)
    canvas = np.concatenate((band, canvas, band), axis=0)
    column = np.zeros((side + 2 * border, border), np.uint8)
    canvas = np.concatenate((column, canvas, column), axis=1)
    half = patch // 2

    def centres():
        pen, move, count, found = start + border, False, 0, 0
        for row in seq:
            if move:
                pen, move = pen + row[0:2], False
                continue
            if count % 4 == 0:
                if found == GRAPH_NUMBER - 1:
                    return
                yield found, pen.copy()
                found += 1
            count += 1
            if int(row[2]) != 0:
                count, move = 0, True
            pen = pen + row[0:2]

    masked = []
    for k, (x, y) in centres():
        if uniforms[k] < mask_prob:
            canvas[y - half:y + half, x - half:x + half] = 0
            masked.append(k)
    graphs = np.zeros((GRAPH_NUMBER, patch, patch), np.uint8)
    graphs[0] = cv2.resize(canvas[border:border + side, border:border + side], (patch, patch))
    count = 0
    for k, (x, y) in centres():
        graphs[k + 1] = canvas[y - half:y + half, x - half:x + half]
        count = k + 1
    tensor = np.zeros((GRAPH_NUMBER, patch, patch, 1))
    for node in range(GRAPH_NUMBER):
        tensor[node] = np.expand_dims(graphs[node] / 255 * 2 - 1, axis=2)
    return tensor, count, masked


def original_mask(count, masked):
    """The original's adjacency mask: ones, or the (n+1) x (n+1) block built from concatenations; masked rows/cols 0."""
    size = GRAPH_NUMBER - 1
    if count == size:
        mask = np.ones([size, size])
    else:
        block = np.concatenate([np.ones([count + 1, count + 1]), np.zeros([size - 1 - count, count + 1])], axis=0)
        mask = np.concatenate([block, np.zeros([size, size - 1 - count])], axis=1)
    for k in masked:
        mask[k, :] = 0
        mask[:, k] = 0
    return mask


def run_original(sketches, uniforms, patch, mask_prob):
    out = [original_graph(seq, patch, u, mask_prob) for seq, u in zip(sketches, uniforms)]
    masks = [original_mask(count, masked) for _, count, masked in out]
    return np.stack([t for t, _, _ in out]), np.stack(masks), [c for _, c, _ in out]


def run_ours(sketches, uniforms, patch, mask_prob, workers):
    return spgra_data.build_graphs(sketches, GRAPH_NUMBER, patch, mask_prob, uniforms, workers=workers)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv):
    del argv
    hps = hyperparams.HParams(model_type='spgra', categories=FLAGS.categories, graph_picture_size=FLAGS.patch)
    train = spgra_data.load_graph_dataset(FLAGS.data_dir, hps)[0]
    sketches = [train.strokes[i % len(train.strokes)] for i in range(FLAGS.num_sketches)]
    uniforms = np.random.default_rng(0).random((len(sketches), GRAPH_NUMBER - 1))
    cores = os.cpu_count() or 1
    builders = {'original': lambda: run_original(sketches, uniforms, FLAGS.patch, FLAGS.mask_prob),
                'ours, 1 thread': lambda: run_ours(sketches, uniforms, FLAGS.patch, FLAGS.mask_prob, 1),
                f'ours, {cores} threads': lambda: run_ours(sketches, uniforms, FLAGS.patch, FLAGS.mask_prob, cores)}
    warm = slice(0, min(16, len(sketches)))
    run_original(sketches[warm], uniforms[warm], FLAGS.patch, FLAGS.mask_prob)
    run_ours(sketches[warm], uniforms[warm], FLAGS.patch, FLAGS.mask_prob, cores)
    walls, cpus, outputs = {name: [] for name in builders}, {name: [] for name in builders}, {}
    for _ in range(FLAGS.runs):
        for name, build in builders.items():
            outputs[name], wall, cpu = timed(build)
            walls[name].append(wall)
            cpus[name].append(cpu)
    tensor, masks, counts = outputs['original']
    ours = outputs['ours, 1 thread']
    difference = np.abs(ours.nodes[..., None] / 255 * 2 - 1 - tensor).max()
    same = difference == 0 and np.array_equal(ours.validity, masks) and ours.counts.tolist() == counts
    base = statistics.median(walls['original'])
    print(f'{len(sketches)} sketches, G = {GRAPH_NUMBER}, P = {FLAGS.patch}, mask_prob {FLAGS.mask_prob}, '
          f'{FLAGS.runs} runs; identical graphs: {same} (max node difference {difference})')
    print(f"{'builder':<20} {'graphs/s':>10} {'CPU ms/graph':>13} {'vs original':>12}")
    for name in builders:
        wall = statistics.median(walls[name])
        print(f'{name:<20} {len(sketches) / wall:>10.1f} {1000 * statistics.median(cpus[name]) / len(sketches):>13.2f} '
              f'{base / wall:>11.1f}x')


if __name__ == '__main__':
    app.run(main)
