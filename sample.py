"""Draw sketches with a trained model (docs/sampling.md; the decoding: docs/model.md#sampling, #hierarchy-labels).

    python3 sample.py --data_dir=data --model_dir=model --output_dir=sample
    python3 sample.py --data_dir=data --model_dir=model --latent=gmm --component=3
    python3 sample.py --data_dir=data --model_dir=model --mode=interpolate --category=bee --index_a=0 --index_b=7
    python3 sample.py --data_dir=data --model_dir=sp_model --prob=0.3     # spgra: sketch healing (sketch_healing.py)
    python3 sample.py --data_dir=data --model_dir=model --mask_model_dir=sp_model --prob=0.3   # the same masks, healed
                                                                           # by an image model (docs/spgra.md)

The files written for every sketch (names as the original's) are listed in docs/sampling.md#files.

Latent sources (--latent): `conditional` (the original's default): z = encoder mean of random test sketches;
`prior`: z ~ N(0, I) (the original's --conditional=False); `gmm`: z drawn from the learned mixture, or from one
Gaussian with --component=k (Q18). Each sketch n of category c also has a reference: the n-th of a random
permutation of c's test sketches (sample_config.json lists them: `references`, category -> test index of each n).
Its encoder outputs feed the IA labels (harmony weights need sigma2) and rpclh's --transient_labels (the original's
one transient EM update on the batch of codes, Q14).

Differences from the original, all in speed or clarity: many codes decode at once in one compiled loop (the same
distribution per sketch; the random stream differs), and with --stop_at_eos a sketch stops at its end-of-sketch
token, which leaves its stroke-3 result unchanged. Strokes are always black (the original's per-category colours
vanish in the red channel that retrieval reads, Q17). --num_per_category=0 (the default) takes the whole
test split (2500 per QuickDraw category, the original's default); asking for more than the split holds is an error.
Outputs are reproducible for the same --seed and --batch_size.
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split
import os

from absl import flags

import family
import hyperparams
import sampling
import utils


def define_flags():
    flags.DEFINE_string('data_dir', 'data', 'Directory with <category>.npz and <category>_png.npz, as for training.')
    flags.DEFINE_string('model_dir', 'model', 'train.py --log_root of the model to sample from.')
    flags.DEFINE_string('output_dir', 'sample', 'Directory for the generated files (flat, names as the original).')
    flags.DEFINE_integer('num_per_category', 0, 'Sketches per category (0: the whole test split).', lower_bound=0)
    flags.DEFINE_boolean('conditional', True, 'The original flag: --noconditional means --latent=prior.')
    flags.DEFINE_string('latent', None, 'Source of z: conditional | prior | gmm (default: from --conditional).')
    flags.DEFINE_integer('component', None, 'With --latent=gmm: draw every z from this Gaussian (default: all).')
    flags.DEFINE_float('temperature', 0.24, 'Temperature tau of the mixture weights, pen states and offsets.')
    flags.register_validator('temperature', lambda tau: tau > 0, '--temperature must be positive')
    flags.DEFINE_integer('seed', None, 'Seed of the references, the codes and the decoding (default: random).')
    flags.DEFINE_integer('batch_size', 256, 'Codes decoded at once.', lower_bound=1)
    flags.DEFINE_boolean('stop_at_eos', True, 'Stop decoding a sketch at its end-of-sketch token.')
    flags.DEFINE_boolean('transient_labels', False, 'rpclh: labels after one transient EM update on the batch of '
                         'codes, as the original (default: under the stored parameters).')
    flags.DEFINE_enum('mode', 'sample', ['sample', 'interpolate'],
                      'sample: sketches of every category; interpolate: a strip of codes.')
    flags.DEFINE_string('category', None, 'interpolate: category of the two test sketches (default: the first).')
    flags.DEFINE_integer('index_a', 0, 'interpolate: test sketch index of the first code.')
    flags.DEFINE_integer('index_b', 1, 'interpolate: test sketch index of the last code.')
    flags.DEFINE_integer('steps', 10, 'interpolate: number of codes from a to b, ends included.')
    flags.DEFINE_float('prob', None, 'spgra: sketch healing, the probability that a patch is masked (default 0.1, '
                       "the original's); see sketch_healing.py.")
    flags.DEFINE_string('mask_seed_file', None, 'spgra: .npy of the uniforms deciding the masks (default: the '
                        "project's stream, written to <output_dir>/random_seed.npy).")
    flags.DEFINE_string('mask_model_dir', None, 'An image model (rpcl, rpclh, ia) heals with --prob: the masks are '
                        "those this spgra model's patch graphs draw, whitened on the sketch's image (the healing "
                        'baseline of docs/spgra.md).')


# ------------------------------------------------------------------------------------------------ command line

def resolve_latent(latent, conditional):
    """--latent if given, else the original's --conditional (True: conditional, False: prior)."""
    if latent is None:
        return 'conditional' if conditional else 'prior'
    return latent


def check_flags(cfg):
    """The latent source of --latent (or --conditional), or a UserError; and one for a missing --model_dir."""
    latent = resolve_latent(cfg.latent, cfg.conditional)
    sampling.check_latent_name(latent)
    if not os.path.isdir(cfg.model_dir):
        raise utils.UserError(f'--model_dir {cfg.model_dir} does not exist')
    return latent


def mask_model_from_flags(cfg, net):
    """(hps, test split) of the spgra model of --mask_model_dir whose masks an image model heals, or None for an
    spgra model (its own masks); UserError for any other combination."""
    if net.encoder_input == 'graph':
        if cfg.mask_model_dir:
            raise utils.UserError('--mask_model_dir is for an image model: an spgra model heals with its own masks')
        return None
    if net.encoder_input != 'image' or not cfg.mask_model_dir:
        raise utils.UserError(f'--prob and --mask_seed_file heal sketches with an spgra model, or with an image model '
                              f'given --mask_model_dir; this model is {net.hps.model_type}')
    mask_hps = hyperparams.load_hparams_json(os.path.join(cfg.mask_model_dir, 'model_config.json'))
    if mask_hps.model_type != 'spgra':
        raise utils.UserError(f'--mask_model_dir={cfg.mask_model_dir} is a {mask_hps.model_type} model, not spgra')
    _, _, mask_test_set, mask_hps = family.load_splits(cfg.data_dir, mask_hps)
    return mask_hps, mask_test_set


def heal_from_flags(cfg, net, test_set, latent, seed):
    """Sketch healing with the flags' settings (sketch_healing.py): an spgra model heals its own masked patch graphs,
    an image model the masked images of --mask_model_dir's masks."""
    import sketch_healing  # TensorFlow graphs of the patch encoder, loaded only for healing
    mask_model = mask_model_from_flags(cfg, net)
    if cfg.mode != 'sample' or latent != 'conditional':
        raise utils.UserError('healing only heals sketches: drop --mode, --latent and --noconditional')
    prob = 0.1 if cfg.prob is None else cfg.prob
    total, fraction = sketch_healing.heal(net, test_set, cfg.output_dir, prob, num_per_category=cfg.num_per_category,
                                          mask_seed_file=cfg.mask_seed_file, temperature=cfg.temperature, seed=seed,
                                          batch_size=cfg.batch_size, stop_at_eos=cfg.stop_at_eos, mask_model=mask_model)
    print(f'healed {total} sketches (mask probability {prob}, {fraction:.1%} of the patches masked, seed {seed}) '
          f'into {os.path.abspath(cfg.output_dir)}')


def main(cfg):
    latent = check_flags(cfg)
    seed = utils.resolve_seed(cfg.seed)
    net, test_set = family.load_model_and_test_split(cfg.model_dir, cfg.data_dir)
    if net.encoder_input == 'graph' or cfg.prob is not None or cfg.mask_seed_file or cfg.mask_model_dir:
        heal_from_flags(cfg, net, test_set, latent, seed)
        return
    if cfg.mode == 'interpolate':
        category = cfg.category or net.hps.categories[0]
        path = sampling.interpolate(net, test_set, cfg.output_dir, category, cfg.index_a, cfg.index_b,
                                    steps=cfg.steps, temperature=cfg.temperature, seed=seed,
                                    stop_at_eos=cfg.stop_at_eos)
        print(f'wrote {path} (top: linear, bottom: spherical; seed {seed})')
        return
    total = sampling.sample(net, test_set, cfg.output_dir, num_per_category=cfg.num_per_category, latent=latent,
                            component=cfg.component, temperature=cfg.temperature, seed=seed,
                            batch_size=cfg.batch_size, stop_at_eos=cfg.stop_at_eos,
                            transient_labels=cfg.transient_labels)
    print(f'wrote {total} sketches ({latent} codes, seed {seed}) to {os.path.abspath(cfg.output_dir)}')


if __name__ == '__main__':
    program.run(main, define_flags)
