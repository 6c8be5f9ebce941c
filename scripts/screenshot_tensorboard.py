"""Makes docs/confusion_17.png, the README's picture of the confusion image as TensorBoard
shows it: TensorBoard on an eval folder, its Time Series tab in headless Chromium at a
desktop window size, a screenshot of the image's card.

  python scripts/screenshot_tensorboard.py --logdir=MODEL_DIR/eval [--output=docs/confusion_17.png]

Needs chromium, chromedriver and selenium, as the browser tests do.
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

import test_confusion  # noqa: E402  (start_tensorboard, SHOWN_IMAGES)
from conftest import start_chromium  # noqa: E402

CARD = """
const image = [...document.querySelectorAll('img')].find(i => i.naturalWidth);
if (image) image.scrollIntoView();
return image && (image.closest('card-view') || image.parentElement);
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", required=True)
    parser.add_argument("--output", default=os.path.join(REPO, "docs", "confusion_17.png"))
    args = parser.parse_args()
    process, url = test_confusion.start_tensorboard(args.logdir)
    driver = start_chromium(1280, 900)
    try:
        driver.get(f"{url}#timeseries")
        for _ in range(120):
            card = driver.execute_script(CARD)
            if card:
                break
            time.sleep(0.5)
        time.sleep(1)
        print(driver.execute_script(test_confusion.SHOWN_IMAGES))
        card.screenshot(args.output)
    finally:
        driver.quit()
        process.terminate()


if __name__ == "__main__":
    main()
