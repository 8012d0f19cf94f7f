// Reading and writing Hugging Face tokenizer.json files for byte-level BPE tokenizers.
// Writing is Tokenizer.toJsonText(); this file parses the format back, validating that the file is a
// tokenizer we can reproduce exactly (BPE model, ByteLevel pre-tokenizer with the GPT-2 regex, no normalizer).

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { tokenStringToBytes } from "./byte-level.js";
import { type SpecialToken, Tokenizer } from "./tokenizer.js";

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Build a Tokenizer from a parsed tokenizer.json object. `where` names the source in error messages. */
export function tokenizerFromJson(json: unknown, where = "tokenizer.json"): Tokenizer {
  const fail = (msg: string): never => {
    throw new Error(`${where}: ${msg}`);
  };
  if (!isObject(json)) return fail("not a JSON object");
  const model = json.model;
  if (!isObject(model) || model.type !== "BPE") return fail('model.type must be "BPE"');
  if (json.normalizer !== null && json.normalizer !== undefined)
    fail("normalizers are not supported (must be null)");
  const pre = json.pre_tokenizer;
  if (!isObject(pre) || pre.type !== "ByteLevel") fail('pre_tokenizer must be {"type": "ByteLevel", ...}');
  if (isObject(pre) && (pre.add_prefix_space === true || pre.use_regex === false)) {
    fail("pre_tokenizer must have add_prefix_space false and use_regex true");
  }
  if (model.dropout !== null && model.dropout !== undefined) fail("BPE dropout is not supported");
  if (!isObject(model.vocab)) return fail("model.vocab must be an object of token → id");
  const vocab = model.vocab as Record<string, unknown>;

  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) return fail("added_tokens must be an array");
  const specials: SpecialToken[] = [];
  const specialIds = new Set<number>();
  for (const t of added) {
    if (!isObject(t) || typeof t.content !== "string" || !Number.isInteger(t.id)) {
      return fail("every added_tokens entry needs a string content and an integer id");
    }
    const flag = (key: string): boolean | undefined => {
      const v = t[key];
      if (v !== undefined && typeof v !== "boolean")
        fail(
          `added token ${JSON.stringify(t.content)}: ${key} must be true or false, got ${JSON.stringify(v)}`,
        );
      return v as boolean | undefined;
    };
    // Absent flags take Hugging Face's defaults: not special, normalized unless special.
    const special = flag("special") ?? false;
    specials.push({
      content: t.content,
      id: t.id as number,
      special,
      singleWord: flag("single_word") ?? false,
      lstrip: flag("lstrip") ?? false,
      rstrip: flag("rstrip") ?? false,
      normalized: flag("normalized") ?? !special,
    });
    specialIds.add(t.id as number);
  }

  const entries = Object.entries(vocab);
  let size = 0;
  for (const [, id] of entries) {
    if (!Number.isInteger(id) || (id as number) < 0)
      fail(`vocab ids must be non-negative integers, got ${id}`);
    size = Math.max(size, (id as number) + 1);
  }
  for (const id of specialIds) size = Math.max(size, id + 1);
  const tokenBytes: (Uint8Array | null)[] = new Array(size).fill(null);
  const seen = new Array<boolean>(size).fill(false);
  for (const [token, idUnknown] of entries) {
    const id = idUnknown as number;
    if (seen[id]) fail(`vocab id ${id} is used twice`);
    seen[id] = true;
    if (specialIds.has(id)) continue; // specials may also sit in the model vocab (GPT-2 does this)
    tokenBytes[id] = tokenStringToBytes(token);
  }
  for (const id of specialIds) seen[id] = true;
  const gap = seen.indexOf(false);
  if (gap >= 0) fail(`vocab ids must be dense; id ${gap} is missing`);

  const rawMerges = model.merges ?? [];
  if (!Array.isArray(rawMerges)) return fail("model.merges must be an array");
  const merges: [number, number][] = rawMerges.map((m, i) => {
    const pair = typeof m === "string" ? m.split(" ") : m;
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== "string" ||
      typeof pair[1] !== "string"
    ) {
      return fail(`merge ${i} must be "a b" or ["a", "b"]`);
    }
    const a = vocab[pair[0]];
    const b = vocab[pair[1]];
    if (typeof a !== "number" || typeof b !== "number")
      return fail(`merge ${i} uses a token not in the vocab`);
    return [a, b];
  });
  try {
    return new Tokenizer({ tokenBytes, merges, specialTokens: specials, name: where });
  } catch (e) {
    return fail((e as Error).message);
  }
}

/** Load a tokenizer.json file. */
export function loadTokenizer(path: string): Tokenizer {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read tokenizer ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return tokenizerFromJson(json, path);
}

/** Write the canonical tokenizer.json (atomically: temp file then rename). */
export function saveTokenizer(tokenizer: Tokenizer, path: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, tokenizer.toJsonText());
  renameSync(tmp, path);
}
