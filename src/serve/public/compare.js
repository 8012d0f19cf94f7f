// The compare page: one prompt, two completions side by side from two setups (a model and its sampling
// settings each), shown as A and B in a random order per prompt so that a preference for a position does
// not become a preference for a setup. The person picks A, B or tie; picks go to /compare/picks (SQLite on
// the server), and Undo takes the last one back. Completions come from the OpenAI endpoints: chat when both
// models' tokenizers have chat tokens, plain completions otherwise. No framework, no build step.
import { errorMessage, headers } from "./api.js";

const $ = (id) => document.getElementById(id);
const status = $("status");
const promptInput = $("prompt");
const compareButton = $("compare");
const pickButtons = { a: $("pick-a"), b: $("pick-b"), tie: $("pick-tie") };
const undoButton = $("undo");

/** [{id, chat, context}] from the server. */
let models = [];
/** The comparison on screen and not yet picked: {prompt, messages, a, b, aSetup}; null otherwise. */
let current = null;
let busy = false;
let total = 0;

async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) throw new Error(await errorMessage(response));
  return response.json();
}

function say(text, error = false) {
  status.textContent = text;
  status.classList.toggle("error", error);
}

function showCounts(counts) {
  total = counts.total;
  $("counter").textContent = `picks: ${counts.total} (A ${counts.a} · B ${counts.b} · tie ${counts.tie})`;
  refresh();
}

/** Enables what can be done now. */
function refresh() {
  compareButton.disabled = busy || models.length === 0;
  for (const b of Object.values(pickButtons)) b.disabled = busy || current === null;
  undoButton.disabled = busy || total === 0;
}

function numberOr(id, fallback) {
  const v = $(id).value.trim();
  return v === "" ? fallback : Number(v);
}

/** Setup 1 or 2 as the fields say now; an empty seed becomes a random one, so the pick records its seed. */
function readSetup(n) {
  return {
    model: $(`model-${n}`).value,
    settings: {
      temperature: numberOr(`temperature-${n}`, 1),
      topP: numberOr(`top_p-${n}`, 1),
      seed: numberOr(`seed-${n}`, Math.floor(Math.random() * 2 ** 31)),
      maxTokens: numberOr("max_tokens", 128),
    },
  };
}

function describe(side) {
  const s = side.settings;
  return `${side.model}, temperature ${s.temperature}, top p ${s.topP}, seed ${s.seed}`;
}

async function loadModels() {
  try {
    models = (await call("GET", "/compare/models")).models;
  } catch (e) {
    $("models").textContent = `cannot list models: ${e.message}`;
    return;
  }
  $("models").textContent = `models: ${models.map((m) => m.id).join(", ")}`;
  for (const n of [1, 2]) {
    const select = $(`model-${n}`);
    select.replaceChildren(
      ...models.map((m) => {
        const option = document.createElement("option");
        option.value = m.id;
        option.textContent = `${m.id}${m.chat ? " (chat)" : ""}`;
        return option;
      }),
    );
  }
  // Two models: one each, same sampling. One model: two temperatures.
  if (models.length > 1) $("model-2").value = models[1].id;
  else $("temperature-2").value = "1.2";
  refresh();
  try {
    showCounts((await call("GET", "/compare/picks?limit=0")).counts);
  } catch (e) {
    say(`cannot read the picks: ${e.message}`, true);
  }
}

/** One completion for a setup: chat messages or a plain prompt. */
async function complete(setup, prompt, messages) {
  const s = setup.settings;
  const common = {
    model: setup.model,
    temperature: s.temperature,
    top_p: s.topP,
    seed: s.seed,
    max_tokens: s.maxTokens,
  };
  if (messages) {
    const r = await call("POST", "/v1/chat/completions", { ...common, messages });
    return r.choices[0].message.content;
  }
  const r = await call("POST", "/v1/completions", { ...common, prompt });
  return r.choices[0].text;
}

function show(comparison) {
  $("text-a").textContent = comparison.a.completion;
  $("text-b").textContent = comparison.b.completion;
  for (const side of ["a", "b"]) $(`side-${side}`).classList.remove("chosen");
}

async function compare(prompt) {
  busy = true;
  current = null;
  refresh();
  $("pair").setAttribute("aria-busy", "true");
  $("text-a").textContent = "";
  $("text-b").textContent = "";
  say("generating…");
  try {
    const setups = [readSetup(1), readSetup(2)];
    const chat = setups.every((s) => models.find((m) => m.id === s.model)?.chat);
    const messages = chat ? [{ role: "user", content: prompt }] : null;
    // The coin flip: which setup is shown as A.
    const aSetup = Math.random() < 0.5 ? 1 : 2;
    const [first, second] = aSetup === 1 ? setups : [setups[1], setups[0]];
    const [textA, textB] = await Promise.all([
      complete(first, prompt, messages),
      complete(second, prompt, messages),
    ]);
    current = {
      prompt,
      messages,
      a: { ...first, completion: textA },
      b: { ...second, completion: textB },
      aSetup,
    };
    show(current);
    say("Which is better? Pick A, B or tie.");
  } catch (e) {
    say(`generation failed: ${e.message}`, true);
  } finally {
    busy = false;
    $("pair").setAttribute("aria-busy", "false");
    refresh();
  }
}

async function pick(choice) {
  if (!current) return;
  busy = true;
  refresh();
  const picked = current;
  try {
    const r = await call("POST", "/compare/picks", { ...picked, pick: choice });
    current = null;
    if (choice !== "tie") $(`side-${choice}`).classList.add("chosen");
    const [setupA, setupB] = picked.aSetup === 1 ? [1, 2] : [2, 1];
    say(
      `Saved pick ${r.pick.id} (${choice === "tie" ? "tie" : choice.toUpperCase()}). ` +
        `A was setup ${setupA}: ${describe(picked.a)}. B was setup ${setupB}: ${describe(picked.b)}.`,
    );
    showCounts(r.counts);
  } catch (e) {
    say(`the pick was not saved: ${e.message}`, true);
  } finally {
    busy = false;
    refresh();
    promptInput.focus();
  }
}

async function undo() {
  busy = true;
  refresh();
  try {
    const r = await call("DELETE", "/compare/picks/last");
    const { id, createdAt, pick: was, ...comparison } = r.removed;
    // The undone comparison comes back on screen, to be picked again.
    current = comparison;
    promptInput.value = comparison.prompt;
    show(comparison);
    say(`Undid pick ${id} (${was === "tie" ? "tie" : was.toUpperCase()}); pick again.`);
    showCounts(r.counts);
  } catch (e) {
    say(`cannot undo: ${e.message}`, true);
  } finally {
    busy = false;
    refresh();
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const prompt = promptInput.value.trim();
  if (!prompt || busy) return;
  void compare(prompt);
});

promptInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

for (const [choice, button] of Object.entries(pickButtons))
  button.addEventListener("click", () => pick(choice));
undoButton.addEventListener("click", () => undo());

promptInput.focus();
void loadModels();
