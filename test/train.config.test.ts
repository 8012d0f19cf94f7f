import assert from "node:assert/strict";
import { test } from "node:test";
import { Command } from "commander";
import { givenTrainFields, trainFieldOption } from "../src/cli/options.js";
import {
  lrAt,
  modelConfigFor,
  OBJECTIVE_FIELDS,
  parseTrainConfig,
  trainConfigFields,
  trainDefaults,
} from "../src/train/index.js";

test("defaults fill every field; steps, root and runName are resolved", () => {
  const c = parseTrainConfig({});
  assert.equal(c.model, trainDefaults.model);
  assert.equal(c.steps, 1000);
  assert.ok(c.root.startsWith("/"), "root is absolute");
  assert.match(c.runName, /^micro-llama-\d{8}-\d{6}$/);
  assert.equal(parseTrainConfig({ tokens: 10_000, batchSize: 4, context: 16 }).steps, Math.ceil(10_000 / 64));
});

test("AFTERSCALE_HOME overrides the default root", () => {
  const prev = process.env.AFTERSCALE_HOME;
  process.env.AFTERSCALE_HOME = "/tmp/afterscale-home-test";
  try {
    assert.equal(parseTrainConfig({}).root, "/tmp/afterscale-home-test");
    assert.equal(parseTrainConfig({ root: "/x/y" }).root, "/x/y");
  } finally {
    if (prev === undefined) delete process.env.AFTERSCALE_HOME;
    else process.env.AFTERSCALE_HOME = prev;
  }
});

test("unknown and invalid fields are errors naming the field and what is allowed", () => {
  assert.throws(
    () => parseTrainConfig({ lerning_rate: 1 }),
    /unknown field lerning_rate \(allowed: .*\blr\b.*\)/,
  );
  assert.throws(() => parseTrainConfig({ schedule: "linear" }), /schedule: .*allowed: cosine, wsd/);
  assert.throws(() => parseTrainConfig({ model: "huge" }), /model: .*allowed: nano, micro, mini, small/);
  assert.throws(() => parseTrainConfig({ family: "bert" }), /family: .*allowed: gpt2, llama/);
  assert.throws(() => parseTrainConfig({ lr: -1 }), /lr: /);
  assert.throws(() => parseTrainConfig({ batchSize: 2.5 }), /batchSize: /);
  assert.throws(() => parseTrainConfig({ steps: "ten" }), /steps: /);
  assert.throws(() => parseTrainConfig({ runName: "../escape" }), /runName: /);
  assert.throws(() => parseTrainConfig({ steps: 10, tokens: 1e6 }), /tokens: give steps or tokens/);
});

test("model config: preset shapes, explicit fields override, dataset vocabulary and context", () => {
  const c = parseTrainConfig({
    model: "nano",
    family: "llama",
    context: 64,
    layers: 2,
    heads: 2,
    dropout: 0.1,
  });
  const m = modelConfigFor(c, 300);
  assert.equal(m.vocab, 300);
  assert.equal(m.context, 64);
  assert.equal(m.layers, 2);
  assert.equal(m.heads, 2);
  assert.equal(m.dModel, 64);
  assert.equal(m.dropout, 0.1);
  const g = modelConfigFor(parseTrainConfig({ model: "micro", family: "gpt2", heads: 8 }), 500);
  assert.equal(g.kvHeads, 8, "gpt2 kvHeads follow heads");
  assert.throws(() => modelConfigFor(parseTrainConfig({ model: "nano", heads: 3 }), 300), /heads/);
});

test("cosine: linear warmup to lr, then a half cosine down to lr·minLrRatio", () => {
  const s = {
    schedule: "cosine" as const,
    lr: 1,
    minLrRatio: 0.1,
    warmupSteps: 10,
    steps: 110,
    decayFraction: 0.2,
  };
  assert.equal(lrAt(0, s), 0.1);
  assert.equal(lrAt(4, s), 0.5);
  assert.equal(lrAt(9, s), 1);
  assert.equal(lrAt(10, s), 1);
  assert.ok(Math.abs(lrAt(60, s) - 0.55) < 1e-12, "midpoint is halfway between max and min");
  assert.ok(lrAt(109, s) > 0.1 && lrAt(109, s) < 0.101);
  for (let i = 10; i < 109; i++) assert.ok(lrAt(i + 1, s) <= lrAt(i, s), "monotone after warmup");
});

test("wsd: warmup, constant, then linear decay over the last decayFraction of steps", () => {
  const s = {
    schedule: "wsd" as const,
    lr: 2,
    minLrRatio: 0,
    warmupSteps: 5,
    steps: 100,
    decayFraction: 0.2,
  };
  assert.equal(lrAt(0, s), 0.4);
  assert.equal(lrAt(5, s), 2);
  assert.equal(lrAt(79, s), 2);
  assert.equal(lrAt(80, s), 2 * (1 - 1 / 20));
  assert.equal(lrAt(89, s), 1);
  assert.equal(lrAt(99, s), 0);
});

test("trainConfigFields lists every field with its type, allowed values, default and description", () => {
  const fields = new Map(trainConfigFields().map((f) => [f.name, f]));
  assert.deepEqual(fields.get("schedule"), {
    name: "schedule",
    type: "enum",
    allowed: ["cosine", "wsd"],
    default: "cosine",
    description: "learning-rate schedule after warmup",
  });
  assert.equal(fields.get("batchSize")!.type, "integer");
  assert.equal(fields.get("lr")!.type, "number");
  assert.equal(fields.get("steps")!.default, undefined);
  for (const f of fields.values()) assert.ok(f.description.length > 0, `${f.name} has a description`);
  for (const [k, v] of Object.entries(trainDefaults)) {
    if (OBJECTIVE_FIELDS.includes(k))
      assert.equal(fields.has(k), false, `${k} is set by the command, not a flag`);
    else assert.equal(fields.get(k)!.default, v, k);
  }
});

test("a trainer flag's help shows its default, but an unset flag stays unset (a --config file wins)", () => {
  const fields = trainConfigFields();
  const cmd = new Command().exitOverride().configureOutput({ writeErr: () => {} });
  for (const f of fields) cmd.addOption(trainFieldOption(f));
  const help = cmd.helpInformation().replace(/\s+/g, " ");
  assert.match(help, /--lr <value> peak learning rate \(default: 0\.003\)/);
  assert.match(
    help,
    /--schedule <value> learning-rate schedule after warmup \(default: cosine\) \(choices: "cosine", "wsd"\)/,
  );
  cmd.parse(["--batch-size", "4"], { from: "user" });
  assert.deepEqual(givenTrainFields(cmd.opts(), fields), { batchSize: 4 });
  assert.throws(
    () => cmd.parse(["--schedule", "linear"], { from: "user" }),
    /Allowed choices are cosine, wsd/,
  );
});
