"""web.py in this process: the page, the TF Serving-style API, and a clear 4xx for every
client mistake, after which the server goes on serving."""

import http.client
import json
import os
import socket

import pytest

import classifier
import serving
import web
from cli import UserError
from conftest import QUICKDRAW


@pytest.fixture(scope="module")
def served(trained):
    model_dir, _ = trained
    model = classifier.from_saved_model(serving.export_dirs(str(model_dir))[-1])
    server, _ = web.serve_in_thread(web.ServeConfig(port=0, max_body_bytes=20000), model)
    yield model, server.server_address[1]
    server.shutdown()
    server.server_close()


def real_strokes(count, name="square"):
    with open(os.path.join(QUICKDRAW, f"{name}.ndjson")) as f:
        return [json.loads(next(f))["drawing"] for _ in range(count)]


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    connection.request(method, path, body, {"Content-Type": "application/json",
                                            **(headers or {})})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    kind = response.getheader("Content-Type")
    return response.status, json.loads(data) if kind == "application/json" else data


PREDICT = "/v1/models/quickdraw:predict"


def test_predictions_are_the_classifiers(served):
    model, port = served
    drawings = real_strokes(3) + [{"strokes": real_strokes(1, "circle")[0]}]
    status, answer = request(port, "POST", PREDICT, {"instances": drawings})
    assert status == 200
    expected = model.classify_strokes(real_strokes(3) + real_strokes(1, "circle"))
    assert len(answer["predictions"]) == 4
    for got, want in zip(answer["predictions"], expected):
        assert got["top_k_classes"] == want["top_k_classes"]
        assert got["top_k_probabilities"] == pytest.approx(want["top_k_probabilities"],
                                                            abs=1e-6)
        assert sorted(got["top_k_classes"]) == sorted(model.classes)  # 4 classes, top 5
    # and the model is one that learned: most squares named square first, the circle circle
    firsts = [prediction["top_k_classes"][0] for prediction in expected]
    assert firsts[:3].count("square") >= 2 and firsts[3] == "circle", firsts


def test_status_and_page(served):
    model, port = served
    status, answer = request(port, "GET", "/v1/models/quickdraw")
    assert status == 200
    assert answer["model_version_status"][0]["state"] == "AVAILABLE"
    status, page = request(port, "GET", "/")
    assert status == 200 and b"<canvas" in page
    settings = json.dumps({"model": "quickdraw", "classes": model.classes, "threshold": 0.5})
    assert f"const SETTINGS = {settings};".encode() in page


BAD_INSTANCES = [
    ([[[0], [0]]], "instance 1: fewer than 2 points: 1 point(s)"),
    ([], "instance 1: fewer than 2 points: 0 point(s)"),
    ([[[0, 1], [0]]], "instance 1: malformed drawing: a stroke has more x than y"),
    ([[[0, "a"], [0, 1]]], "instance 1: coordinates are not numbers"),
    ("abc", "instance 1: malformed drawing: drawing is not a list of strokes"),
    ({"points": []}, "instance 1: malformed drawing: drawing is not a list of strokes"),
]


@pytest.mark.parametrize("instance, message", BAD_INSTANCES)
def test_a_bad_instance_is_a_400_naming_it(served, instance, message):
    _, port = served
    status, answer = request(port, "POST", PREDICT, {"instances": real_strokes(1) + [instance]})
    assert status == 400 and answer["error"].startswith(message), answer


def test_nan_and_infinity_are_bad_instances(served):
    _, port = served
    body = b'{"instances": [[[[0, 1], [0, 1]]], [[[0, NaN], [0, 1]]], [[[0, 1], [0, 1]]]]}'
    status, answer = request(port, "POST", PREDICT, body)
    assert (status, answer["error"]) == (400, "instance 1: non-finite coordinate")
    body = b'{"instances": [[[[0, 1e999], [0, 1]]]]}'
    assert request(port, "POST", PREDICT, body)[1]["error"] == \
        "instance 0: non-finite coordinate"


@pytest.mark.parametrize("method, path, body, headers, status, message", [
    ("POST", PREDICT, b"{not json", {}, 400, "malformed JSON"),
    ("POST", PREDICT, b"[" * 100000 + b"]" * 100000, {}, 413, "the body is 200,000 bytes"),
    ("POST", PREDICT, b"[" * 15000 + b"]" * 15000, {}, 413, "at most 20,000"),
    ("POST", PREDICT, b"[" * 9000 + b"]" * 9000, {}, 400, "malformed JSON"),
    ("POST", PREDICT, {"inputs": []}, {}, 400, 'the body must be a JSON object'),
    ("POST", PREDICT, {"instances": []}, {}, 400, '"instances" is empty'),
    ("POST", PREDICT, {"instances": [[[[0, 1], [0, 1]]]]}, {"Content-Type": "text/plain"},
     415, "Content-Type must be application/json"),
    ("POST", "/v1/models/other:predict", {"instances": []}, {}, 404, "no such path"),
    ("GET", "/nothing", None, {}, 404, "no such path: /nothing"),
    ("GET", PREDICT, None, {}, 405, "use POST"),
])
def test_client_mistakes_are_clear_4xx_and_serving_goes_on(served, method, path, body,
                                                           headers, status, message):
    _, port = served
    got, answer = request(port, method, path, body, headers)
    assert got == status and message in answer["error"], answer
    assert request(port, "POST", PREDICT, {"instances": real_strokes(1)})[0] == 200


def test_a_body_without_length_is_a_411(served):
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\n"
                           "Content-Type: application/json\r\n\r\n{}".encode())
        reply = b""
        while chunk := connection.recv(4096):  # the server closes after an error
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 411") and "Content-Length header is required" in reply


@pytest.mark.parametrize("fields, message", [
    ({"threshold": 0}, "--threshold must be in (0, 1]"),
    ({"port": 70000}, "--port must be in [0, 65536)"),
    ({"model_name": "a/b"}, "--model_name may hold only"),
])
def test_bad_settings_are_one_line_errors(fields, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")
                       .replace(")", r"\)")):
        web.ServeConfig(**fields)
