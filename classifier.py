"""Sketch-a-Net-48: the classifier behind the Rec metric (docs/model.md#rec).

Rec = accuracy of a Sketch-a-Net classifier, trained on the generative model's training images, on the
generated sketches labelled with the category of their reference. The authors never published their
classifier, its input size or its recipe (docs/model.md#rec [U]); this module is our documented choice.

Why not the canonical net: Sketch-a-Net (Yu et al. 2015) expects 225x225 input; on a 48x48 render its
15x15 stride-3 first layer leaves a 12x12 map, its three 3/2 max-pools leave nothing for the 7x7 "fc6", and a
stride of 3 skips 1-px strokes. We keep its spirit: a large first receptive field (at stride 1), few wide conv
layers, a last conv that covers the whole remaining map (the canonical "fc6"), dropout 0.5 before the 1x1
"fc" convs, ReLU, no normalisation layers. Channel counts are the canonical ones times `channel_scale`
(default 0.5: the input has 22x fewer pixels, and full width trains about 8x slower on a 2-core CPU).

| layer | canonical (225x225)               | Sketch-a-Net-48 (channels at channel_scale=1) | map (48 input) |
|-------|-----------------------------------|-----------------------------------------------|----------------|
| L1    | conv 15x15/3, 64; max-pool 3/2    | conv 5x5/1 same, 64, ReLU; max-pool 3/2        | 23x23          |
| L2    | conv 5x5, 128; max-pool 3/2       | conv 5x5 valid, 128, ReLU; max-pool 3/2        | 9x9            |
| L3-L5 | 3 x conv 3x3 pad 1, 256; pool 3/2 | the same                                      | 4x4            |
| L6    | conv 7x7 valid, 512; dropout 0.5  | conv 4x4 valid, 512, ReLU; dropout 0.5         | 1x1            |
| L7    | conv 1x1, 512; dropout 0.5        | conv 1x1, 512, ReLU; dropout 0.5               | 1x1            |
| L8    | conv 1x1, n_classes               | conv 1x1, n_classes (logits)                  | n_classes      |

Input: the generative model's scaling x = pixel/255*2-1 (white +1, ink -1). Training: random sub-pixel
shifts of up to `max_shift` px with white fill (a Keras layer, inactive at inference), Adam (lr 1e-3),
cross-entropy, early stopping on the validation loss with the best epoch's weights kept.

    python3 seq2png.py --input_dir=data --output_dir=data --categories=bee,bus,car,cat,flower
    python3 classifier.py --mode=train --data_dir=data --categories=bee,bus,car,cat,flower --output_dir=runs/clf
    python3 classifier.py --mode=eval --data_dir=data --model_dir=runs/clf
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split
import os

from absl import flags

import hyperparams
import rec_classifier


def define_flags():
    flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train: fit a classifier; eval: its accuracy on real '
                      'images (the Rec ceiling).')
    flags.DEFINE_string('data_dir', 'data', 'Directory holding <category>_png.npz (made by seq2png.py).')
    flags.DEFINE_multi_string('categories', ['bee', 'bus'], 'Training categories in label order, e.g. bee,bus,car.')
    flags.DEFINE_string('output_dir', 'classifier', 'Where train mode writes classifier.keras and its config.')
    flags.DEFINE_string('model_dir', '', 'Classifier read by eval mode (default: --output_dir).')
    flags.DEFINE_string('split', 'test', 'Split evaluated in eval mode: train, valid or test.')
    flags.DEFINE_integer('epochs', 30, 'Maximum training epochs (early stopping on the valid split).')
    flags.DEFINE_integer('batch_size', 64, 'Training minibatch size.')
    flags.DEFINE_integer('seed', 0, 'Seed for weights, shuffling, dropout and augmentation.')
    flags.DEFINE_float('channel_scale', 0.5, 'Channel counts = canonical Sketch-a-Net counts times this.')
    flags.DEFINE_integer('patience', 5, 'Stop after this many epochs without a lower valid loss.')


def main(cfg):
    if cfg.mode == 'train':
        categories = hyperparams.parse_categories(cfg.categories)
        _, config = rec_classifier.train_classifier(
            cfg.data_dir, categories, cfg.output_dir, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
            channel_scale=cfg.channel_scale, patience=cfg.patience)
        model_path = os.path.join(cfg.output_dir, rec_classifier.MODEL_FILE)
        print(f"saved {model_path}: best epoch {config['best_epoch']} of "
              f"{config['epochs_run']}, valid accuracy {config['valid_accuracy']:.2%}, {config['train_seconds']} s")
    else:   # eval
        model_dir = cfg.model_dir or cfg.output_dir
        accuracy, per_category = rec_classifier.evaluate(model_dir, cfg.data_dir, cfg.split)
        print(f'{model_dir} on the real {cfg.split} images of {cfg.data_dir}:')
        print(rec_classifier.format_accuracy(accuracy, per_category))


if __name__ == '__main__':
    program.run(main, define_flags)
