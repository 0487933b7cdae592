"""Ret and Rec of generated sketches (docs/model.md#metrics).

    python3 retrieval.py --sample_dir=sample --model_dir=model [--classifier_dir=classifier]

Ret (docs/model.md#ret, as the original): every generated sketch n (`<c>_<n>.png`, read as RGB, red channel, x =
pixel/255*2-1) is re-encoded to y'_n = mu; the real codes y_m are the saved `code_<c>_<n>.npy` (the encoder mean of
the reference test sketch in conditional sampling). All N real codes are ranked by the mean squared distance
d(n, m) = mean_d (y_m - y'_n)^2, ties going to the lower index as the original's repeated argmin; Ret@k is the
fraction of n whose own y_n is among the k nearest, for k = 1, 10, 50. The original takes 10 chunks of floor(N/10)
and silently skips the remainder while still dividing by N; here every n counts. Distances come from chunked
matrix products (|a - b|^2 = |a|^2 + |b|^2 - 2 a.b, float64) so memory stays at chunk x N, not N x N x D.
sketch_rnn models re-encode the saved strokes (`strokes_<c>_<n>.npy`, divided by the scale factor that
sample.py recorded in sample_config.json) instead of the images; spgra models encode the patch graph of those
strokes (healed sketches, sketch_healing.py, docs/model.md#sketch-healing).

Rec (docs/model.md#rec): with --classifier_dir (a classifier.py model), the accuracy of the classifier on the generated
PNGs, each labelled with the category of its reference (the <c> of its name).

The original's flag is --output_dir (its README says --sample_dir); both are accepted.
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split
import os

from absl import flags

import family
import metrics
import utils


def define_flags():
    flags.DEFINE_string('sample_dir', None, 'Directory written by sample.py (default: sample).')
    flags.DEFINE_string('output_dir', None, "The original's name for --sample_dir.")
    flags.DEFINE_string('model_dir', 'model', 'train.py --log_root of the model that made the samples.')
    flags.DEFINE_string('classifier_dir', None, 'A classifier.py --output_dir: also print Rec.')
    flags.DEFINE_integer('batch_size', 256, 'Sketches encoded at once.', lower_bound=1)
    flags.DEFINE_integer('chunk', 256, 'Generated codes ranked at once (memory: chunk x N float64).', lower_bound=1)


# ------------------------------------------------------------------------------------------------ command line

def resolve_sample_dir(sample_dir, output_dir):
    """--sample_dir or its original name --output_dir (default 'sample'); both given must agree."""
    if sample_dir and output_dir and os.path.abspath(sample_dir) != os.path.abspath(output_dir):
        raise utils.UserError(f'--sample_dir={sample_dir} and --output_dir={output_dir} disagree: give one')
    return sample_dir or output_dir or 'sample'


def main(cfg):
    sample_dir = resolve_sample_dir(cfg.sample_dir, cfg.output_dir)
    if not os.path.isdir(cfg.model_dir):
        raise utils.UserError(f'--model_dir {cfg.model_dir} does not exist')
    classifier = None
    if cfg.classifier_dir:
        import rec_classifier  # Keras loads only when Rec is asked for
        classifier = rec_classifier.load_classifier(cfg.classifier_dir)
    net, hps = family.restore_model(cfg.model_dir)
    samples = metrics.load_sample_dir(sample_dir, hps.categories)
    print(f'{len(samples.names)} generated sketches in {sample_dir}')
    scores = metrics.score_samples(net, samples, sample_dir, classifier, batch_size=cfg.batch_size, chunk=cfg.chunk)
    for line in metrics.score_lines(scores):
        print(line)

if __name__ == '__main__':
    program.run(main, define_flags)
