#!/usr/bin/env bash
# The whole chain on the bundled demo data (real QuickDraw bee, bus and cat sketches), small enough for a 2-core
# CPU in about five minutes: rasterise, train RPCL-pix2seq, train the Rec classifier, sample one sketch per test
# sketch, score Rec and Ret, and draw the t-SNE map. Outputs go to runs/demo/ (override: OUT=dir ./demo.sh).
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-runs/demo}
CATEGORIES=bee,bus,cat
HPARAMS="categories=[bee,bus,cat], dec_model=hyper, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=3, num_sub=2"

python3 seq2png.py --input_dir=data --output_dir=data --categories=$CATEGORIES
python3 train.py --log_root="$OUT/model" --data_dir=data --hparams="$HPARAMS" --max_epochs=10 --seed=1
python3 classifier.py --mode=train --data_dir=data --categories=$CATEGORIES --output_dir="$OUT/classifier" --epochs=8
python3 sample.py --data_dir=data --model_dir="$OUT/model" --output_dir="$OUT/sample" --seed=1
python3 retrieval.py --model_dir="$OUT/model" --sample_dir="$OUT/sample" --classifier_dir="$OUT/classifier"
python3 visualization.py --model_dir="$OUT/model" --sample_dir="$OUT/sample" --output_dir="$OUT" --fast --seed=1
echo "outputs: checkpoints and TensorBoard logs in $OUT/model, sketches in $OUT/sample, t-SNE maps in $OUT/*.jpg"
