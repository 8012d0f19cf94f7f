// `afterscale serve`: the OpenAI-compatible API and chat page over a trained or imported model.
import type { Command } from "commander";
import { closeOnSignals, DEFAULT_PREFILL_CHUNK, startServer } from "../serve/index.js";
import { MODEL_SPEC_HELP } from "../train/index.js";
import { int } from "./options.js";

/** Commander's way to take a repeatable option: each occurrence appends. */
const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description(
      "Serve models over an OpenAI-compatible HTTP API (/v1/...), with a chat page at /, a compare page at /compare and an inspect page at /inspect",
    )
    .requiredOption(
      "-m, --model <spec>",
      `${MODEL_SPEC_HELP}; repeat to serve several (each in its own worker; the first is the default)`,
      collect,
    )
    .option(
      "--host <host>",
      "address to bind; anything but loopback exposes the server to the network",
      "127.0.0.1",
    )
    .option("--port <n>", "port (0 picks a free one)", int(0, 65535), 8000)
    .option(
      "--api-key <key>",
      "require 'Authorization: Bearer <key>' on /v1 and the compare page's picks (default: $AFTERSCALE_API_KEY)",
    )
    .option(
      "--model-id <id>",
      "the model name clients pass (default: the run's name, or the file or folder name); repeat to name several models, in --model order",
      collect,
    )
    .option(
      "--prefs <file>",
      "SQLite file for the compare page's picks (default: prefs.sqlite in the runs root)",
    )
    .option("--max-batch <n>", "sequences decoded together in each step", int(1, 256), 8)
    .option(
      "--max-queue <n>",
      "sequences that may wait for a batch slot before requests get 429",
      int(0, 100_000),
      32,
    )
    .option(
      "--prefill-chunk <n>",
      "prompt tokens fed per step alongside the decoding rows (larger: faster first token, slower streams meanwhile)",
      int(1, 1 << 20),
      DEFAULT_PREFILL_CHUNK,
    )
    .option("--threads <n>", "kernel threads of the native backend in the inference worker", int(1, 1024))
    .option("--body-limit <bytes>", "largest request body (413 beyond)", int(1024, 1 << 30), 1 << 20)
    .option("--json", "when ready, print one JSON line (url, model, source, ...) on stdout", false)
    .action(async (o) => {
      const apiKey: string | undefined = o.apiKey ?? process.env.AFTERSCALE_API_KEY ?? undefined;
      const specs: string[] = o.model;
      const ids: string[] = o.modelId ?? [];
      if (ids.length > specs.length)
        throw new Error(
          `${ids.length} --model-id for ${specs.length} --model: give at most one id per model, in the same order`,
        );
      const server = await startServer({
        models: specs.map((modelSpec, i) => ({
          modelSpec,
          ...(ids[i] === undefined ? {} : { modelId: ids[i] }),
        })),
        ...(o.prefs === undefined ? {} : { prefs: o.prefs }),
        host: o.host,
        port: o.port,
        apiKey: apiKey || null,
        maxBatch: o.maxBatch,
        maxQueue: o.maxQueue,
        prefillChunk: o.prefillChunk,
        bodyLimit: o.bodyLimit,
        threads: o.threads ?? null,
      });
      closeOnSignals(server);
      const { config, loaded } = server.engine;
      if (o.json) {
        // One line, so a supervising process can read it with a line reader and know the server is up.
        const ready = {
          url: server.url,
          port: server.port,
          modelId: server.modelId,
          name: loaded.name,
          source: loaded.source,
          family: config.family,
          context: config.context,
          step: loaded.step,
          apiKeyRequired: Boolean(apiKey),
          maxBatch: o.maxBatch,
          maxQueue: o.maxQueue,
          pid: process.pid,
          prefs: server.prefsPath,
          // Every served model (the fields above are the first's).
          models: server.models.map(({ id, engine }) => ({
            modelId: id,
            name: engine.loaded.name,
            source: engine.loaded.source,
            family: engine.config.family,
            context: engine.config.context,
            step: engine.loaded.step,
          })),
        };
        process.stdout.write(`${JSON.stringify(ready)}\n`);
      } else {
        const described = server.models.map(({ id, engine: e }) => {
          const step = e.loaded.step === null ? "" : `, step ${e.loaded.step}`;
          return { id, title: `${id} (${e.config.family}, context ${e.config.context}${step})`, e };
        });
        const many = described.length > 1;
        const models = described.map((d) => `"${d.id}"`).join(", ");
        process.stderr.write(
          `afterscale serve: ${described.map((d) => d.title).join("; ")}\n` +
            described.map((d) => `  model       ${many ? `${d.id}: ` : ""}${d.e.loaded.source}\n`).join("") +
            `  chat page   ${server.url}/\n` +
            `  compare     ${server.url}/compare  (picks kept in ${server.prefsPath})\n` +
            `  inspect     ${server.url}/inspect\n` +
            `  OpenAI API  ${server.url}/v1  (model${many ? "s" : ""} ${models}${apiKey ? ", bearer key required" : ""})\n` +
            `  health      ${server.url}/health\n`,
        );
      }
      if (!["127.0.0.1", "localhost", "::1"].includes(o.host) && !apiKey)
        process.stderr.write("afterscale serve: warning: listening beyond loopback without --api-key\n");
    });
}
