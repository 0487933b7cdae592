"""serve.py's HTTP layer (docs/serve.md#http-api): the page's static files, a JSON API over `playground.Playground`
steps, and a threaded server from Python's standard library.

  GET  /                              the page (index.html, app.js, style.css from static/)
  GET  /api/models                    every model: name, type, categories, Gaussians, groups, capabilities
  POST /api/models/<name>/<step>      a step of the page on one model, with a JSON object body (STEPS)

Every error is a JSON object {"error": "<one line>"} with a 4xx status (5xx only for a fault of the server itself,
whose traceback goes to the server's stderr); the server goes on serving after any of them.
"""
import http.server
import json
import os
import sys
import traceback
import urllib.parse

import playground
import utils

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'static')
STATIC_FILES = {   # URL path -> (file in STATIC_DIR, content type): nothing else is served from disk
    '/': ('index.html', 'text/html; charset=utf-8'),
    '/app.js': ('app.js', 'text/javascript; charset=utf-8'),
    '/style.css': ('style.css', 'text/css; charset=utf-8'),
}
STEPS = {   # <step> of POST /api/models/<name>/<step> -> the Playground method that answers it
    'encode': playground.Playground.encode,
    'gaussian': playground.Playground.gaussian,
    'interpolate': playground.Playground.interpolate,
    'compare': playground.Playground.compare,
    'heal': playground.Playground.heal,
}
MAX_BODY_BYTES = 2 ** 20


class Handler(http.server.BaseHTTPRequestHandler):
    """One request; `self.server.playgrounds` is {name: Playground}."""
    server_version = 'rpcl-pix2seq-serve'

    def log_message(self, format, *args):   # noqa: A002 (the base class's signature)
        if self.server.verbose:
            super().log_message(format, *args)

    def send_body(self, status, body, content_type):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        self.send_header('X-Content-Type-Options', 'nosniff')
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def send_json(self, status, value):
        self.send_body(status, json.dumps(value).encode('utf-8'), 'application/json')

    def send_error_json(self, status, message):
        self.send_json(status, {'error': message})

    def read_json(self):
        """The request body as a JSON object; RequestError when it is missing, too large, not JSON or no object."""
        length = self.headers.get('Content-Length')
        playground.require(length is not None and length.isdigit(), 'a JSON body with a Content-Length is required',
                           411)
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True   # the body is left unread
            raise playground.RequestError(f'the request body is {int(length)} bytes: at most {MAX_BODY_BYTES}', 413)
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw.decode('utf-8'))
        except (UnicodeDecodeError, ValueError) as e:
            raise playground.RequestError(f'malformed JSON: {str(e).splitlines()[0]}') from None
        playground.require(isinstance(body, dict), 'the JSON body must be an object')
        return body

    def answer(self, respond):
        """Run respond() -> (status, value) and send it as JSON, turning every failure into one JSON error line."""
        try:
            status, value = respond()
            self.send_json(status, value)
        except playground.RequestError as e:
            self.send_error_json(e.status, str(e))
        except utils.UserError as e:
            self.send_error_json(400, str(e))
        except Exception as e:   # a fault of the server: answer 500 and keep serving
            traceback.print_exc(file=sys.stderr)
            self.send_error_json(500, f'internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}')

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path in STATIC_FILES:
            name, content_type = STATIC_FILES[path]
            with open(os.path.join(STATIC_DIR, name), 'rb') as f:
                self.send_body(200, f.read(), content_type)
        elif path == '/api/models':
            self.answer(lambda: (200, [p.describe() for p in self.server.playgrounds.values()]))
        elif path.startswith('/api/'):
            self.send_error_json(405 if path.count('/') == 4 else 404, f'no GET {path}: the API is listed in '
                                 'docs/serve.md#http-api')
        else:
            self.send_error_json(404, f'not found: {path}')

    do_HEAD = do_GET

    def do_POST(self):
        self.answer(self.run_step)

    def run_step(self):
        parts = urllib.parse.urlsplit(self.path).path.split('/')
        playground.require(len(parts) == 5 and parts[:3] == ['', 'api', 'models'],
                           f'not found: {self.path} (POST /api/models/<name>/<step>)', 404)
        name, step = urllib.parse.unquote(parts[3]), parts[4]
        models = self.server.playgrounds
        playground.require(name in models, f'unknown model "{name}" (serving: {", ".join(models)})', 404)
        playground.require(step in STEPS, f'unknown step "{step}" (one of {", ".join(STEPS)})', 404)
        return 200, STEPS[step](models[name], self.read_json())

    def refuse(self):
        self.send_error_json(405, f'method {self.command} is not allowed (GET or POST)')

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse


def make_server(playgrounds, host='127.0.0.1', port=8000, verbose=False):
    """A threaded HTTP server over {name: Playground}, bound to (host, port) (port 0: any free port)."""
    try:
        server = http.server.ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise utils.UserError(f'cannot listen on {host}:{port}: {e.strerror}') from None
    server.daemon_threads = True
    server.playgrounds = playgrounds
    server.verbose = verbose
    return server
