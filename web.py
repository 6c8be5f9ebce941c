"""The drawing page and a TF Serving-compatible REST API over a Classifier: what serve.py runs.

  GET  /                            the page: draw, see the top 5 guesses live, play the game
  GET  /v1/models/<name>            the model's status, as TF Serving reports it
  POST /v1/models/<name>:predict    {"instances": [strokes, ...]} -> {"predictions": [...]}

An instance is a drawing's strokes as in the dataset, `[[x...], [y...]]` a stroke (a third
list, times, is allowed and ignored); `{"strokes": ...}` is accepted too. Each prediction is
{"top_k_classes": [...], "top_k_probabilities": [...]}, best first. As TF Serving does, a
request with any bad instance fails as a whole: HTTP 400 with {"error": "instance <i>: <why>"}.
Every other client mistake is a 4xx with {"error": ...} too, and the server goes on serving.

The standard library's threading HTTP server is enough here: one guess is a few
milliseconds of TensorFlow, the page needs no framework, and it adds no dependency.
"""

import dataclasses
import http.server
import json
import os
import re
import threading

from cli import UserError, check, option

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "index.html")


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """How serve.py serves; each field is also its flag."""
    port: int = option(8501, "Port to listen on (TF Serving's REST port by default; 0: any "
                       "free port).", minimum=0, below=65536)
    host: str = option("127.0.0.1", "Address to bind: 127.0.0.1 serves this machine only; "
                       "0.0.0.0 serves the network.")
    model_name: str = option("quickdraw", "The model's name in the API's paths.")
    threshold: float = option(0.5, "Game mode: a drawing is recognized once the asked-for "
                              "class has at least this probability (in (0, 1]).")
    max_body_bytes: int = option(1 << 20, "Largest request body accepted (HTTP 413 above).",
                                 minimum=1)

    def __post_init__(self):
        check(self)
        if not 0 < self.threshold <= 1:
            raise UserError("--threshold must be in (0, 1]")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.model_name):
            raise UserError("--model_name may hold only letters, digits, '_', '.' and '-'")


class _ClientError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _instances(body):
    """The request body -> the drawings' strokes; _ClientError(400) if it is not a predict
    request."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deeply
        raise _ClientError(400, f"malformed JSON: {e}") from None
    if not isinstance(request, dict) or not isinstance(request.get("instances"), list):
        raise _ClientError(400, 'the body must be a JSON object {"instances": [...]}')
    if not request["instances"]:
        raise _ClientError(400, '"instances" is empty')
    return [i["strokes"] if isinstance(i, dict) and "strokes" in i else i
            for i in request["instances"]]


def _handler(config, classifier, page):
    model_path = f"/v1/models/{config.model_name}"

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm on, the client's
        # delayed ACK held the body back by about 40 ms.
        disable_nagle_algorithm = True
        server_version = "quickdraw-serve"

        def log_message(self, format, *args):  # one line a request is noise; errors are sent
            pass

        def _send(self, status, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status, message):
            self._send(status, {"error": message})

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, page, "text/html; charset=utf-8")
            elif path == model_path:
                self._send(200, {"model_version_status": [{
                    "version": "1", "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""}}]})
            elif path == model_path + ":predict":
                self._error(405, "use POST for :predict")
            else:
                self._error(404, f"no such path: {path}; the model is at {model_path}")

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            if path != model_path + ":predict":
                # The body is not read: the connection cannot be reused.
                self.close_connection = True
                self._error(404, f"no such path: {path}; predict at {model_path}:predict")
                return
            try:
                self._send(200, {"predictions": self._predict()})
            except _ClientError as e:
                self.close_connection = True
                self._error(e.status, str(e))

        def _predict(self):
            content_type = self.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip().lower() not in ("application/json", ""):
                raise _ClientError(415, f"Content-Type must be application/json, not "
                                   f"{content_type}")
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise _ClientError(411, "a Content-Length header is required")
            if int(length) > config.max_body_bytes:
                raise _ClientError(413, f"the body is {int(length):,} bytes; at most "
                                   f"{config.max_body_bytes:,} are accepted")
            body = self.rfile.read(int(length))
            drawings = _instances(body)
            results = classifier.classify_strokes(drawings)
            for index, result in enumerate(results):
                if isinstance(result, Exception):
                    raise _ClientError(400, f"instance {index}: {result}")
            return results

    return Handler


def make_server(config, classifier):
    """A ThreadingHTTPServer serving classifier by config; call serve_forever()."""
    with open(PAGE, encoding="utf-8") as f:
        settings = {"model": config.model_name, "classes": classifier.classes,
                    "threshold": config.threshold}
        # "<" escaped: a class name cannot end the script element.
        page = f.read().replace("/*SETTINGS*/null", json.dumps(settings).replace(
            "<", "\\u003c")).encode("utf-8")
    server = http.server.ThreadingHTTPServer((config.host, config.port),
                                             _handler(config, classifier, page))
    server.daemon_threads = True
    return server


def serve_in_thread(config, classifier):
    """(server, thread): a server already serving in a daemon thread (for tests)."""
    server = make_server(config, classifier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
