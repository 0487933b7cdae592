// The playground page of serve.py (docs/serve.md): plain JavaScript, no framework, no download.
// Sketches from the server are stroke-3 rows [dx, dy, pen] (pen 1: the pen lifts after this point), starting at
// the origin; the page draws them fitted to each canvas, stroke by stroke.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { models: [], model: null, strokes: [], erasing: false, drawing: false };
const ERASER_RADIUS = 12;   // pixels of the pad

// ------------------------------------------------------------------------------------------ server

function setStatus(text, ok) {
  $('status').textContent = text;
  $('status').className = ok ? 'ok' : '';
}

async function post(step, body) {
  setStatus(`${step}…`, true);
  const response = await fetch(`/api/models/${encodeURIComponent(state.model.name)}/${step}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const value = await response.json();
  if (!response.ok) {
    setStatus(value.error || `${step} failed (${response.status})`, false);
    return null;
  }
  setStatus('', true);
  return value;
}

function temperature() { return parseFloat($('temperature').value); }
function randomSeed() { return Math.floor(Math.random() * 1e9); }

// ------------------------------------------------------------------------------------------ drawing sketches

function polylines(rows) {
  // stroke-3 rows -> [[x, y], ...] polylines in absolute units
  const lines = [];
  let x = 0, y = 0, current = [[0, 0]];
  for (const [dx, dy, pen] of rows) {
    x += dx; y += dy;
    current.push([x, y]);
    if (pen === 1) { lines.push(current); current = []; }
  }
  if (current.length) lines.push(current);
  return lines.filter((line) => line.length > 0);
}

function drawSketch(canvas, rows, animate) {
  const lines = polylines(rows);
  const points = lines.flat();
  canvas.dataset.strokes = String(lines.filter((line) => line.length > 1).length);
  canvas.dataset.points = String(points.length);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!points.length) return;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const minX = Math.min(...xs), minY = Math.min(...ys);
  const span = Math.max(Math.max(...xs) - minX, Math.max(...ys) - minY, 1e-6);
  const margin = 6, scale = (canvas.width - 2 * margin) / span;
  const offX = margin + (canvas.width - 2 * margin - (Math.max(...xs) - minX) * scale) / 2;
  const offY = margin + (canvas.height - 2 * margin - (Math.max(...ys) - minY) * scale) / 2;
  const at = (p) => [offX + (p[0] - minX) * scale, offY + (p[1] - minY) * scale];
  ctx.strokeStyle = '#000'; ctx.lineWidth = 1.5; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
  const segments = [];
  for (const line of lines) for (let i = 1; i < line.length; i++) segments.push([at(line[i - 1]), at(line[i])]);
  const paint = (from, to) => {
    ctx.beginPath();
    for (let i = from; i < to; i++) { ctx.moveTo(...segments[i][0]); ctx.lineTo(...segments[i][1]); }
    ctx.stroke();
  };
  if (!animate) { paint(0, segments.length); return; }
  const perFrame = Math.max(1, Math.ceil(segments.length / 60));   // about one second per sketch
  let done = 0;
  const frame = () => {
    const next = Math.min(done + perFrame, segments.length);
    paint(done, next);
    done = next;
    if (done < segments.length) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

function sketchFigure(rows, caption, size = 120, animate = true) {
  const figure = document.createElement('figure');
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = size;
  figure.append(canvas);
  if (caption) {
    const text = document.createElement('figcaption');
    text.textContent = caption;
    figure.append(text);
  }
  drawSketch(canvas, rows, animate);
  return figure;
}

function imageFigure(pixels, caption, size = 120) {
  // a greyscale image (rows of 0..255) scaled up without smoothing
  const figure = document.createElement('figure');
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = size;
  const side = pixels.length, small = new ImageData(side, side);
  pixels.flat().forEach((v, i) => { small.data.set([v, v, v, 255], 4 * i); });
  const scratch = document.createElement('canvas');
  scratch.width = scratch.height = side;
  scratch.getContext('2d').putImageData(small, 0, 0);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0, size, size);
  const text = document.createElement('figcaption');
  text.textContent = caption;
  figure.append(canvas, text);
  return figure;
}

function showBars(container, values, name, winner) {
  container.replaceChildren(...values.map((value, k) => {
    const bar = document.createElement('div');
    bar.className = 'bar' + (k === winner ? ' winner' : '');
    bar.dataset.value = String(value);
    bar.innerHTML = `<span class="label">${name} ${k}</span><span class="track"><span class="fill"></span></span>` +
      `<span class="value">${value.toFixed(3)}</span>`;
    bar.querySelector('.fill').style.width = `${(100 * value).toFixed(1)}%`;
    bar.querySelector('.fill').style.display = 'block';
    return bar;
  }));
}

// ------------------------------------------------------------------------------------------ the pad

const pad = $('pad');
const padCtx = pad.getContext('2d');

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

function redrawPad() {
  padCtx.fillStyle = '#fff';
  padCtx.fillRect(0, 0, pad.width, pad.height);
  padCtx.strokeStyle = '#000'; padCtx.lineWidth = 3; padCtx.lineCap = 'round'; padCtx.lineJoin = 'round';
  for (const stroke of state.strokes) {
    padCtx.beginPath();
    padCtx.moveTo(...stroke[0]);
    for (const p of stroke.slice(1)) padCtx.lineTo(...p);
    if (stroke.length === 1) padCtx.lineTo(stroke[0][0] + 0.1, stroke[0][1]);
    padCtx.stroke();
  }
}

function erase(at) {
  // drop the points within ERASER_RADIUS of `at`, splitting strokes where points were dropped
  const kept = [];
  for (const stroke of state.strokes) {
    let piece = [];
    for (const p of stroke) {
      if (Math.hypot(p[0] - at[0], p[1] - at[1]) > ERASER_RADIUS) piece.push(p);
      else if (piece.length) { kept.push(piece); piece = []; }
    }
    if (piece.length) kept.push(piece);
  }
  state.strokes = kept;
}

pad.addEventListener('pointerdown', (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  state.drawing = true;
  if (state.erasing) erase(padPoint(event));
  else state.strokes.push([padPoint(event)]);
  redrawPad();
});
pad.addEventListener('pointermove', (event) => {
  if (!state.drawing) return;
  if (state.erasing) erase(padPoint(event));
  else state.strokes[state.strokes.length - 1].push(padPoint(event));
  redrawPad();
});
for (const type of ['pointerup', 'pointercancel']) {
  pad.addEventListener(type, () => { state.drawing = false; });
}
$('undo').addEventListener('click', () => { state.strokes.pop(); redrawPad(); });
$('clear').addEventListener('click', () => { state.strokes = []; redrawPad(); });
$('eraser').addEventListener('change', (event) => {
  state.erasing = event.target.checked;
  pad.classList.toggle('erasing', state.erasing);
});

// ------------------------------------------------------------------------------------------ the steps

function padStrokes() {
  return state.strokes.map((stroke) => stroke.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]));
}

function showPlacement(result) {
  if (result.group_responsibilities) {
    showBars($('group-bars'), result.group_responsibilities, 'group', result.group);
  } else {
    $('group-bars').replaceChildren();
  }
  if (result.responsibilities) showBars($('bars'), result.responsibilities, 'Gaussian', result.gaussian);
  else $('bars').replaceChildren();
}

$('encode').addEventListener('click', async () => {
  const result = await post('encode', { strokes: padStrokes(), temperature: temperature(), count: 4,
                                        seed: randomSeed() });
  if (!result) return;
  showPlacement(result);
  $('redrawings').replaceChildren(sketchFigure(result.input, 'your sketch', 120, false),
    ...result.redrawings.map((rows, k) => sketchFigure(rows, `redrawing ${k + 1}`)));
});

async function showComponent(kind, index) {
  const result = await post('gaussian', { kind, index, count: 8, temperature: temperature(), seed: randomSeed() });
  if (!result) return;
  $('gaussian-grid').replaceChildren(...result.sketches.map((rows) => sketchFigure(rows, `${kind} ${index}`, 96)));
}

$('interpolate').addEventListener('click', async () => {
  const a = $('from').value === 'drawing' ? { strokes: padStrokes() } : { test: parseInt($('from-index').value, 10) };
  const b = { test: parseInt($('to-index').value, 10) };
  const result = await post('interpolate', { a, b, steps: 7, temperature: temperature(), seed: randomSeed() });
  if (!result) return;
  $('strip').replaceChildren(sketchFigure(result.a, 'from', 80, false),
    ...result.sketches.map((rows, k) => sketchFigure(rows, `${k}`, 80)), sketchFigure(result.b, 'to', 80, false));
});

$('compare').addEventListener('click', async () => {
  const result = await post('compare', { temperature: temperature(), seed: randomSeed() });
  if (!result) return;
  $('pair').replaceChildren(sketchFigure(result.real, `real ${result.category} #${result.index}`, 160, false),
    sketchFigure(result.redrawing, `redrawn (Gaussian ${result.gaussian ?? '-'})`, 160));
});

$('heal').addEventListener('click', async () => {
  const result = await post('heal', { strokes: padStrokes(), prob: parseFloat($('prob').value),
                                      temperature: temperature(), count: 3, seed: randomSeed() });
  if (!result) return;
  $('healed').replaceChildren(imageFigure(result.masked_image, `masked input (${result.masked_patches.length} patches)`),
    ...result.healed.map((rows, k) => sketchFigure(rows, `healed ${k + 1}`)));
});

$('from').addEventListener('change', () => { $('from-index').hidden = $('from').value === 'drawing'; });
$('from-index').hidden = true;

for (const [input, output] of [['temperature', 'temperature-value'], ['prob', 'prob-value']]) {
  $(input).addEventListener('input', () => { $(output).textContent = $(input).value; });
}

// ------------------------------------------------------------------------------------------ models

function chooseModel(name) {
  state.model = state.models.find((m) => m.name === name);
  const m = state.model;
  $('model-info').textContent = `${m.model_type}: ${m.categories.join(', ')} (${m.dec_model} ${m.dec_rnn_size}, ` +
    `z ${m.z_size})`;
  const reasonFor = (need) => (need === 'interpolate' && m.capabilities.interpolate === null && !m.test_sketches
    ? 'the page interpolates towards a test sketch: start serve.py with --data_dir' : m.capabilities[need]);
  for (const section of document.querySelectorAll('section[data-needs]')) {
    const reason = reasonFor(section.dataset.needs);
    section.classList.toggle('disabled', reason !== null);
    section.querySelector('.unavailable').textContent = reason === null ? '' : `Unavailable: ${reason}.`;
  }
  for (const button of document.querySelectorAll('button[data-step]')) {
    const need = button.closest('section').dataset.needs || 'encode';
    button.disabled = reasonFor(need) !== null;
  }
  const list = $('gaussian-list');
  list.replaceChildren();
  for (const [kind, items] of [['group', m.groups], ['gaussian', m.gaussians]]) {
    for (const item of items.filter((c) => c.alive)) {
      const button = document.createElement('button');
      button.textContent = `${kind} ${item.index} · ${item.weight.toFixed(2)}`;
      button.dataset.kind = kind;
      button.dataset.index = String(item.index);
      button.addEventListener('click', () => showComponent(kind, item.index));
      list.append(button);
    }
  }
  for (const id of ['bars', 'group-bars', 'redrawings', 'gaussian-grid', 'strip', 'pair', 'healed']) {
    $(id).replaceChildren();
  }
}

async function start() {
  redrawPad();
  const response = await fetch('/api/models');
  state.models = await response.json();
  $('model').replaceChildren(...state.models.map((m) => new Option(m.name, m.name)));
  $('model').addEventListener('change', (event) => chooseModel(event.target.value));
  chooseModel(state.models[0].name);
  document.body.dataset.ready = 'true';
}

start();
