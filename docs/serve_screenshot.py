"""Make docs/serve.png: serve.py over the shipped RPCL-pix2seq and the bundled test sketches, a face drawn with
mouse events in headless Chromium (Playwright), encoded, one Gaussian picked and one test sketch compared.

    python3 docs/serve_screenshot.py [--output=docs/serve.png]     # needs chromium and playwright (tests' extra)
"""
import argparse
import os
import shutil
import subprocess
import sys

from playwright.sync_api import sync_playwright

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACE = [[(70, 70), (160, 45), (250, 70), (275, 160), (250, 255), (160, 285), (70, 255), (45, 160), (70, 70)],
        [(115, 125), (125, 135)], [(195, 125), (205, 135)], [(160, 150), (150, 190), (165, 195)],
        [(115, 225), (160, 250), (205, 225)]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--output', default=os.path.join(REPO, 'docs', 'serve.png'))
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, os.path.join(REPO, 'serve.py'), '--port=0',
                               f'--model_dir={os.path.join(REPO, "pretrained", "rpcl512-quickdraw3")}',
                               f'--data_dir={os.path.join(REPO, "data")}'], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split(' at ')[1].split()[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which('chromium'), args=[
                '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'])
            page = browser.new_page(viewport={'width': 1280, 'height': 900})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.wait_for_selector('body[data-ready="true"]')
            box = page.locator('#pad').bounding_box()
            for stroke in FACE:
                page.mouse.move(box['x'] + stroke[0][0], box['y'] + stroke[0][1])
                page.mouse.down()
                for x, y in stroke[1:]:
                    page.mouse.move(box['x'] + x, box['y'] + y, steps=4)
                page.mouse.up()
            page.click('#encode')
            page.wait_for_selector('#redrawings figure:nth-child(5) canvas')
            page.click('#gaussian-list button >> nth=1')
            page.wait_for_selector('#gaussian-grid figure:nth-child(8) canvas')
            page.click('#compare')
            page.wait_for_selector('#pair figure:nth-child(2) canvas')
            page.wait_for_timeout(2500)   # let the stroke-by-stroke animations finish
            page.screenshot(path=args.output, full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait()
    print(f'wrote {args.output}')


if __name__ == '__main__':
    main()
