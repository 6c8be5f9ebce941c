"""serve.py as a user runs it: a real server process and a real browser (headless Chromium,
driven by Selenium) drawing real drawings with pointer events; the guesses the page shows
are the API's and predict.py's; one round of the game."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

import serving
from conftest import QUICKDRAW, REPO, error_line, free_port, run, wait_until_answering

def post(port, instances):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/quickdraw:predict",
        json.dumps({"instances": instances}).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["predictions"]


@pytest.fixture(scope="module")
def server(trained):
    model_dir, _ = trained
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "serve.py"), f"--model_dir={model_dir}",
         f"--port={port}", "--threshold=0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/v1/models/quickdraw", process, "serve.py")
    except AssertionError:
        process.kill()
        raise AssertionError(process.stdout.read())
    yield port, serving.export_dirs(str(model_dir))[-1]
    process.terminate()
    process.wait(timeout=30)


def draw(driver, strokes):
    """Draws strokes (0-255 dataset coordinates) on the page's canvas with pointer events:
    down, a move to each point, up, as a mouse would."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    canvas = driver.find_element(By.ID, "canvas")
    for xs, ys in ((s[0], s[1]) for s in strokes):
        # Offsets from the canvas's centre (400 x 400 CSS pixels), points scaled by 1.4.
        actions = ActionChains(driver, duration=0)
        actions.move_to_element_with_offset(canvas, 1.4 * xs[0] - 180, 1.4 * ys[0] - 180)
        actions.click_and_hold()
        for x, y in zip(xs[1:], ys[1:]):
            actions.move_to_element_with_offset(canvas, 1.4 * x - 180, 1.4 * y - 180)
        actions.release()
        actions.perform()


def shown_guesses(driver, count):
    """The page's guesses [(class, probability)] once it shows `count` and has no request
    outstanding."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = driver.execute_script(
            "return inFlight || again ? null : [...document.querySelectorAll('#guesses li')]"
            ".map(li => [li.dataset.name, Number(li.dataset.probability)])")
        if shown and len(shown) == count:
            return shown
        time.sleep(0.1)
    raise AssertionError("the page showed no guesses")


def first_drawings(name, count):
    with open(os.path.join(QUICKDRAW, f"{name}.ndjson")) as f:
        return [json.loads(next(f))["drawing"] for _ in range(count)]


def test_the_page_guesses_what_the_api_and_predict_py_do(server, browser, tmp_path):
    port, saved_model = server
    browser.get(f"http://127.0.0.1:{port}/")
    draw(browser, first_drawings("butterfly", 1)[0])
    strokes = browser.execute_script("return strokes")
    assert len(strokes) == len(first_drawings("butterfly", 1)[0])
    shown = shown_guesses(browser, 4)  # the test model has 4 classes
    [api] = post(port, [strokes])
    assert [name for name, _ in shown] == api["top_k_classes"]
    assert [p for _, p in shown] == pytest.approx(api["top_k_probabilities"], abs=1e-7)
    ndjson = tmp_path / "drawn.ndjson"
    ndjson.write_text(json.dumps({"word": "butterfly", "drawing": strokes}) + "\n")
    result = run("predict.py", f"--saved_model={saved_model}", f"--input={ndjson}",
                 "--output_format=json", "--top_k=5")
    assert result.returncode == 0, error_line(result)
    predicted = json.loads(result.stdout.splitlines()[0])["top_k"]
    assert [p["class"] for p in predicted] == [name for name, _ in shown]
    assert [p["probability"] for p in predicted] == pytest.approx(
        [p for _, p in shown], abs=1e-6)
    # Clear empties the canvas and the guesses.
    browser.find_element("id", "clear").click()
    assert browser.execute_script("return strokes.length") == 0
    assert not browser.find_elements("css selector", "#guesses li")


def test_one_round_of_the_game(server, browser):
    port, _ = server
    browser.get(f"http://127.0.0.1:{port}/")
    browser.find_element("id", "play").click()
    prompt = browser.find_element("id", "prompt").text
    assert prompt.startswith("Draw: ") and browser.execute_script(
        "return document.body.dataset.game") == "playing"
    word = prompt[len("Draw: "):]
    # A drawing of the word that the model recognizes above the threshold (0.3).
    candidates = first_drawings(word, 40)
    scores = [dict(zip(p["top_k_classes"], p["top_k_probabilities"])).get(word, 0)
              for p in post(port, candidates)]
    best = max(range(len(candidates)), key=scores.__getitem__)
    assert scores[best] >= 0.45, (word, scores[best])  # margin for the canvas's rounding
    draw(browser, candidates[best])
    deadline = time.monotonic() + 15
    while browser.execute_script("return document.body.dataset.game") == "playing":
        assert time.monotonic() < deadline, "the round did not end"
        time.sleep(0.1)
    assert browser.execute_script("return document.body.dataset.game") == "recognized"
    assert browser.find_element("id", "prompt").text == f"Oh, I know, it's {word}!"
