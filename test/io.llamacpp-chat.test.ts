// Exports carry the chat format into llama.cpp: a chat model's GGUF file, loaded by node-llama-cpp, has
// the ChatML template, and llama.cpp formats and tokenizes a conversation through it (node-llama-cpp's
// Jinja wrapper over the file's tokenizer.chat_template, and the wrapper it resolves on its own) into
// exactly the ids encodeChat gives; <|im_end|> is an end-of-generation token, so a chat session's answer
// stops there, with the same tokens afterscale generates. The model is scripted (helpers/scripted-chat-model)
// to answer "Hi" and end its turn.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CHAT_TOKENS, CHATML_JINJA, type ChatMessage, encodeChat, IM_END } from "../src/data/chat.js";
import { sft } from "../src/feedback/index.js";
import { modelToGguf } from "../src/io/gguf-model.js";
import { forward, type Model, newKVCache } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";
import { loadModel, train } from "../src/train/index.js";
import { ioTokenizer } from "./helpers/io-models.js";
import { skip } from "./helpers/node-llama-cpp.js";
import { scriptedChatModel } from "./helpers/scripted-chat-model.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const childScript = fileURLToPath(new URL("./helpers/llamacpp-chat-child.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "afterscale-llamacpp-chat-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface ChildResult {
  template: string;
  jinjaIds: number[];
  resolvedWrapper: string;
  resolvedIds: number[];
  eot: number;
  endIsEog: boolean;
  response: string;
  stopReason: string;
  generated: number[];
}

/** afterscale's greedy tokens after `prompt`, up to and including `end` (at most n). */
function ourGreedy(model: Model, prompt: number[], end: number, n: number): number[] {
  return noGrad(() => {
    const cache = newKVCache(model);
    const v = model.config.vocab;
    const got: number[] = [];
    let input = prompt;
    while (got.length < n && got[got.length - 1] !== end) {
      const next = tidy(() => {
        const logits = forward(model, Int32Array.from(input), 1, input.length, { cache }).data;
        const row = logits.subarray((input.length - 1) * v, input.length * v);
        let best = 0;
        for (let i = 1; i < v; i++) if (row[i]! > row[best]!) best = i;
        return best;
      });
      got.push(next);
      input = [next];
    }
    cache.dispose();
    return got;
  });
}

test("llama.cpp formats a chat with the exported template as encodeChat and stops at <|im_end|>", {
  skip,
}, () => {
  const tok = ioTokenizer().withAddedTokens(CHAT_TOKENS);
  const end = tok.specialId(IM_END);
  const single = (s: string) => {
    const ids = tok.encode(s);
    assert.equal(ids.length, 1, `${JSON.stringify(s)} is one token`);
    return ids[0]!;
  };
  // The generation prompt ends with "\n": the model answers "H", "i", then ends its turn.
  const script = new Map([
    [single("\n"), single("H")],
    [single("H"), single("i")],
    [single("i"), end],
  ]);
  const model = scriptedChatModel(tok.vocabSize, script);
  const path = join(dir, "chat.gguf");
  writeFileSync(path, modelToGguf(model, tok, { dtype: "f32" }));

  const messages: ChatMessage[] = [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Say hi to the fox, 12 times?" },
  ];
  const prompt = encodeChat(tok, messages, { addGenerationPrompt: true }).ids;
  const ours = ourGreedy(model, prompt, end, 16);
  assert.deepEqual(ours, [single("H"), single("i"), end], "afterscale's own answer");

  const job = join(dir, "job.json");
  writeFileSync(
    job,
    JSON.stringify({ modelPath: path, system: messages[0]!.content, user: messages[1]!.content, endId: end }),
  );
  const out = execFileSync(process.execPath, [childScript, job], {
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 64 << 20,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const cpp = JSON.parse(out) as ChildResult;
  console.log(`node-llama-cpp resolved the file's template to ${cpp.resolvedWrapper}`);
  assert.equal(cpp.template, CHATML_JINJA);
  assert.deepEqual(cpp.jinjaIds, prompt, "llama.cpp's ids for the conversation through the file's template");
  // node-llama-cpp's own ChatML wrapper, which it picks as equivalent to the file's template, opens with
  // the BOS token (<|endoftext|> here) whatever add_bos_token says; the conversation after it is the same.
  const bos = cpp.resolvedIds[0] === tok.eotId ? 1 : 0;
  assert.deepEqual(cpp.resolvedIds.slice(bos), prompt, `llama.cpp's ids through ${cpp.resolvedWrapper}`);
  assert.equal(cpp.eot, end, "llama.cpp's end-of-turn token");
  assert.equal(cpp.endIsEog, true, "<|im_end|> ends generation in llama.cpp");
  assert.equal(cpp.stopReason, "eogToken");
  assert.equal(cpp.response, "Hi");
  assert.deepEqual(
    cpp.generated,
    ours.slice(0, -1),
    "llama.cpp's answer tokens (its stop token is not reported)",
  );
});

test("a model tuned with sft, exported to GGUF, answers a chat in llama.cpp exactly as in afterscale", {
  skip,
}, async () => {
  const { root, data } = tinyDataset();
  try {
    const quiet = { quiet: true, log: () => {} };
    const base = await train(
      { ...tinyModel, context: 64, data, root, runName: "base", steps: 5, evalInterval: 0 },
      quiet,
    );
    const tuned = await sft(
      {
        init: base.runDir,
        data: "task:addition",
        objectiveConfig: { taskDifficulty: 1, taskEvalCount: 20 },
        root,
        runName: "chat",
        steps: 150,
        batchSize: 16,
        lr: 1e-2,
        evalInterval: 0,
      },
      quiet,
    );
    const { model, tokenizer: tok } = loadModel(tuned.runDir, { warn: () => {} });
    const path = join(dir, "sft.gguf");
    writeFileSync(path, modelToGguf(model, tok, { dtype: "f32" }));
    const end = tok.specialId(IM_END);
    const messages: ChatMessage[] = [
      { role: "system", content: "You add." },
      { role: "user", content: "3+4=" },
    ];
    const prompt = encodeChat(tok, messages, { addGenerationPrompt: true }).ids;
    const ours = ourGreedy(model, prompt, end, 8);
    assert.equal(ours[ours.length - 1], end, `the tuned model ends its turn (answered ${tok.decode(ours)})`);
    const job = join(dir, "sft-job.json");
    writeFileSync(
      job,
      JSON.stringify({
        modelPath: path,
        system: messages[0]!.content,
        user: messages[1]!.content,
        endId: end,
      }),
    );
    const out = execFileSync(process.execPath, [childScript, job], {
      encoding: "utf8",
      timeout: 120_000,
      maxBuffer: 64 << 20,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const cpp = JSON.parse(out) as ChildResult;
    assert.deepEqual(
      cpp.jinjaIds,
      prompt,
      "llama.cpp's ids for the conversation through the exported template",
    );
    assert.equal(cpp.stopReason, "eogToken", "llama.cpp stops at <|im_end|>");
    assert.deepEqual(cpp.generated, ours.slice(0, -1), "llama.cpp's answer tokens are afterscale's");
    assert.equal(cpp.response, tok.decode(ours.slice(0, -1)));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
