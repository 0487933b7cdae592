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
import os

import utils

utils.tensorflow_startup()   # before TensorFlow is imported: it reads these switches as it starts


from absl import app, flags  # noqa: E402

import family  # noqa: E402
import metrics  # noqa: E402


def define_flags():
    """The command-line flags, defined only when run as a program (importing this module defines none)."""
    flags.DEFINE_string('sample_dir', None, 'Directory written by sample.py (default: sample).')
    flags.DEFINE_string('output_dir', None, "The original's name for --sample_dir.")
    flags.DEFINE_string('model_dir', 'model', 'train.py --log_root of the model that made the samples.')
    flags.DEFINE_string('classifier_dir', None, 'A classifier.py --output_dir: also print Rec.')
    flags.DEFINE_integer('batch_size', 256, 'Sketches encoded at once.', lower_bound=1)
    flags.DEFINE_integer('chunk', 256, 'Generated codes ranked at once (memory: chunk x N float64).', lower_bound=1)


FLAGS = flags.FLAGS


# ------------------------------------------------------------------------------------------------ command line

def resolve_sample_dir(sample_dir, output_dir):
    """--sample_dir or its original name --output_dir (default 'sample'); both given must agree."""
    if sample_dir and output_dir and os.path.abspath(sample_dir) != os.path.abspath(output_dir):
        raise utils.UserError(f'--sample_dir={sample_dir} and --output_dir={output_dir} disagree: give one')
    return sample_dir or output_dir or 'sample'


@utils.cli_main
def main(argv):
    if len(argv) > 1:
        raise utils.UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    sample_dir = resolve_sample_dir(FLAGS.sample_dir, FLAGS.output_dir)
    if not os.path.isdir(FLAGS.model_dir):
        raise utils.UserError(f'--model_dir {FLAGS.model_dir} does not exist')
    classifier_model = None
    if FLAGS.classifier_dir:
        import rec_classifier  # Keras loads only when Rec is asked for
        classifier_model, classifier_categories = rec_classifier.load_classifier(FLAGS.classifier_dir)
    net, hps = family.restore_model(FLAGS.model_dir)
    samples = metrics.load_sample_dir(sample_dir, hps.categories)
    print(f'{len(samples.names)} generated sketches in {sample_dir}')
    generated = metrics.encode_generated(net, samples, sample_dir, FLAGS.batch_size)
    for k, value in metrics.ret_scores(samples.codes, generated, chunk=FLAGS.chunk).items():
        print(f'Top {k} Ret: {value:.4f}')
    knn = metrics.knn_accuracy(samples.codes, samples.category_ids)
    print(f'Code {metrics.KNN}-NN: {knn:.4f} (leave-one-out category accuracy of the real test codes)')
    for line in metrics.mixture_report(net, samples, hps.categories):
        print(line)
    if classifier_model is not None:
        accuracy, per_category = metrics.rec_score(classifier_model, classifier_categories, samples.images,
                                                   samples.category_ids, hps.categories)
        for category, value in per_category.items():
            print(f'Rec {category}: {value:.4f}')
        print(f'Rec: {accuracy:.4f}')


if __name__ == '__main__':
    define_flags()
    app.run(main)
