"""serve.py's page in a real browser (headless Chromium, driven by Playwright): draw strokes with mouse events,
encode, pick a Gaussian, heal with an SP-gra2seq model (docs/serve.md). Needs Debian's chromium (`.ci/run`
installs it) or another Chromium named by $CHROMIUM."""
import os
import shutil
import subprocess
import sys

import pytest

CHROMIUM = os.environ.get('CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser')
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason='no Chromium on this machine (apt-get install chromium)')

# A face in pad pixels: outline, eyes, mouth
FACE = [[(60, 60), (160, 40), (260, 60), (280, 160), (260, 260), (160, 290), (60, 260), (40, 160), (60, 60)],
        [(110, 120), (125, 135)], [(200, 120), (215, 135)], [(110, 210), (160, 240), (210, 210)]]


@pytest.fixture(scope='module')
def page_url(repo_dir, trained_spgra_dir):
    """serve.py over the shipped RPCL-pix2seq (a model that draws) and a tiny SP-gra2seq, on a free port."""
    proc = subprocess.Popen([sys.executable, os.path.join(repo_dir, 'serve.py'), '--port=0',
                             f'--model_dir={os.path.join(repo_dir, "pretrained", "rpcl512-quickdraw3")}',
                             f'--model_dir={trained_spgra_dir}'], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith('serving '), line
    yield line.split(' at ')[1].split()[0]
    proc.terminate()
    proc.wait(timeout=60)


@pytest.fixture(scope='module')
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--no-first-run'])
        yield chromium
        chromium.close()


def draw(page, strokes):
    box = page.locator('#pad').bounding_box()
    for stroke in strokes:
        page.mouse.move(box['x'] + stroke[0][0], box['y'] + stroke[0][1])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box['x'] + x, box['y'] + y, steps=3)
        page.mouse.up()


def test_draw_encode_pick_a_gaussian_and_heal(page_url, browser):
    page = browser.new_page()
    page.set_default_timeout(120_000)
    page.goto(page_url)
    page.wait_for_selector('body[data-ready="true"]')
    assert page.locator('#model option').count() == 2
    draw(page, FACE)
    page.click('#encode')
    page.wait_for_selector('#bars .bar')
    values = [float(v) for v in page.locator('#bars .bar').evaluate_all('bars => bars.map(b => b.dataset.value)')]
    assert len(values) == 6 and abs(sum(values) - 1) < 1e-3
    page.wait_for_selector('#redrawings figure:nth-child(5) canvas')
    strokes = page.locator('#redrawings canvas').evaluate_all('cs => cs.map(c => Number(c.dataset.strokes))')
    assert len(strokes) == 5 and min(strokes) >= 1   # the drawing itself, then 4 redrawings with strokes
    assert page.locator('#heal').is_disabled()        # an RPCL-pix2seq model cannot heal: shown, not an error
    assert 'Unavailable' in page.inner_text('#heal-panel')
    assert 'Unavailable' in page.inner_text('#compare-panel')   # no --data_dir: no test sketches
    assert 'Unavailable' in page.inner_text('#interpolate-panel') and page.locator('#interpolate').is_disabled()

    page.click('#gaussian-list button >> nth=0')
    page.wait_for_selector('#gaussian-grid figure:nth-child(8) canvas')
    assert page.locator('#gaussian-grid canvas').count() == 8

    page.select_option('#model', index=1)
    assert page.locator('#gaussian-list button').count() == 0
    assert not page.locator('#heal').is_disabled()
    page.click('#heal')
    page.wait_for_selector('#healed figure:nth-child(4) canvas')
    assert page.locator('#healed canvas').count() == 4   # the masked input and 3 healed sketches
    assert page.inner_text('#status') == ''
    page.close()


def test_an_empty_canvas_shows_the_servers_one_line_error(page_url, browser):
    page = browser.new_page()
    page.set_default_timeout(120_000)
    page.goto(page_url)
    page.wait_for_selector('body[data-ready="true"]')
    page.click('#encode')
    page.wait_for_function('document.getElementById("status").textContent.startsWith("the sketch")')
    assert page.inner_text('#status') == 'the sketch is empty: draw something first'
    page.close()
