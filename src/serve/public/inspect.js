// The inspect page: one prompt through POST /inspect, drawn as attention maps per head (canvas; one head at
// a time as an SVG with its tokens), the logit-lens grid, direct-logit-attribution bars, and the clean and
// head-ablated losses and predictions. Ticking a head re-runs the request with it ablated. No framework, no
// build step.
import { errorMessage, headers } from "./api.js";

const $ = (id) => document.getElementById(id);
const status = $("status");
const promptInput = $("prompt");
const inspectButton = $("inspect");
const clearButton = $("clear-ablation");
const SVG = "http://www.w3.org/2000/svg";

/** Heads ticked for ablation, as "layer:head". */
const ablated = new Set();
/** The head shown in the detail view. */
let selected = { layer: 0, head: 0 };
/** The last report on screen. */
let report = null;
let busy = false;
/** A change (a head ticked) while a request was out: run again when it is back. */
let again = false;

function say(text, error = false) {
  status.textContent = text;
  status.classList.toggle("error", error);
}

/** A token as shown: whitespace made visible, control characters escaped (src/serve/inspect.ts: showToken). */
function show(text) {
  if (text === "") return "∅";
  const shown = { " ": "·", "\n": "↵", "\t": "⇥" };
  return [...text]
    .map((c) => {
      if (c in shown) return shown[c];
      const code = c.charCodeAt(0);
      return code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : c;
    })
    .join("");
}

const headName = (layer, head) => `L${layer}H${head}`;

function el(tag, props = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) {
    $("models").textContent = `cannot list models: ${await errorMessage(response)}`;
    return;
  }
  const ids = (await response.json()).data.map((m) => m.id);
  $("model").replaceChildren(...ids.map((id) => el("option", { value: id, textContent: id })));
  $("models").textContent = ids.length === 1 ? `model: ${ids[0]}` : `models: ${ids.join(", ")}`;
}

function ablationList() {
  return [...ablated].map((key) => {
    const [layer, head] = key.split(":").map(Number);
    return { layer, head };
  });
}

async function run() {
  const prompt = promptInput.value;
  if (!prompt) return;
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  inspectButton.disabled = true;
  say("inspecting…");
  try {
    const response = await fetch("/inspect", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ model: $("model").value || undefined, prompt, ablate: ablationList() }),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    report = await response.json();
    const { layers, heads } = shape(report);
    if (selected.layer >= layers || selected.head >= heads) selected = { layer: 0, head: 0 };
    for (const key of [...ablated]) {
      const [l, h] = key.split(":").map(Number);
      if (l >= layers || h >= heads) ablated.delete(key);
    }
    render();
    say(`${report.tokens.length} tokens · ${report.model}`);
  } catch (e) {
    say(e.message, true);
  } finally {
    busy = false;
    inspectButton.disabled = false;
    clearButton.disabled = ablated.size === 0;
  }
  if (again) {
    again = false;
    run();
  }
}

function shape(r) {
  return { layers: r.patterns.length, heads: r.patterns[0]?.length ?? 0 };
}

function render() {
  for (const id of ["summary", "attention", "lens-section", "dla-section"]) $(id).hidden = false;
  renderSummary();
  renderHeads();
  renderDetail();
  renderLens();
  renderDla();
}

function predictions(list, top) {
  list.replaceChildren(
    ...top.map((t) =>
      el("li", { dataset: { id: String(t.id), prob: String(t.prob) } }, [
        el("code", { textContent: show(t.text) }),
        ` ${(t.prob * 100).toFixed(1)}%`,
      ]),
    ),
  );
}

function renderSummary() {
  const { clean, ablated: abl } = report;
  $("loss-clean").textContent = clean.loss.toFixed(4);
  $("loss-clean").dataset.value = String(clean.loss);
  predictions($("top-clean"), clean.top);
  $("ablated-run").hidden = abl === null;
  if (abl) {
    $("ablated-heads").textContent = abl.heads.map((h) => headName(h.layer, h.head)).join(", ");
    $("loss-ablated").textContent = abl.loss.toFixed(4);
    $("loss-ablated").dataset.value = String(abl.loss);
    const delta = abl.loss - clean.loss;
    $("loss-delta").textContent = `(${delta >= 0 ? "+" : ""}${delta.toFixed(4)})`;
    predictions($("top-ablated"), abl.top);
  }
}

/** White to dark blue: how much attention (0..1). */
function blue(v) {
  const t = Math.max(0, Math.min(1, v));
  const c = (a, b) => Math.round(a + (b - a) * t);
  return `rgb(${c(255, 8)}, ${c(255, 48)}, ${c(255, 140)})`;
}

function drawPattern(canvas, pattern) {
  const T = pattern.length;
  const cell = Math.max(2, Math.floor(128 / T));
  canvas.width = canvas.height = T * cell;
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  for (let d = 0; d < T; d++)
    for (let s = 0; s <= d; s++) {
      g.fillStyle = blue(pattern[d][s]);
      g.fillRect(s * cell, d * cell, cell, cell);
    }
}

function renderHeads() {
  const box = $("heads");
  const rows = report.patterns.map((layerPatterns, layer) =>
    el("div", { className: "layer" }, [
      el("span", { className: "layer-name", textContent: `layer ${layer}` }),
      ...layerPatterns.map((pattern, head) => {
        const key = `${layer}:${head}`;
        const name = headName(layer, head);
        const canvas = el("canvas", {
          className: "map",
          title: `${name}: click to see it with its tokens`,
          dataset: { layer: String(layer), head: String(head) },
        });
        drawPattern(canvas, pattern);
        canvas.addEventListener("click", () => {
          selected = { layer, head };
          renderHeads();
          renderDetail();
        });
        const box = el("input", {
          type: "checkbox",
          checked: ablated.has(key),
          id: `ablate-${layer}-${head}`,
        });
        box.addEventListener("change", () => {
          if (box.checked) ablated.add(key);
          else ablated.delete(key);
          run();
        });
        const score = report.induction[layer][head];
        return el(
          "div",
          {
            className: `head${selected.layer === layer && selected.head === head ? " selected" : ""}`,
            dataset: { layer: String(layer), head: String(head) },
          },
          [
            canvas,
            el("span", { className: "caption" }, [
              el("strong", { textContent: name }),
              el("span", {
                className: "induction",
                title: `induction score (TransformerLens's: random tokens repeated, halves of ${report.inductionLength})`,
                textContent: ` ind ${score.toFixed(2)}`,
                dataset: { value: String(score) },
              }),
            ]),
            el("label", { className: "ablate", htmlFor: box.id }, [box, ` ablate ${name}`]),
          ],
        );
      }),
    ]),
  );
  box.replaceChildren(...rows);
}

function renderDetail() {
  const { layer, head } = selected;
  const pattern = report.patterns[layer][head];
  const tokens = report.tokens.map((t) => show(t.text));
  const T = tokens.length;
  const cell = Math.max(8, Math.min(22, Math.floor(560 / T)));
  const label = Math.min(90, 12 + 7 * Math.max(...tokens.map((t) => t.length)));
  const svg = $("pattern");
  const size = label + T * cell;
  svg.setAttribute("width", size);
  svg.setAttribute("height", size);
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  const caption = document.createElementNS(SVG, "title");
  caption.textContent = `${headName(layer, head)}'s attention pattern`;
  const nodes = [caption];
  const text = (x, y, s, rotate) => {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", x);
    t.setAttribute("y", y);
    t.setAttribute("font-size", String(Math.min(12, cell - 1)));
    // Rotated a quarter turn back, "start" runs the source labels up from the grid's top edge.
    t.setAttribute("text-anchor", rotate ? "start" : "end");
    if (rotate) t.setAttribute("transform", `rotate(-90 ${x} ${y})`);
    t.textContent = s.length > 12 ? `${s.slice(0, 11)}…` : s;
    return t;
  };
  tokens.forEach((tok, i) => {
    nodes.push(text(label - 3, label + i * cell + cell * 0.75, tok, false)); // destinations, left
    nodes.push(text(label + i * cell + cell * 0.75, label - 3, tok, true)); // sources, top
  });
  for (let d = 0; d < T; d++)
    for (let s = 0; s <= d; s++) {
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", label + s * cell);
      r.setAttribute("y", label + d * cell);
      r.setAttribute("width", cell);
      r.setAttribute("height", cell);
      r.setAttribute("fill", blue(pattern[d][s]));
      r.dataset.dest = String(d);
      r.dataset.src = String(s);
      r.dataset.value = String(pattern[d][s]);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${tokens[d]} → ${tokens[s]}: ${pattern[d][s].toFixed(3)}`;
      r.append(title);
      nodes.push(r);
    }
  svg.replaceChildren(...nodes);
  $("detail-title").textContent =
    `${headName(layer, head)}: attention from each token (rows) to earlier tokens (columns)`;
}

/** White to dark green: a probability. */
function green(p) {
  const t = Math.sqrt(Math.max(0, Math.min(1, p)));
  const c = (a, b) => Math.round(a + (b - a) * t);
  return { background: `rgb(${c(255, 20)}, ${c(255, 110)}, ${c(255, 60)})`, ink: t > 0.6 ? "#fff" : "#111" };
}

function renderLens() {
  const { lens, tokens } = report;
  const head = el("tr", {}, [
    el("th", { textContent: "layer \\ token", scope: "col" }),
    ...tokens.map((t) => el("th", { scope: "col", textContent: show(t.text) })),
  ]);
  const rows = lens.labels.map((label, row) =>
    el("tr", {}, [
      el("th", { scope: "row", textContent: label }),
      ...lens.top[row].map((top, pos) => {
        const best = top[0];
        const colour = green(best.prob);
        const td = el("td", {
          textContent: show(best.text),
          title: top.map((t) => `${show(t.text)} ${(t.prob * 100).toFixed(1)}%`).join("\n"),
          dataset: { row: String(row), pos: String(pos), id: String(best.id), prob: String(best.prob) },
        });
        td.style.background = colour.background;
        td.style.color = colour.ink;
        return td;
      }),
    ]),
  );
  $("lens").replaceChildren(el("thead", {}, [head]), el("tbody", {}, rows));
}

function renderDla() {
  const { dla } = report;
  $("dla-target").textContent =
    `What each part of the model writes directly towards the logit of “${show(dla.targetText)}” ` +
    `(the top prediction after the last token; logit ${dla.logit.toFixed(3)}), through the final norm.`;
  const most = Math.max(1e-9, ...dla.components.map((c) => Math.abs(c.value)));
  $("dla").replaceChildren(
    ...dla.components.map((c) => {
      const bar = el("span", { className: `bar ${c.value >= 0 ? "pos" : "neg"}` });
      bar.style.width = `${(50 * Math.abs(c.value)) / most}%`;
      if (c.value >= 0) bar.style.left = "50%";
      else bar.style.right = "50%";
      return el("div", { className: "dla-row", dataset: { name: c.name, value: String(c.value) } }, [
        el("span", { className: "name", textContent: c.name }),
        el("span", { className: "track" }, [bar]),
        el("span", { className: "value", textContent: c.value.toFixed(3) }),
      ]);
    }),
  );
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  run();
});
promptInput.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    run();
  }
});
clearButton.addEventListener("click", () => {
  ablated.clear();
  run();
});
$("api_key").addEventListener("change", loadModels);
loadModels();
