"""The reproduction study (docs/results.md): do the papers' claims hold on real QuickDraw data at an equal budget?

    python3 reproduce.py --output_dir=runs/repro --docs_dir=docs --classifier_dir=pretrained/classifier-quickdraw3
    python3 reproduce.py --output_dir=runs/repro_tiny --tiny        # the whole chain on a toy budget (~1 min)

One command runs the chain of the project's own programs, each as the subprocess a user would type (all of them
are written to <output_dir>/commands.sh with their logs beside):
  1. seq2png.py rasterises the categories into <output_dir>/data (beside a copy of their stroke npz);
  2. classifier.py trains the Rec classifier on the real training images (its test accuracy is the Rec ceiling),
     unless --classifier_dir names one (e.g. pretrained/classifier-quickdraw3);
  3. for every seed and model_type (sketch_rnn, rpcl, ia, rpclh): train.py with the same hparams and the same
     number of epochs and no early stopping (so the same number of training steps; an epoch rolled back to the
     best checkpoint counts), then sample.py draws one sketch per test sketch (conditional sampling, z = the
     encoder mean of the reference).
Then, in this process, with the library functions behind retrieval.py and visualization.py: Rec and Ret@1/10/50
of each run, the alive Gaussians and losses of every validation from the TensorBoard events, and the t-SNE maps.
Outputs: <output_dir>/results.json and results_table.md (the table), and four figures (alive Gaussians and losses over
training, references beside generated sketches, t-SNE maps), also copied into --docs_dir if given.
A finished run (its result.json) is kept when the command is run again; an interrupted one resumes from its last
save. With --seed and op determinism every train.py run repeats bit for bit on the same machine.
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split
import os
import time

from absl import flags

import hyperparams
import rec_classifier
import study
import study_report
import utils


def define_flags():
    flags.DEFINE_string('output_dir', 'runs/repro', 'Where the data, runs, results and figures go.')
    flags.DEFINE_string('data_dir', 'data', 'Directory holding <category>.npz (stroke-3, train/valid/test).')
    flags.DEFINE_string('docs_dir', '', 'Also copy the figures and results_table.md here (docs/results.md shows them).')
    flags.DEFINE_list('models', list(study.MODELS), 'model_types to train, in table order.')
    flags.DEFINE_list('seeds', None, 'Seeds: every model is trained once per seed (default 1,2; --tiny: 1).')
    flags.DEFINE_list('categories', None, 'Categories (default alarm clock,face,radio; --tiny: bee,bus).')
    flags.DEFINE_integer('epochs', None, 'Training epochs per run, the same for every model (default 20; --tiny 1).',
                         lower_bound=1)
    flags.DEFINE_string('classifier_dir', '', 'Score Rec with this classifier (classifier.py --mode=train output, '
                        'trained on the same categories) instead of training one in <output_dir>/classifier.')
    flags.DEFINE_boolean('tiny', False, 'Toy sizes and budget: checks that the whole chain works (CI).')


# ------------------------------------------------------------------------------------------------ the study

def study_settings(cfg):
    """(categories, seeds, epochs, classifier_epochs, hparams) of the study, --tiny's toy ones, or the flags'."""
    base = study.TINY if cfg.tiny else study.STUDY
    categories = hyperparams.parse_categories(cfg.categories or base['categories'].split(','))
    unknown = sorted(set(cfg.models) - set(study.MODELS))
    if not cfg.models:
        raise utils.UserError(f"--models needs at least one of {', '.join(study.MODELS)}")
    if unknown:
        raise utils.UserError(f"unknown --models {', '.join(unknown)} (of {', '.join(study.MODELS)})")
    hparams = f"categories=[{','.join(categories)}], {base['hparams']}"
    seeds = parse_seeds(cfg.seeds or base['seeds'].split(','))
    return categories, seeds, cfg.epochs or base['epochs'], base['classifier_epochs'], hparams


def parse_seeds(texts):
    """The integers of --seeds."""
    try:
        seeds = [int(text) for text in texts]
    except ValueError:
        raise utils.UserError(f"--seeds={','.join(texts)} must be integers, e.g. 1,2") from None
    if not seeds or min(seeds) < 0:
        raise utils.UserError('--seeds needs at least one non-negative seed')
    return seeds


def run_study(cfg):
    """Everything of the module docstring; returns the results dict written to results.json."""
    categories, seeds, epochs, classifier_epochs, hparams = study_settings(cfg)
    start = time.time()
    chain = study.Chain(cfg.output_dir)
    data = study.prepare_data(chain, cfg.data_dir, categories)
    classifier_dir = cfg.classifier_dir or os.path.join(cfg.output_dir, 'classifier')
    if not cfg.classifier_dir and not os.path.isfile(os.path.join(classifier_dir, rec_classifier.CONFIG_FILE)):
        chain.run('classifier', 'classifier.py', mode='train', data_dir=data, categories=','.join(categories),
                  output_dir=classifier_dir, epochs=classifier_epochs, seed=seeds[0])
    classifier_model, classifier_categories = rec_classifier.load_classifier(classifier_dir)
    if sorted(classifier_categories) != sorted(categories):
        raise utils.UserError(f"--classifier_dir {classifier_dir} knows {', '.join(classifier_categories)}, not the "
                              f"study's {', '.join(categories)}")
    ceiling = rec_classifier.evaluate(classifier_dir, data, 'test')
    results = []
    for seed in seeds:
        for model_type in cfg.models:
            results.append(study.run_once(chain, data, model_type, seed, hparams, epochs, classifier_model,
                                    classifier_categories))
    rows = study_report.summarise(results, cfg.models)
    table = study_report.markdown_table(rows, [str(s) for s in seeds], ceiling, results[0]['num_sketches'])
    summary = dict(categories=categories, epochs=epochs, hparams=hparams, seeds=seeds,
                   classifier_ceiling=ceiling[0], classifier_ceiling_by_category=ceiling[1],
                   wall_seconds=round(time.time() - start, 1), table=table,
                   runs=[{k: v for k, v in r.items() if k not in ('curves', 'tsne')} for r in results])
    study_report.write_outputs(cfg, results, summary, categories, data)
    return summary


def main(cfg):
    summary = run_study(cfg)
    print(summary['table'])
    print(f"wall time {summary['wall_seconds'] / 60:.1f} min; results in {cfg.output_dir}")


if __name__ == '__main__':
    program.run(main, define_flags)
