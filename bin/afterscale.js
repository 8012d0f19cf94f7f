#!/usr/bin/env node
// The installed `afterscale` command. It is committed (not generated) so it exists and stays executable in
// any checkout; the CLI itself is compiled into dist/ by `npm ci` (the prepare script) or `npm run build`.
import { existsSync } from "node:fs";

const cli = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write("afterscale: the CLI is not built (no dist/src/cli/main.js); run `npm run build`\n");
  process.exit(1);
}
await import(cli.href);
