"""A page to play with trained models in the browser (docs/serve.md): draw a sketch and see its Gaussian and its
redrawings, pick a Gaussian, interpolate, compare real test sketches with their redrawings, heal (SP-gra2seq).

    python3 serve.py --model_dir=pretrained/rpcl512-quickdraw3 --data_dir=data
    python3 serve.py --model_dir=pretrained/rpcl512-quickdraw3 --model_dir=runs/sp --port=8080

Each model is loaded and compiled once, then served until Ctrl-C. The server binds 127.0.0.1 (this machine only)
unless --host says otherwise; the page and its scripts come from this repository (static/), nothing from the web.
"""
import program  # first: it sets TensorFlow's start-up switches

# isort: split


from absl import flags

import playground
import webapp


def define_flags():
    flags.DEFINE_multi_string('model_dir', None, 'A trained model (train.py --log_root or a pretrained/ '
                              'directory); repeat the flag to serve several. Each is named by its directory.')
    flags.DEFINE_string('data_dir', None, "Directory with the models' <category>.npz (and _png.npz): test sketches "
                        'to compare and interpolate with (optional).')
    flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on (127.0.0.1: this machine only).')
    flags.DEFINE_integer('port', 8000, 'Port to listen on (0: any free port).', lower_bound=0, upper_bound=65535)
    flags.DEFINE_boolean('verbose', False, 'Log every request to stderr.')
    flags.mark_flag_as_required('model_dir')


def main(cfg):
    playgrounds = playground.load_playgrounds(cfg.model_dir, cfg.data_dir)
    server = webapp.make_server(playgrounds, cfg.host, cfg.port, cfg.verbose)
    host, port = server.server_address[:2]
    print(f'serving {", ".join(playgrounds)} at http://{host}:{port}/ (Ctrl-C stops)', flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print('stopped', flush=True)
    finally:
        server.server_close()


if __name__ == '__main__':
    program.run(main, define_flags)
