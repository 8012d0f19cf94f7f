// Writes the source GGUF files of test/helpers/quant-models.ts into a folder, for tools/gen_quant_fixtures.py
// to quantize with llama.cpp's llama_model_quantize:  node dist/tools/write_quant_sources.js <folder>
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { QUANT_MODEL_CASES, quantSourceGguf } from "../test/helpers/quant-models.js";

const dir = process.argv[2];
if (!dir) throw new Error("usage: node dist/tools/write_quant_sources.js <folder>");
for (const c of QUANT_MODEL_CASES) writeFileSync(join(dir, `${c.name}.gguf`), quantSourceGguf(c));
process.stdout.write(JSON.stringify(QUANT_MODEL_CASES.map((c) => ({ name: c.name, presets: c.presets }))));
