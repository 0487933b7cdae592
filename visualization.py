"""t-SNE pictures of generated sketches and the latent Gaussians (docs/model.md#visualisation, from RPCL-pix2seqH).

    python3 visualization.py --sample_dir=sample --model_dir=model --output_dir=.

t-SNE (scikit-learn, 2-D, learning rate 150, perplexity min(30, n - 1), random initialisation as the original's
scikit-learn, Barnes-Hut with angle 0 as the original, which is near-exact and slow; --fast uses the default
angle 0.5) of the stacked [generated codes; Gaussian means]. Writes in --output_dir:
  result.jpg    every generated PNG at its min-max-normalised t-SNE position on a white 2000x1500 canvas
                (overlaps keep the darker pixel, so no sketch hides another)
  level_k.jpg   the codes coloured by their Gaussian (gau_idx, or rpclh's level-k j_label), means as crosses
  level_l.jpg   rpclh only: the codes coloured by their group (i_label)
The original names the scatter files j.jpg / i.jpg (its README: level_k.jpg / level_l.jpg) and draws only
clusters with more than one point; here every code is drawn. Headless (matplotlib Agg).

Controllable synthesis (control.py; --data_dir holds the test sketches, --seed fixes codes and decoding):
    python3 visualization.py --mode=gallery --model_dir=model --data_dir=data --output_dir=gallery
    python3 visualization.py --mode=direction --model_dir=model --data_dir=data --direction_from=gaussian:0 \
        --direction_to=gaussian:2 --apply_to=bee:0,1,2 --scales=0,0.5,1
    python3 visualization.py --mode=analogy --model_dir=model --data_dir=data --analogy=bee:0,bus:3,cat:5
  gallery     gallery_<kind>_<index>.png per alive Gaussian (rpclh: and group), the overviews
              gallery_gaussians.png (gallery_groups.png) and gallery.json
  direction   direction_<from>_<to>.png (rows: the --apply_to points, columns: z + s * direction) and .npz
  analogy     analogy.png (rows: the --analogy triples; A, B, C, their decodes, C + B - A) and analogy.npz
  pairs       pairs.png (real test sketches beside the model's drawings of them)

Sketch healing (docs/spgra.md): healing.png, original | masked | healed for the first --pairs_per_category sketches
of each category of a healing directory, with --model_dir the SP-gra2seq model that drew its masks:
    python3 visualization.py --mode=healing --model_dir=sp_model --data_dir=data --sample_dir=heal30 --output_dir=.
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split
import os

from absl import flags

import control
import family
import latent_map
import metrics
import utils

MODES = ('tsne', 'gallery', 'direction', 'analogy', 'pairs', 'healing')


def define_flags():
    flags.DEFINE_string('sample_dir', './sample', 'Directory written by sample.py.')
    flags.DEFINE_string('model_dir', './model', 'train.py --log_root of the model (for the Gaussian means).')
    flags.DEFINE_string('output_dir', '.', 'Where result.jpg, level_k.jpg and level_l.jpg are written.')
    flags.DEFINE_boolean('fast', False, 'Barnes-Hut t-SNE with the default angle 0.5 instead of the slow angle 0.')
    flags.DEFINE_integer('seed', None, 'Seed of the t-SNE initialisation, or of the codes and decoding of the other '
                         'modes (default: random, as the original).')
    flags.DEFINE_enum('mode', 'tsne', MODES, 'tsne: the t-SNE maps of a sample directory; gallery: sketches of '
                      'every alive Gaussian (and group); direction: codes moved along a latent direction; '
                      'analogy: A : B :: C : ?; pairs: real test sketches beside their reconstructions; healing: '
                      'original | masked | healed for a --sample_dir of sample.py --prob, --model_dir the SP-gra2seq '
                      'model of its masks')
    flags.DEFINE_string('data_dir', 'data', 'gallery, direction, analogy, pairs, healing: directory of the test '
                        'sketches, as training.')
    flags.DEFINE_float('temperature', 0.24, 'gallery, direction, analogy, pairs: decoding temperature tau.')
    flags.register_validator('temperature', lambda tau: tau > 0, '--temperature must be positive')
    flags.DEFINE_integer('tile_width', 96, 'gallery, direction, analogy, pairs, healing: side of each sketch tile in '
                         'pixels.',
                         lower_bound=latent_map.MIN_TILE)
    flags.DEFINE_integer('num_per_component', 16, 'gallery: sketches drawn from each alive component.')
    flags.DEFINE_integer('columns', 8, 'gallery: sketches per row (and per overview row).')
    flags.DEFINE_integer('pairs_per_category', 4, 'pairs: real test sketches per category, each beside its drawing; '
                         'healing: healed sketches per category.')
    flags.DEFINE_string('direction_from', None, 'direction: latent point(s) the direction starts from (control.py: '
                        'gaussian:K, group:I, CAT, CAT:i,j,..; A+B joins).')
    flags.DEFINE_string('direction_to', None, 'direction: latent point(s) it ends at; '
                        'direction = mean(to) - mean(from).')
    flags.DEFINE_string('apply_to', None, 'direction: the latent points moved, one row each.')
    flags.DEFINE_list('scales', ['-1', '-0.5', '0', '0.5', '1', '1.5', '2'], 'direction: the scales s of z + s * '
                      'direction, one column each.')
    flags.DEFINE_multi_string('analogy', [], 'analogy: A,B,C (each CAT:i, gaussian:K or group:I), '
                              'repeat for more rows.')


def parse_scales(texts):
    """The floats of --scales."""
    try:
        return [float(text) for text in texts]
    except ValueError:
        raise utils.UserError(f"--scales={','.join(texts)} must be numbers, e.g. -1,0,0.5,1") from None


def check_control_flags(cfg):
    """UserError for flags of --mode=gallery, direction, analogy or pairs that are wrong whatever the model."""
    needed = dict(direction=('direction_from', 'direction_to', 'apply_to'), analogy=('analogy',)).get(cfg.mode, ())
    missing = [f'--{name}' for name in needed if not getattr(cfg, name)]
    if missing:
        raise utils.UserError(f"--mode={cfg.mode} needs {', '.join(missing)}")


def control_mode(cfg):
    """Run --mode=gallery, pairs, direction, analogy or healing (control.py) and print the files written."""
    check_control_flags(cfg)
    scales = parse_scales(cfg.scales)
    net, test_set = family.load_model_and_test_split(cfg.model_dir, cfg.data_dir)
    if cfg.mode == 'healing':
        healing_mode(cfg, net, test_set)
        return
    seed = utils.resolve_seed(cfg.seed)
    settings = dict(temperature=cfg.temperature, seed=seed, tile_width=cfg.tile_width)
    if cfg.mode == 'gallery':
        paths = control.gallery(net, test_set, cfg.output_dir, num_per_component=cfg.num_per_component,
                                columns=cfg.columns, **settings)
    elif cfg.mode == 'pairs':
        paths = [control.reconstruction_pairs(net, test_set, cfg.output_dir,
                                              pairs_per_category=cfg.pairs_per_category, **settings)[0]]
    elif cfg.mode == 'direction':
        paths = [control.direction_grid(net, test_set, cfg.output_dir, cfg.direction_from, cfg.direction_to,
                                        cfg.apply_to, scales, **settings)[0]]
    else:
        paths = [control.analogy_grid(net, test_set, cfg.output_dir, cfg.analogy, **settings)[0]]
    for path in paths:
        print(f'wrote {path}')
    print(f'seed {seed}')


def healing_mode(cfg, net, test_set):
    """--mode=healing: the picture of a healing directory, with the masks of the SP-gra2seq model --model_dir."""
    if net.encoder_input != 'graph':
        raise utils.UserError(f'--mode=healing needs as --model_dir the SP-gra2seq model whose masks --sample_dir '
                              f'holds; {cfg.model_dir} is a {net.hps.model_type} model')
    if not os.path.isdir(cfg.sample_dir):
        raise utils.UserError(f'--sample_dir {cfg.sample_dir} does not exist')
    path = control.healing_triplets(cfg.sample_dir, net.hps, test_set, cfg.output_dir,
                                    per_category=cfg.pairs_per_category, tile_width=cfg.tile_width)
    print(f'wrote {path}')


def main(cfg):
    if not os.path.isdir(cfg.model_dir):
        raise utils.UserError(f'--model_dir {cfg.model_dir} does not exist')
    if cfg.mode != 'tsne':
        control_mode(cfg)
        return
    net, hps = family.restore_model(cfg.model_dir)
    samples = metrics.load_sample_dir(cfg.sample_dir, hps.categories)
    if samples.codes.shape[1] != hps.z_size:
        raise utils.UserError(f'the codes in {cfg.sample_dir} have {samples.codes.shape[1]} dimensions but the '
                              f'model has z_size={hps.z_size}: samples of another model?')
    means = latent_map.gaussian_means(net)
    print(f't-SNE of {len(samples.codes)} codes and {0 if means is None else len(means)} Gaussian means'
          f"{'' if cfg.fast else ' (angle 0: slow for many points; --fast is quicker)'}")
    for path in latent_map.visualise(samples, means, cfg.output_dir, fast=cfg.fast, seed=cfg.seed):
        print(f'wrote {path}')


if __name__ == '__main__':
    program.run(main, define_flags)
