# 2026-12-01 23:33:17: python3 reproduce.py --output_dir=runs/repro --docs_dir=docs
python3 seq2png.py --input_dir=runs/repro/data --output_dir=runs/repro/data --categories=bee,bus,car,cat,flower
python3 classifier.py --mode=train --data_dir=runs/repro/data --categories=bee,bus,car,cat,flower --output_dir=runs/repro/classifier --epochs=30 --seed=1
python3 train.py --log_root=runs/repro/sketch_rnn-seed1/model --data_dir=runs/repro/data '--hparams=categories=[bee,bus,car,cat,flower], dec_model=lstm, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=5, num_sub=2, num_layer_i=10, num_layer_j=10, model_type=sketch_rnn' --seed=1 --max_epochs=30 --max_strikes=0
python3 sample.py --data_dir=runs/repro/data --model_dir=runs/repro/sketch_rnn-seed1/model --output_dir=runs/repro/sketch_rnn-seed1/sample --seed=1
python3 train.py --log_root=runs/repro/rpcl-seed1/model --data_dir=runs/repro/data '--hparams=categories=[bee,bus,car,cat,flower], dec_model=lstm, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=5, num_sub=2, num_layer_i=10, num_layer_j=10, model_type=rpcl' --seed=1 --max_epochs=30 --max_strikes=0
python3 sample.py --data_dir=runs/repro/data --model_dir=runs/repro/rpcl-seed1/model --output_dir=runs/repro/rpcl-seed1/sample --seed=1
python3 train.py --log_root=runs/repro/ia-seed1/model --data_dir=runs/repro/data '--hparams=categories=[bee,bus,car,cat,flower], dec_model=lstm, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=5, num_sub=2, num_layer_i=10, num_layer_j=10, model_type=ia' --seed=1 --max_epochs=30 --max_strikes=0
python3 sample.py --data_dir=runs/repro/data --model_dir=runs/repro/ia-seed1/model --output_dir=runs/repro/ia-seed1/sample --seed=1
python3 train.py --log_root=runs/repro/rpclh-seed1/model --data_dir=runs/repro/data '--hparams=categories=[bee,bus,car,cat,flower], dec_model=lstm, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=5, num_sub=2, num_layer_i=10, num_layer_j=10, model_type=rpclh' --seed=1 --max_epochs=30 --max_strikes=0
python3 sample.py --data_dir=runs/repro/data --model_dir=runs/repro/rpclh-seed1/model --output_dir=runs/repro/rpclh-seed1/sample --seed=1
python3 train.py --log_root=runs/repro/sketch_rnn-seed2/model --data_dir=runs/repro/data '--hparams=categories=[bee,bus,car,cat,flower], dec_model=lstm, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=5, num_sub=2, num_layer_i=10, num_layer_j=10, model_type=sketch_rnn' --seed=2 --max_epochs=30 --max_strikes=0
python3 sample.py --data_dir=runs/repro/data --model_dir=runs/repro/sketch_rnn-seed2/model --output_dir=runs/repro/sketch_rnn-seed2/sample --seed=2
python3 train.py --log_root=runs/repro/rpcl-seed2/model --data_dir=runs/repro/data '--hparams=categories=[bee,bus,car,cat,flower], dec_model=lstm, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=5, num_sub=2, num_layer_i=10, num_layer_j=10, model_type=rpcl' --seed=2 --max_epochs=30 --max_strikes=0
python3 sample.py --data_dir=runs/repro/data --model_dir=runs/repro/rpcl-seed2/model --output_dir=runs/repro/rpcl-seed2/sample --seed=2
python3 train.py --log_root=runs/repro/ia-seed2/model --data_dir=runs/repro/data '--hparams=categories=[bee,bus,car,cat,flower], dec_model=lstm, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=5, num_sub=2, num_layer_i=10, num_layer_j=10, model_type=ia' --seed=2 --max_epochs=30 --max_strikes=0
python3 sample.py --data_dir=runs/repro/data --model_dir=runs/repro/ia-seed2/model --output_dir=runs/repro/ia-seed2/sample --seed=2
python3 train.py --log_root=runs/repro/rpclh-seed2/model --data_dir=runs/repro/data '--hparams=categories=[bee,bus,car,cat,flower], dec_model=lstm, dec_rnn_size=256, z_size=64, batch_size=64, num_mixture=5, num_sub=2, num_layer_i=10, num_layer_j=10, model_type=rpclh' --seed=2 --max_epochs=30 --max_strikes=0
python3 sample.py --data_dir=runs/repro/data --model_dir=runs/repro/rpclh-seed2/model --output_dir=runs/repro/rpclh-seed2/sample --seed=2
# 2026-12-02 00:45:26: python3 reproduce.py --output_dir=runs/repro --docs_dir=docs
python3 seq2png.py --input_dir=runs/repro/data --output_dir=runs/repro/data --categories=bee,bus,car,cat,flower
# 2026-12-02 01:09:29: python3 reproduce.py --output_dir=runs/repro --docs_dir=docs
python3 seq2png.py --input_dir=runs/repro/data --output_dir=runs/repro/data --categories=bee,bus,car,cat,flower
