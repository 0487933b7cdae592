"""The reproduction study (docs/results.md), scoring part: what one trained and sampled run measures (Rec, Ret,
code 5-NN, alive Gaussians, purity, the validation curve from its TensorBoard events) and its t-SNE map. The
metrics themselves are metrics.py's; the tags are training.py's.
"""
import glob
import os

import numpy as np
import tensorflow as tf

import family
import latent_map
import metrics
import model as model_lib
import sampling
import training

TRAINING_TAGS = dict(alive_win=training.ALIVE_WIN, alive_alpha=training.ALIVE_ALPHA,
                     valid_lil=training.tag(training.VALID, 'lil_loss'),
                     train_lil=training.tag(training.TRAIN, 'lil_loss'))


def training_curves(model_dir):
    """{key: [(wall_time, step, value)] in time order} of TRAINING_TAGS from a run's TensorBoard events; the
    validation scalars come once per epoch run (rolled-back epochs included)."""
    wanted = {tag: key for key, tag in TRAINING_TAGS.items()}
    curves = {key: [] for key in TRAINING_TAGS}
    for path in sorted(glob.glob(os.path.join(model_dir, 'events.out.tfevents.*'))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag in wanted:
                    number = float(tf.make_ndarray(value.tensor)) if value.HasField('tensor') else value.simple_value
                    curves[wanted[value.tag]].append((event.wall_time, event.step, number))
    return {key: sorted(points) for key, points in curves.items()}


def score_run(run_dir, classifier_model, classifier_categories, seed):
    """Rec, Ret@k, the training budget, the alive Gaussians at the kept checkpoint, the best validation NLL per
    step, latent-space scores and the t-SNE maps of visualization.py (in <run>/tsne) of one run."""
    model_dir, sample_dir = os.path.join(run_dir, 'model'), os.path.join(run_dir, 'sample')
    net, hps = family.restore_model(model_dir)
    samples = metrics.load_sample_dir(sample_dir, hps.categories)
    scores = metrics.score_samples(net, samples, sample_dir, (classifier_model, classifier_categories))
    curves = training_curves(model_dir)
    valid = [value for _, _, value in curves['valid_lil']]
    best = int(np.argmin(valid))              # the validation whose checkpoint restore_model loaded
    nll_divisor = 1 if hps.model_type == 'sketch_rnn' else hps.max_seq_len   # magenta's r_cost = lil_loss / T
    steps_per_validation = curves['valid_lil'][0][1]   # a rollback rewinds the step counter, so the first one
    result = dict(model_type=hps.model_type, rec=scores['rec'], rec_by_category=scores['rec_by_category'],
                  ret={str(k): v for k, v in scores['ret'].items()}, num_sketches=len(samples.names),
                  validations=len(valid), steps_trained=len(valid) * steps_per_validation,
                  steps_kept=curves['valid_lil'][best][1],
                  rolled_back=len(valid) - sum(epoch_improved(valid)),
                  best_valid_nll_per_step=valid[best] / nll_divisor, nll_divisor=nll_divisor,
                  code_knn=scores['knn'], curves=curves,
                  references=sampling.read_config(sample_dir)['references'])
    weights = net.mixture_weights()
    if weights is not None:
        winners = samples.gaussian_labels.get('j_label', samples.gaussian_labels.get('gau_idx'))
        result.update(gaussians=int(weights.shape[0]),
                      alive_alpha_end=int(model_lib.is_alive(weights.numpy()).sum()),
                      alive_win_end=int(curves['alive_win'][best][2]),
                      purity=metrics.purity(winners, samples.category_ids))
    means = latent_map.gaussian_means(net)
    latent_map.visualise(samples, means, os.path.join(run_dir, 'tsne'), fast=True, seed=seed)
    result['tsne'] = tsne_map(samples, means, seed)
    return result


def tsne_map(samples, means, seed):
    """2-D t-SNE positions (in [0, 1]) of the reference codes and the Gaussian means, with category labels."""
    points = samples.codes if means is None else np.concatenate([samples.codes, means])
    unit = latent_map.normalise(latent_map.tsne_embedding(points, fast=True, seed=seed))
    n = len(samples.codes)
    return dict(codes=unit[:n].tolist(), means=unit[n:].tolist() if means is not None else None,
                category_ids=samples.category_ids.tolist())


def epoch_improved(valid):
    """For each validation loss in time order: is it below every earlier one (the epoch is kept, else rolled
    back)?"""
    return [value < min(valid[:i], default=np.inf) for i, value in enumerate(valid)]
