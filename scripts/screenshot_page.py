"""Makes docs/serve.png, the README's picture of the drawing page: serve.py on a model_dir,
a real swan from data/sample drawn in headless Chromium with the browser tests' pointer
actions, the page's guesses on screen.

  ./run_sample.sh && python scripts/screenshot_page.py [--model_dir=runs/sample/model]

Needs chromium, chromedriver and selenium, as the browser tests do.
"""

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

import test_serve  # noqa: E402  (its server-free helpers: draw, shown_guesses)
from conftest import free_port, start_chromium, wait_until_answering  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default=os.path.join(REPO, "runs", "sample", "model"))
    parser.add_argument("--output", default=os.path.join(REPO, "docs", "serve.png"))
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, os.path.join(REPO, "serve.py"),
                               f"--model_dir={args.model_dir}", f"--port={port}"])
    driver = start_chromium(1000, 800)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/", server, "serve.py")
        driver.get(f"http://127.0.0.1:{port}/")
        with open(os.path.join(REPO, "data", "sample", "swan.ndjson")) as f:
            swan = [json.loads(next(f))["drawing"] for _ in range(3)][2]
        test_serve.draw(driver, swan)
        print(test_serve.shown_guesses(driver, 5))
        driver.find_element("tag name", "body").screenshot(args.output)
    finally:
        driver.quit()
        server.terminate()


if __name__ == "__main__":
    main()
