"""reproduce.py: its helpers, its errors, and the whole chain in --tiny mode (what CI runs, about a minute)."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import dataset
import metrics
import reproduce
import study
import study_report
import study_scores
import utils


def test_epoch_improved_marks_the_kept_epochs():
    assert study_scores.epoch_improved([5.0, 4.0, 4.5, 4.0, 3.0]) == [True, True, False, False, True]
    assert study_scores.epoch_improved([]) == []


def test_mean_and_spread():
    assert study_report.mean_and_spread([0.25]) == '0.250'
    assert study_report.mean_and_spread([0.2, 0.3, 0.4]) == '0.300 ± 0.100'


def test_knn_accuracy_against_a_loop():
    rng = np.random.default_rng(0)
    codes, labels = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    codes[labels == 1] += 4.0                       # category 1 stands apart, 0 and 2 overlap
    expected = []
    for n in range(40):
        d = [((codes[m] - codes[n]) ** 2).sum() if m != n else np.inf for m in range(40)]
        nearest = labels[np.argsort(d, kind='stable')[:5]]
        expected.append(np.bincount(nearest, minlength=3).argmax() == labels[n])
    assert metrics.knn_accuracy(codes, labels) == pytest.approx(np.mean(expected))
    separated = np.repeat(np.arange(3), 10)
    assert metrics.knn_accuracy(np.eye(3)[separated] * 10 + rng.normal(size=(30, 3)) * 0.1, separated) == 1.0


def test_last_line_reads_through_progress_bars(tmp_path):
    path = tmp_path / 'log'
    path.write_text('first\nepoch 1:  10%\repoch 1: 100%\nerror: no data\n\n')
    assert study.last_line(str(path)) == 'error: no data'
    path.write_text('')
    assert study.last_line(str(path)) == '(no output)'


class Flags:
    """The flag values study_settings reads, tiny by default."""

    def __init__(self, **values):
        self.tiny, self.categories, self.models = True, None, list(study.MODELS)
        self.seeds = self.epochs = None
        self.classifier_dir = ''
        self.__dict__.update(values)


def test_study_settings_of_the_study_and_tiny_mode():
    categories, seeds, epochs, classifier_epochs, hparams = reproduce.study_settings(Flags(tiny=False))
    assert categories == ['alarm clock', 'face', 'radio'] and seeds == [1, 2] and epochs == 20
    assert hparams.startswith('categories=[alarm clock,face,radio], ') and 'save_every=5' in hparams
    assert reproduce.study_settings(Flags(epochs=3, seeds=['7']))[1:3] == ([7], 3)


@pytest.mark.parametrize('values, message', [
    (dict(models=['rpcl', 'vae']), 'unknown --models vae'),
    (dict(models=[]), '--models needs at least one'),
    (dict(seeds=['one']), 'must be integers'),
    (dict(seeds=['-1']), 'non-negative'),
])
def test_study_settings_reject_bad_flags(values, message):
    with pytest.raises(utils.UserError, match=message):
        reproduce.study_settings(Flags(**values))


def test_a_missing_category_file_is_one_clear_error(tmp_path):
    chain = study.Chain(str(tmp_path / 'out'))
    with pytest.raises(utils.UserError, match='no .*giraffe.npz'):
        study.prepare_data(chain, str(tmp_path), ['giraffe'])


def test_an_output_dir_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / 'taken').write_text('')
    with pytest.raises(utils.UserError, match='cannot create --output_dir .*taken'):
        study.Chain(str(tmp_path / 'taken'))


def test_programs_see_relative_paths_from_the_callers_directory(tmp_path, data_dir, monkeypatch):
    shutil.copy(dataset.category_npz_path(data_dir, 'bee'), tmp_path)
    monkeypatch.chdir(tmp_path)
    chain = study.Chain('out')
    chain.run('seq2png', 'seq2png.py', input_dir='.', output_dir='out', categories='bee')
    assert (tmp_path / 'out' / 'bee_png.npz').is_file() and (tmp_path / 'out' / 'logs' / 'seq2png.log').is_file()


def test_a_failing_program_names_itself_and_its_last_line(tmp_path):
    chain = study.Chain(str(tmp_path))
    with pytest.raises(utils.UserError, match=r"train.py failed \(exit 1\): error: .*unknown hparam 'bogus'"):
        chain.run('train', 'train.py', log_root=str(tmp_path / 'model'), hparams='bogus=1')
    assert 'python3 train.py' in (tmp_path / 'commands.sh').read_text()


def test_a_classifier_of_other_categories_is_one_clear_error(tmp_path, repo_dir):
    done = subprocess.run([sys.executable, 'reproduce.py', f'--output_dir={tmp_path}', '--tiny',
                           '--classifier_dir=pretrained/classifier-quickdraw3'], cwd=repo_dir, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1 and 'Traceback' not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == ('error: --classifier_dir pretrained/classifier-quickdraw3 knows '
                                                    "alarm clock, face, radio, not the study's bee, bus")


def tiny_flags(out):
    return [f'--output_dir={out}', f"--docs_dir={out / 'docs'}", '--tiny']


@pytest.fixture(scope='module')
def tiny_study(tmp_path_factory, repo_dir):
    """The CI mode: `reproduce.py --tiny` on the bundled data, as a user runs it."""
    out = tmp_path_factory.mktemp('repro')
    done = subprocess.run([sys.executable, 'reproduce.py', *tiny_flags(out)], cwd=repo_dir, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with open(out / 'results.json') as f:
        return out, json.load(f), done.stdout


def test_tiny_study_scores_every_model(tiny_study):
    out, summary, stdout = tiny_study
    runs = {r['model_type']: r for r in summary['runs']}
    assert sorted(runs) == sorted(study.MODELS) and summary['seeds'] == [1]
    for model_type, r in runs.items():
        assert r['num_sketches'] == 48                      # 24 test sketches of bee and bus, one sample each
        assert 0 <= r['rec'] <= 1 and set(r['rec_by_category']) == {'bee', 'bus'}
        ret = [r['ret'][k] for k in ('1', '10', '50')]
        assert 0 <= ret[0] <= ret[1] <= ret[2] == 1.0      # 50 > 48: every own code is among the 50 nearest
        assert r['validations'] == 1 and r['steps_trained'] == r['steps_kept'] == 2
        assert np.isfinite(r['best_valid_nll_per_step'])
        assert os.path.isfile(os.path.join(r['run_dir'], 'tsne', 'result.jpg'))
        if model_type == 'sketch_rnn':
            assert 'gaussians' not in r
        else:
            assert r['gaussians'] == (3 if model_type == 'rpclh' else 4)
            assert 1 <= r['alive_win_end'] <= r['gaussians'] and 1 <= r['alive_alpha_end'] <= r['gaussians']
    assert 0 < summary['classifier_ceiling'] <= 1
    assert summary['table'] in stdout and '| RPCL-pix2seqH |' in summary['table']


def test_tiny_study_writes_figures_commands_and_docs(tiny_study):
    out, summary, _ = tiny_study
    for name in study_report.FIGURES:
        assert (out / name).stat().st_size > 1000 and (out / 'docs' / name).is_file()
    assert (out / 'docs' / study_report.TABLE_FILE).read_text() == summary['table']
    lines = (out / 'docs' / 'commands.sh').read_text().splitlines()
    assert lines[0].startswith('# ') and lines[0].endswith('reproduce.py ' + ' '.join(tiny_flags(out)))
    commands = [line for line in lines if not line.startswith('#')]
    assert commands[0].startswith('python3 seq2png.py') and commands[1].startswith('python3 classifier.py')
    assert sum(c.startswith('python3 train.py') for c in commands) == 4
    assert sum(c.startswith('python3 sample.py') for c in commands) == 4


def test_tiny_study_run_again_keeps_finished_runs(tiny_study, repo_dir):
    out, summary, _ = tiny_study
    done = subprocess.run([sys.executable, 'reproduce.py', f'--output_dir={out}', '--tiny'], cwd=repo_dir,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count('kept ') == 4 and 'train.py' not in done.stdout
    with open(out / 'results.json') as f:
        assert json.load(f)['table'] == summary['table']
