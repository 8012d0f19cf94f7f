// Child process for the llama.cpp chat test: loads a GGUF file with node-llama-cpp (CPU only) and prints
// JSON with how llama.cpp formats and tokenizes a conversation through the file's chat template, and what a
// chat session answers. A separate process, so that a native crash fails the test with a message.
//
// Usage: node llamacpp-chat-child.js <job.json>   job = {modelPath, system, user, endId}
// node-llama-cpp is resolved as in llamacpp-child.ts.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

interface Job {
  modelPath: string;
  system: string;
  user: string;
  /** The id of <|im_end|> in the file's vocabulary. */
  endId: number;
}

// biome-ignore lint/suspicious/noExplicitAny: node-llama-cpp is an optional dev dependency without types here
async function loadNodeLlamaCpp(): Promise<any> {
  const dir = process.env.AFTERSCALE_NODE_LLAMA_CPP;
  if (dir) return import(pathToFileURL(join(dir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);
  const name = "node-llama-cpp";
  return import(name);
}

async function main(): Promise<void> {
  if (process.argv[2] === undefined) return;
  const job = JSON.parse(readFileSync(process.argv[2], "utf8")) as Job;
  const lib = await loadNodeLlamaCpp();
  const llama = await lib.getLlama({
    gpu: false,
    build: "never",
    logLevel: lib.LlamaLogLevel.error,
    maxThreads: 2,
  });
  const model = await llama.loadModel({ modelPath: job.modelPath, gpuLayers: 0 });
  const template = model.fileInfo.metadata?.tokenizer?.chat_template as string | undefined;
  if (typeof template !== "string") throw new Error("the GGUF file has no tokenizer.chat_template");
  const history = [
    { type: "system", text: job.system },
    { type: "user", text: job.user },
    { type: "model", response: [] },
  ];
  /** The ids llama.cpp evaluates for the conversation (ending with the generation prompt) under a wrapper. */
  // biome-ignore lint/suspicious/noExplicitAny: see above
  const promptIds = (wrapper: any): number[] =>
    Array.from(wrapper.generateContextState({ chatHistory: history }).contextText.tokenize(model.tokenizer));
  const jinja = new lib.JinjaTemplateChatWrapper({ template, tokenizer: model.tokenizer });
  const resolved = lib.resolveChatWrapper(model);

  const context = await model.createContext({ contextSize: 128, sequences: 1, threads: 2 });
  const session = new lib.LlamaChatSession({
    contextSequence: context.getSequence(),
    chatWrapper: jinja,
    systemPrompt: job.system,
  });
  const generated: number[] = [];
  const answer = await session.promptWithMeta(job.user, {
    temperature: 0,
    maxTokens: 16,
    onToken: (tokens: number[]) => generated.push(...tokens),
  });
  process.stdout.write(
    JSON.stringify({
      template,
      jinjaIds: promptIds(jinja),
      resolvedWrapper: resolved.wrapperName ?? resolved.constructor.name,
      resolvedIds: promptIds(resolved),
      eot: model.tokens.eot,
      endIsEog: model.isEogToken(job.endId),
      response: answer.responseText,
      stopReason: answer.stopReason,
      generated,
    }),
  );
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => {
  process.stderr.write(`llamacpp-chat-child: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
