// Whether node-llama-cpp (an optional dev dependency) can be loaded by the llama.cpp tests: from this
// checkout's node_modules, or from $AFTERSCALE_NODE_LLAMA_CPP. `skip` is node:test's skip option.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url));
const devDir = process.env.AFTERSCALE_NODE_LLAMA_CPP;
const available = devDir
  ? existsSync(join(devDir, "node_modules", "node-llama-cpp"))
  : existsSync(join(repoRoot, "node_modules", "node-llama-cpp"));

export const skip: false | string = available
  ? false
  : "node-llama-cpp is not installed (npm install, or set AFTERSCALE_NODE_LLAMA_CPP)";
