"""serve.py's library and HTTP API (docs/serve.md): canvas strokes to the dataset's stroke-3, every step of the
page on tiny trained models, every bad input answered with a 4xx and one line, 20 concurrent requests, and the
program's start, errors and Ctrl-C."""
import concurrent.futures
import http.client
import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import playground
import webapp

FACE = [[[50, 50], [150, 40], [250, 60], [260, 160], [240, 260], [150, 270], [60, 250], [40, 150], [50, 50]],
        [[100, 110], [110, 120]], [[190, 110], [200, 120]], [[110, 200], [150, 220], [190, 200]]]


# ------------------------------------------------------------------------------------------------ strokes

def test_rdp_keeps_the_corners_and_drops_points_on_a_line():
    line = np.array([[0, 0], [1, 0.1], [2, -0.1], [3, 0], [3, 1], [3, 2], [3, 3]], np.float64)
    assert playground.rdp(line, 0.5).tolist() == [[0, 0], [3, 0], [3, 3]]
    assert playground.rdp(line, 0.05).tolist() == [[0, 0], [1, 0.1], [2, -0.1], [3, 0], [3, 3]]


def test_canvas_strokes_become_stroke3_in_the_dataset_units():
    """The longer side of the drawing becomes 255 units, each stroke's last point lifts the pen, and the first point
    is the origin (no row of its own, as in the sketch-rnn files), so the cumulative positions rebuild the drawing."""
    strokes = [np.array([[10, 10], [110, 10], [110, 60]], np.float64), np.array([[10, 60], [60, 60]], np.float64)]
    seq3 = playground.canvas_to_stroke3(strokes)
    assert seq3.dtype == np.float32
    assert seq3[:, 2].tolist() == [0, 1, 0, 1]
    positions = np.cumsum(seq3[:, :2], axis=0)
    assert positions.tolist() == [[255, 0], [255, 127], [0, 127], [127, 127]]   # 255/100 * (100, 50), rounded


@pytest.mark.parametrize('strokes, message', [
    ([], 'the sketch is empty: draw something first'),
    ([[]], 'the sketch is empty: draw something first'),
    ('abc', '"strokes" must be a list of strokes, each a list of [x, y] points'),
    ([[[1, 2, 3]]], 'each point must be [x, y] with two numbers'),
    ([[[1, 'a']]], 'each point must be [x, y] with two numbers'),
    ([[[1, True]]], 'each point must be [x, y] with two numbers'),
    ([[[1, 1e300]]], 'coordinates must be finite and within +-1e+06'),
])
def test_bad_strokes_are_one_line_errors(strokes, message):
    with pytest.raises(playground.RequestError) as err:
        playground.parse_strokes(strokes)
    assert str(err.value) == message and err.value.status == 400


def test_a_huge_scribble_is_refused_before_any_work():
    huge = [[[float(i % 300), float(i // 300)] for i in range(playground.MAX_POINTS + 1)]]
    with pytest.raises(playground.RequestError) as err:
        playground.parse_strokes(huge)
    assert err.value.status == 413 and 'too many points' in str(err.value)


# ------------------------------------------------------------------------------------------------ the API

@pytest.fixture(scope='module')
def server(trained_model_dir, trained_spgra_dir, png_data_dir):
    """A server on a free loopback port over the tiny RPCL-pix2seq ('rpcl') and SP-gra2seq ('spgra') models."""
    playgrounds = {'rpcl': playground.Playground('rpcl', trained_model_dir, png_data_dir),
                   'spgra': playground.Playground('spgra', trained_spgra_dir, png_data_dir)}
    httpd = webapp.make_server(playgrounds, '127.0.0.1', 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def request(port, method, path, body=None, raw=None, headers=None):
    """(status, decoded JSON or text) of one request."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=300)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    connection.request(method, path, body=data, headers=headers or {})
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    if response.getheader('Content-Type') == 'application/json':
        return response.status, json.loads(text)
    return response.status, text


def test_the_page_and_its_files_are_served(server):
    status, page = request(server, 'GET', '/')
    assert status == 200 and '<canvas id="pad"' in page and 'src="/app.js"' in page
    assert 'http' not in page.replace('http-equiv', '')   # nothing loaded from the web
    for path in ('/app.js', '/style.css'):
        status, text = request(server, 'GET', path)
        assert status == 200 and text
        assert 'http://' not in text and 'https://' not in text


def test_models_list_their_mixture_and_what_they_can_do(server):
    status, models = request(server, 'GET', '/api/models')
    assert status == 200
    rpcl, spgra = models
    assert (rpcl['name'], rpcl['model_type'], rpcl['categories']) == ('rpcl', 'rpcl', ['bee', 'bus'])
    assert len(rpcl['gaussians']) == 4 and rpcl['groups'] == []
    assert sum(g['weight'] for g in rpcl['gaussians']) == pytest.approx(1.0, abs=1e-4)
    assert {k for k, v in rpcl['capabilities'].items() if v is None} == {'encode', 'gaussians', 'interpolate',
                                                                          'compare'}
    assert rpcl['capabilities']['heal'] == 'only an SP-gra2seq model (spgra) heals sketches'
    assert {k for k, v in spgra['capabilities'].items() if v is None} == {'encode', 'interpolate', 'compare', 'heal'}


def test_encode_places_the_sketch_and_redraws_it(server):
    status, result = request(server, 'POST', '/api/models/rpcl/encode', {'strokes': FACE, 'count': 3, 'seed': 5})
    assert status == 200, result
    assert sum(result['responsibilities']) == pytest.approx(1.0, abs=1e-4)
    assert result['gaussian'] == int(np.argmax(result['responsibilities']))
    assert len(result['redrawings']) == 3   # a one-epoch model may end a sketch at once: rows, if any, are stroke-3
    assert all(len(row) == 3 and row[2] in (0, 1) for rows in result['redrawings'] for row in rows)
    assert np.abs(np.cumsum(np.array(result['input'])[:, :2], axis=0)).max() <= 255


def test_encode_matches_encoding_the_rendered_image_directly(server, trained_model_dir, png_data_dir):
    """The page's code of a drawing is the encoder mean of the drawing rendered as seq2png renders it."""
    import dataset
    import family
    import raster
    net, _ = family.restore_model(trained_model_dir)
    seq3 = playground.canvas_to_stroke3(playground.parse_strokes(FACE))
    image = dataset.pixels_to_unit(raster.render_fast([seq3], 48, workers=1))
    mu, _ = net.encode(None, image)
    gamma = net.responsibilities(mu).numpy()[0]
    _, result = request(server, 'POST', '/api/models/rpcl/encode', {'strokes': FACE, 'count': 1})
    np.testing.assert_allclose(result['responsibilities'], gamma, rtol=1e-4, atol=1e-6)


def test_a_gaussian_draws_sketches(server):
    status, result = request(server, 'POST', '/api/models/rpcl/gaussian', {'index': 1, 'count': 5})
    assert status == 200, result
    assert (result['kind'], result['index']) == ('gaussian', 1) and len(result['sketches']) == 5


def test_interpolation_between_the_drawing_and_a_test_sketch(server):
    body = {'a': {'strokes': FACE}, 'b': {'test': 3}, 'steps': 4}
    status, result = request(server, 'POST', '/api/models/rpcl/interpolate', body)
    assert status == 200, result
    assert len(result['sketches']) == 4 and result['a'] and result['b']


def test_compare_redraws_a_real_test_sketch(server):
    status, result = request(server, 'POST', '/api/models/rpcl/compare', {'index': 7})
    assert status == 200, result
    assert result['index'] == 7 and result['category'] in ('bee', 'bus')
    assert len(result['real']) > 1 and isinstance(result['redrawing'], list)


def test_spgra_heals_the_masked_sketch(server):
    body = {'strokes': FACE, 'prob': 0.5, 'count': 2, 'seed': 3}
    status, result = request(server, 'POST', '/api/models/spgra/heal', body)
    assert status == 200, result
    assert len(result['healed']) == 2 and result['masked_patches']
    image = np.array(result['masked_image'])
    assert image.shape == (16, 16) and image.min() >= 0 and image.max() <= 255
    _, again = request(server, 'POST', '/api/models/spgra/heal', body)
    assert again == result   # the same seed gives the same masks and the same healed sketches


@pytest.mark.parametrize('method, path, body, status, message', [
    ('POST', '/api/models/rpcl/encode', {'strokes': []}, 400, 'the sketch is empty: draw something first'),
    ('POST', '/api/models/nope/encode', {'strokes': FACE}, 404, 'unknown model "nope" (serving: rpcl, spgra)'),
    ('POST', '/api/models/rpcl/fly', {}, 404, 'unknown step "fly" (one of encode, gaussian, interpolate, compare, '
                                              'heal)'),
    ('POST', '/api/models/rpcl/gaussian', {'index': 9}, 404, 'gaussian 9 does not exist: the model has 4 gaussians '
                                                              '(0..3)'),
    ('POST', '/api/models/rpcl/gaussian', {'kind': 'group'}, 404, 'model "rpcl" has no groups'),
    ('POST', '/api/models/rpcl/encode', [1, 2], 400, 'the JSON body must be an object'),
    ('POST', '/api/models/rpcl/encode', {'strokes': FACE, 'count': 99}, 400, '"count" must be between 1 and 16 '
                                                                              '(got 99)'),
    ('POST', '/api/models/rpcl/encode', {'strokes': FACE, 'temperature': 'hot'}, 400, '"temperature" must be a '
                                                                                       'number'),
    ('POST', '/api/models/rpcl/heal', {'strokes': FACE}, 409, 'model "rpcl" cannot heal: only an SP-gra2seq model '
                                                              '(spgra) heals sketches'),
    ('POST', '/api/models/spgra/gaussian', {}, 409, 'model "spgra" cannot gaussians: a spgra model has no latent '
                                                    'mixture'),
    ('POST', '/api/models/rpcl/compare', {'index': 1000}, 400, '"index" must be between 0 and 59 (got 1000)'),
    ('POST', '/api/models/rpcl/interpolate', {'a': {'test': 0}, 'b': {'file': '/etc/passwd'}}, 400,
     '"b" must be {"strokes": [...]} or {"test": index}'),
    ('GET', '/api/models/rpcl/encode', None, 405, 'no GET /api/models/rpcl/encode: the API is listed in '
                                                  'docs/serve.md#http-api'),
    ('GET', '/../model.py', None, 404, 'not found: /../model.py'),
    ('GET', '/static/app.js', None, 404, 'not found: /static/app.js'),
    ('DELETE', '/api/models', None, 405, 'method DELETE is not allowed (GET or POST)'),
])
def test_bad_requests_get_a_4xx_and_one_line(server, method, path, body, status, message):
    got, answer = request(server, method, path, body)
    assert (got, answer) == (status, {'error': message})


def test_malformed_json_huge_bodies_and_missing_lengths_are_refused(server):
    status, answer = request(server, 'POST', '/api/models/rpcl/encode', raw=b'{"strokes": [[[1, 2]]')
    assert status == 400 and answer['error'].startswith('malformed JSON: ')
    connection = http.client.HTTPConnection('127.0.0.1', server, timeout=60)
    connection.putrequest('POST', '/api/models/rpcl/encode')   # the server answers before any body is sent
    connection.putheader('Content-Length', str(webapp.MAX_BODY_BYTES + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (
        413, {'error': f'the request body is {webapp.MAX_BODY_BYTES + 1} bytes: at most {webapp.MAX_BODY_BYTES}'})
    connection.close()
    huge = [[[float(i % 300), float(i // 300)] for i in range(playground.MAX_POINTS + 1)]]
    status, answer = request(server, 'POST', '/api/models/rpcl/encode', {'strokes': huge})
    assert status == 413 and 'too many points' in answer['error']
    connection = http.client.HTTPConnection('127.0.0.1', server, timeout=60)
    connection.putrequest('POST', '/api/models/rpcl/encode')
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (
        411, {'error': 'a JSON body with a Content-Length is required'})
    connection.close()
    status, _ = request(server, 'GET', '/api/models')   # and the server goes on serving
    assert status == 200


def test_twenty_concurrent_requests_are_all_answered_correctly(server):
    """Ten encodes and ten Gaussian draws at once, each with its own seed: every answer equals the one the same
    request gets alone."""
    bodies = [('encode', {'strokes': FACE, 'count': 2, 'seed': k}) for k in range(10)]
    bodies += [('gaussian', {'index': k % 4, 'count': 2, 'seed': k}) for k in range(10)]
    alone = [request(server, 'POST', f'/api/models/rpcl/{step}', body) for step, body in bodies]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        together = list(pool.map(lambda item: request(server, 'POST', f'/api/models/rpcl/{item[0]}', item[1]),
                                 bodies))
    assert all(status == 200 for status, _ in alone)
    assert together == alone


# ------------------------------------------------------------------------------------------------ the program

def start_serve(repo_dir, *args):
    """serve.py as a terminal starts it: with Ctrl-C's default disposition, even when these tests themselves run in
    the background of a shell (which starts background jobs with SIGINT ignored, and children inherit that)."""
    return subprocess.Popen([sys.executable, os.path.join(repo_dir, 'serve.py'), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_serve_prints_its_address_and_stops_cleanly_on_ctrl_c(repo_dir, trained_model_dir):
    proc = start_serve(repo_dir, f'--model_dir={trained_model_dir}', '--port=0')
    try:
        line = proc.stdout.readline()
        assert line.startswith('serving ') and 'at http://127.0.0.1:' in line, proc.stderr.read()
        port = int(line.split('127.0.0.1:')[1].split('/')[0])
        status, models = request(port, 'GET', '/api/models')
        assert status == 200 and models[0]['name'] == os.path.basename(trained_model_dir)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out.strip() == 'stopped' and 'Traceback' not in err, err


@pytest.mark.parametrize('args, message', [
    (['--model_dir=/nonexistent/model'], 'error: no model_config.json in /nonexistent/model (is it a train.py '
                                         '--log_root?)'),
    (['--model_dir=MODEL', 'extra'], 'error: unexpected arguments: extra'),
])
def test_serve_errors_are_one_line(repo_dir, trained_model_dir, args, message):
    args = [a.replace('MODEL', trained_model_dir) for a in args]
    proc = subprocess.run([sys.executable, os.path.join(repo_dir, 'serve.py'), *args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith('error:')] == [message]


def test_serve_names_a_port_in_use(repo_dir, trained_model_dir, server):
    proc = subprocess.run([sys.executable, os.path.join(repo_dir, 'serve.py'), f'--model_dir={trained_model_dir}',
                           f'--port={server}'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and errors[0].startswith(f'error: cannot listen on 127.0.0.1:{server}: '), errors
