"""The Rec classifier as library functions: a small Keras CNN over 48x48 sketch images, its training, saving,
loading and accuracy (docs/model.md#rec; classifier.py is the program).
"""
import json
import os
import tempfile
import time

import keras
import numpy as np

import dataset
import utils

MODEL_FILE = 'classifier.keras'


CONFIG_FILE = 'classifier_config.json'


IMAGE_WIDTH = 48


def normalise_images(images):
    """uint8 pixels -> x = pixel/255*2-1; float images must already be in [-1, 1]. Returns float32 [N,48,48,1]."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != (IMAGE_WIDTH, IMAGE_WIDTH):
        raise utils.UserError(f'the classifier takes images of shape [N, {IMAGE_WIDTH}, {IMAGE_WIDTH}], '
                              f'got {list(images.shape)}')
    if images.dtype == np.uint8:
        x = dataset.pixels_to_unit(images)
    elif np.issubdtype(images.dtype, np.floating):
        x = images.astype(np.float32)
        if x.size and (x.min() < -1.0 or x.max() > 1.0):
            raise utils.UserError('float images must be in [-1, 1] (x = pixel/255*2-1); pass uint8 pixels otherwise')
    else:
        raise utils.UserError(f'the classifier takes uint8 or float images, got {images.dtype}')
    return x[..., None]


class ImageBatches(keras.utils.PyDataset):
    """Minibatches (x = pixel/255*2-1, labels) of uint8 images, normalised one batch at a time (float32 copies of
    the paper's 70,000 images per category would take 3.2 GB for 5 categories); reshuffled each epoch given an rng."""

    def __init__(self, images, labels, batch_size, rng=None):
        super().__init__()
        self.images, self.labels, self.batch_size, self.rng = images, labels, batch_size, rng
        self.order = np.arange(len(images))
        self.on_epoch_end()

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, i):
        batch = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        return normalise_images(self.images[batch]), self.labels[batch]

    def on_epoch_end(self):
        if self.rng is not None:
            self.rng.shuffle(self.order)


def build_classifier(num_classes, channel_scale=0.5, max_shift=2.0):
    """Sketch-a-Net-48 (table in the module docstring): [N,48,48,1] in [-1,1] -> logits [N, num_classes]."""
    def conv(canonical_channels, kernel, padding='same'):
        channels = max(1, round(canonical_channels * channel_scale))
        return keras.layers.Conv2D(channels, kernel, padding=padding, activation='relu')

    shift = max_shift / IMAGE_WIDTH  # RandomTranslation takes fractions of the image size
    return keras.Sequential([
        keras.Input((IMAGE_WIDTH, IMAGE_WIDTH, 1)),
        keras.layers.RandomTranslation(shift, shift, fill_mode='constant', fill_value=1.0),
        conv(64, 5), keras.layers.MaxPooling2D(3, 2),                                  # L1
        conv(128, 5, padding='valid'), keras.layers.MaxPooling2D(3, 2),                # L2
        conv(256, 3), conv(256, 3), conv(256, 3), keras.layers.MaxPooling2D(3, 2),     # L3-L5
        conv(512, 4, padding='valid'), keras.layers.Dropout(0.5),                      # L6 ("fc6")
        conv(512, 1), keras.layers.Dropout(0.5),                                       # L7
        keras.layers.Conv2D(num_classes, 1),                                           # L8: logits
        keras.layers.Flatten(),
    ], name='sketch_a_net_48')


def load_labelled_images(data_dir, categories):
    """{split: (uint8 images [N,48,48], int32 labels [N])}, label = index of the image's category in categories."""
    missing = [c for c in categories if not os.path.isfile(dataset.category_png_path(data_dir, c))]
    if missing:
        raise utils.UserError(f"no images for {', '.join(missing)} in {data_dir}; make them with: python3 seq2png.py "
                              f"--input_dir={data_dir} --output_dir={data_dir} --categories={','.join(missing)}")
    per_category = [dataset.load_png_npz(dataset.category_png_path(data_dir, c), IMAGE_WIDTH) for c in categories]
    return {split: (np.concatenate([images[split] for images in per_category]),
                    np.concatenate([np.full(len(images[split]), k, np.int32)
                                    for k, images in enumerate(per_category)]))
            for split in dataset.SPLITS}


def accuracy_by_category(labels, predicted, categories):
    """(overall accuracy, {category: accuracy over its images}); categories without images are left out."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    correct = labels == predicted
    per_category = {c: float(correct[labels == k].mean()) for k, c in enumerate(categories) if np.any(labels == k)}
    return float(correct.mean()), per_category


def save_classifier(model, config, output_dir):
    """<output_dir>/classifier.keras, then classifier_config.json, each written atomically."""
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        staged = os.path.join(staging, MODEL_FILE)
        model.save(staged)
        with open(staged, 'rb') as f:
            utils.atomic_write_bytes(os.path.join(output_dir, MODEL_FILE), f.read())
    utils.atomic_write_json(os.path.join(output_dir, CONFIG_FILE), config)


def train_classifier(data_dir, categories, output_dir, epochs=30, batch_size=64, seed=0,
                     channel_scale=0.5, patience=5, verbose=2):
    """Fit on the train split of <c>_png.npz, early-stop on valid, save to output_dir. Returns (model, config)."""
    categories = list(categories)
    if not categories or len(set(categories)) != len(categories):
        raise utils.UserError(f'categories must be distinct and at least one, got {categories}')
    if min(epochs, batch_size, patience) < 1 or channel_scale <= 0:
        raise utils.UserError('epochs, batch_size, patience and channel_scale must be positive')
    data = load_labelled_images(data_dir, categories)
    (train_x, train_y), (valid_x, valid_y) = data['train'], data['valid']
    keras.utils.set_random_seed(seed)
    model = build_classifier(len(categories), channel_scale)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=['accuracy'],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stopper = keras.callbacks.EarlyStopping(monitor='val_loss', patience=patience, restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(ImageBatches(train_x, train_y, batch_size, np.random.default_rng(seed)), epochs=epochs,
                        validation_data=ImageBatches(valid_x, valid_y, batch_size), callbacks=[stopper],
                        verbose=verbose)
    best = int(np.argmin(history.history['val_loss']))
    config = {
        'categories': categories, 'image_width': IMAGE_WIDTH, 'input_scaling': 'x = pixel/255*2-1',
        'architecture': 'sketch_a_net_48', 'channel_scale': channel_scale, 'batch_size': batch_size,
        'seed': seed, 'patience': patience, 'epochs_run': len(history.history['val_loss']),
        'best_epoch': best + 1, 'valid_accuracy': float(history.history['val_accuracy'][best]),
        'train_seconds': round(time.perf_counter() - start, 1),
    }
    inference = build_classifier(len(categories), channel_scale)   # uncompiled: the file holds no Adam state
    inference.set_weights(model.get_weights())
    save_classifier(inference, config, output_dir)
    return model, config


def load_classifier(model_dir):
    """(model, categories) from a directory written by train_classifier."""
    model_path, config_path = os.path.join(model_dir, MODEL_FILE), os.path.join(model_dir, CONFIG_FILE)
    if not (os.path.isfile(model_path) and os.path.isfile(config_path)):
        raise utils.UserError(f'no classifier in {model_dir} (expected {MODEL_FILE} and {CONFIG_FILE}, '
                              f'written by python3 classifier.py --mode=train)')
    try:
        with open(config_path) as f:
            categories = list(json.load(f)['categories'])
    except (ValueError, KeyError, TypeError) as e:
        raise utils.UserError(f'{config_path} is not a classifier config ({e!r})') from None
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as e:  # a damaged or foreign file: zip, h5 and deserialisation errors of all kinds
        raise utils.UserError(f'cannot read {model_path}: {e}') from None
    if model.output_shape[-1] != len(categories):
        raise utils.UserError(f'{model_path} has {model.output_shape[-1]} outputs but {config_path} '
                              f'names {len(categories)} categories')
    return model, categories


def predict(model, images, batch_size=256):
    """Class indices [N] for uint8 pixels or float images in [-1, 1], shape [N,48,48] or [N,48,48,1]."""
    logits = model.predict(normalise_images(images), batch_size=batch_size, verbose=0)
    return np.argmax(logits, axis=-1)


def evaluate(model_dir, data_dir, split='test'):
    """(accuracy, {category: accuracy}) of the saved classifier on the real images of one split."""
    if split not in dataset.SPLITS:
        raise utils.UserError(f"unknown split '{split}' (train, valid or test)")
    model, categories = load_classifier(model_dir)
    images, labels = load_labelled_images(data_dir, categories)[split]
    return accuracy_by_category(labels, predict(model, images), categories)


def format_accuracy(accuracy, per_category):
    """One line per category, then the overall accuracy, as percentages."""
    rows = [*per_category.items(), ('overall', accuracy)]
    return '\n'.join(f'  {name:<16s} {value:7.2%}' for name, value in rows)
