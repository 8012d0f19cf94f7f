// The chat page: keeps the conversation, streams each reply from /v1/chat/completions (server-sent events)
// into the log as it arrives, and reports tokens/s. No framework, no build step.
import { errorMessage, headers } from "./api.js";

const $ = (id) => document.getElementById(id);
const log = $("log");
const form = $("composer");
const input = $("message");
const sendButton = $("send");
const stopButton = $("stop");
const status = $("status");

/** The conversation so far, as OpenAI messages (the system prompt is added per request). */
let history = [];
let modelId = null;
let controller = null;

async function loadModel() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) {
    $("model").textContent = `cannot list models: ${await errorMessage(response)}`;
    return;
  }
  const body = await response.json();
  modelId = body.data[0]?.id ?? null;
  $("model").textContent = modelId ? `model: ${modelId}` : "no model";
}

function addTurn(who, text, cls) {
  const turn = document.createElement("p");
  turn.className = `turn ${cls}`;
  const label = document.createElement("span");
  label.className = "who";
  label.textContent = who;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  turn.append(label, body);
  log.append(turn);
  log.scrollTop = log.scrollHeight;
  return body;
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function setBusy(busy) {
  sendButton.disabled = busy;
  stopButton.disabled = !busy;
}

function showRate(tokens, started, firstAt, done) {
  const now = performance.now();
  const seconds = (now - started) / 1000;
  const rate = seconds > 0 ? (tokens / seconds).toFixed(1) : "–";
  const ttft = firstAt ? ` · first token ${Math.round(firstAt - started)} ms` : "";
  status.textContent = `tokens/s: ${rate} · ${tokens} tokens${ttft}${done ? "" : " · generating…"}`;
}

/** Reads server-sent events from a fetch response, calling onData with each `data:` payload. */
async function readEvents(response, onData) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) if (line.startsWith("data: ")) onData(line.slice(6));
      end = buffer.indexOf("\n\n");
    }
  }
}

async function send(text) {
  if (!modelId) await loadModel();
  history.push({ role: "user", content: text });
  addTurn("You", text, "user");
  const reply = addTurn("Assistant", "", "assistant");
  const system = $("system").value.trim();
  const body = {
    model: modelId,
    messages: system ? [{ role: "system", content: system }, ...history] : history,
    stream: true,
    stream_options: { include_usage: true },
    temperature: numberOrNull("temperature") ?? 1,
    top_p: numberOrNull("top_p") ?? 1,
    max_tokens: numberOrNull("max_tokens") ?? 128,
  };
  const seed = numberOrNull("seed");
  if (seed !== null) body.seed = seed;

  controller = new AbortController();
  setBusy(true);
  const started = performance.now();
  let firstAt = 0;
  let tokens = 0;
  let answer = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    await readEvents(response, (data) => {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
      const delta = chunk.choices?.[0]?.delta?.content;
      if (delta) {
        if (!firstAt) firstAt = performance.now();
        answer += delta;
        reply.textContent = answer;
        tokens++;
        log.scrollTop = log.scrollHeight;
      }
      showRate(tokens, started, firstAt, false);
    });
    showRate(tokens, started, firstAt, true);
  } catch (e) {
    if (e.name === "AbortError") showRate(tokens, started, firstAt, true);
    else addTurn("Error", e.message, "error");
  } finally {
    history.push({ role: "assistant", content: answer });
    controller = null;
    setBusy(false);
    input.focus();
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = "";
  void send(text);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", () => controller?.abort());

$("clear").addEventListener("click", () => {
  controller?.abort();
  history = [];
  log.replaceChildren();
  status.textContent = "tokens/s: –";
  input.focus();
});

input.focus();
void loadModel();
