// The package as a user gets it: `npm pack`, then an install of the tarball into an empty folder outside the
// repository, offline, from the npm cache that `npm ci` filled; that install compiles the native addon (and
// better-sqlite3, which has no prebuilt binary offline). `npm ci` fetches tarballs by their lock entries
// but no registry metadata, so a plain `npm install <tarball>` cannot resolve versions offline: the folder
// gets a lock file made from this repository's (the tarball plus the production entries, the versions
// `npm install <tarball>` picks from the same pins), and `npm ci --offline` installs it. Then, in that folder: the installed `afterscale`
// command (version, a tiny training run, a fit of the shipped Chinchilla data, a report, the chat page),
// the library (load, generate on the native backend) and its type declarations. Prints what each step did
// and how long it took; any failure exits 1.
//
//   node dist/tools/check-package.js        (from the repository root, after `npm ci`)
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(process.cwd());
const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { name: string; version: string };

/** Files the code reads at run time, or the install script builds from, beside the compiled dist/src. */
const MUST_SHIP = [
  "package.json",
  "bin/afterscale.js",
  "dist/src/index.js",
  "dist/src/index.d.ts",
  "dist/src/cli/main.js",
  "dist/src/serve/worker.js",
  "binding.gyp",
  "native/src/addon.cc",
  "native/src/kernels.h",
  "src/serve/public/index.html",
  "src/serve/public/chat.js",
  "src/serve/public/api.js",
  "src/serve/public/chat.css",
  "src/scaling/data/chinchilla.csv",
  "recipes/gpt2.json",
  "recipes/afterscale.json",
];
/** Nothing of the development tree: tests, fixtures, benchmarks, tools, source maps, build output. */
const MUST_NOT_SHIP = [
  /^test\//,
  /^dist\/(test|bench|tools)\//,
  /fixtures/,
  /\.map$/,
  /^build\//,
  /^native\/dev\//,
];

function sh(cmd: string, args: string[], cwd: string, timeoutSeconds = 120): string {
  try {
    return execFileSync(cmd, args, {
      cwd,
      encoding: "utf8",
      timeout: timeoutSeconds * 1000,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, AFTERSCALE_HOME: "" },
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`,
    );
  }
}

interface LockEntry {
  dev?: boolean;
  [field: string]: unknown;
}

/** A user's package.json depending on the tarball, and its lock: the tarball and this repository's
 *  production entries (same paths: the app has no other dependencies, so the tree hoists the same way). */
function writeUserProject(app: string, tarball: string): void {
  const spec = `file:${tarball}`;
  const full = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
  const lock = JSON.parse(readFileSync(join(repo, "package-lock.json"), "utf8")) as {
    lockfileVersion: number;
    packages: Record<string, LockEntry>;
  };
  const packages: Record<string, unknown> = {
    "": { name: "app", dependencies: { [pkg.name]: spec } },
    [`node_modules/${pkg.name}`]: {
      version: pkg.version,
      resolved: spec,
      integrity: `sha512-${createHash("sha512")
        .update(readFileSync(join(app, tarball)))
        .digest("base64")}`,
      hasInstallScript: true,
      license: full.license,
      dependencies: full.dependencies,
      bin: full.bin,
      engines: full.engines,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === "" || path === `node_modules/${pkg.name}` || entry.dev) continue;
    packages[path] = entry;
  }
  const project = { name: "app", private: true, type: "module", dependencies: { [pkg.name]: spec } };
  writeFileSync(join(app, "package.json"), `${JSON.stringify(project, null, 2)}\n`);
  const userLock = { name: "app", lockfileVersion: lock.lockfileVersion, requires: true, packages };
  writeFileSync(join(app, "package-lock.json"), `${JSON.stringify(userLock, null, 2)}\n`);
}

async function step<T>(what: string, f: () => T | Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await f();
  console.log(`ok   ${what} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return r;
}

/** `afterscale serve --port 0` in the user's folder: the chat page and the API answer, then Ctrl-C. */
async function servePage(app: string): Promise<string> {
  const child = spawn(
    join(app, "node_modules", ".bin", "afterscale"),
    ["serve", "--model", "runs/tiny", "--port", "0"],
    {
      cwd: app,
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
  try {
    const deadline = Date.now() + 60_000;
    let url: string | undefined;
    while (!url && Date.now() < deadline && child.exitCode === null) {
      url = /chat page\s+(http:\S+?)\/?\s/.exec(err)?.[1];
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!url) throw new Error(`serve printed no chat page URL:\n${err}`);
    const page = await fetch(`${url}/`);
    const html = await page.text();
    if (!page.ok || !html.includes("<html")) throw new Error(`GET /: ${page.status}`);
    const script = await fetch(`${url}/chat.js`);
    if (!script.ok) throw new Error(`GET /chat.js: ${script.status}`);
    child.kill("SIGINT");
    const code = await exited;
    if (code !== 0) throw new Error(`serve exited ${code} after SIGINT:\n${err}`);
    return url;
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), "afterscale-package-"));
  const t0 = performance.now();
  try {
    const packed = await step("npm pack", () => {
      const out = sh("npm", ["pack", "--json", "--pack-destination", scratch], repo, 300);
      // npm prints the prepare script's output before the JSON.
      return JSON.parse(out.slice(out.indexOf("[\n"))) as {
        filename: string;
        size: number;
        unpackedSize: number;
        files: { path: string }[];
      }[];
    });
    const { filename, size, unpackedSize, files } = packed[0]!;
    const paths = files.map((f) => f.path);
    const missing = MUST_SHIP.filter((p) => !paths.includes(p));
    const extra = paths.filter((p) => MUST_NOT_SHIP.some((re) => re.test(p)));
    if (missing.length > 0) throw new Error(`the tarball lacks ${missing.join(", ")}`);
    if (extra.length > 0) throw new Error(`the tarball carries ${extra.slice(0, 10).join(", ")}`);
    console.log(
      `     ${filename}: ${files.length} files, ${(size / 1024).toFixed(0)} KiB (${(unpackedSize / 1024).toFixed(0)} KiB unpacked)`,
    );

    const app = join(scratch, "app");
    mkdirSync(app);
    renameSync(join(scratch, filename), join(app, filename));
    writeUserProject(app, filename);
    await step(
      "npm ci --offline: the tarball into an empty folder (builds the addon and better-sqlite3)",
      () => sh("npm", ["ci", "--offline", "--no-audit", "--no-fund"], app, 1200),
    );
    const bin = join(app, "node_modules", ".bin", "afterscale");

    await step("afterscale --version", () => {
      const v = sh(bin, ["--version"], app).trim();
      if (v !== pkg.version) throw new Error(`--version printed ${v}, expected ${pkg.version}`);
    });
    await step("afterscale train (tiny run of the afterscale recipe on the synthetic corpus)", () =>
      sh(
        bin,
        [
          "train",
          "--recipe",
          "afterscale",
          "--data",
          "synthetic",
          "--vocab",
          "300",
          "--model",
          "nano",
          "--steps",
          "10",
          "--context",
          "32",
        ].concat(["--batch-size", "4", "--eval-interval", "0", "--run-name", "tiny"]),
        app,
        300,
      ),
    );
    await step("library: import, loadModel, generate on the native backend", () => {
      const code = [
        'import { generate, loadModel, nativeBackend } from "afterscale";',
        "if (!nativeBackend()) throw new Error('the native addon was not built on install');",
        'const { model, tokenizer } = loadModel("tiny");',
        'const r = generate(model, tokenizer, "The", { maxTokens: 12, temperature: 0 });',
        "console.log(JSON.stringify(r.text));",
      ].join("\n");
      writeFileSync(join(app, "use.mjs"), code);
      console.log(`     generated ${sh(process.execPath, ["use.mjs"], app).trim()}`);
    });
    await step("type declarations: tsc --strict on a file importing the library", () => {
      writeFileSync(
        join(app, "use.ts"),
        [
          'import { type GenerateResult, generate, loadModel } from "afterscale";',
          'const { model, tokenizer } = loadModel("tiny");',
          'const r: GenerateResult = generate(model, tokenizer, "The", { maxTokens: 4 });',
          "console.log(r.text.length);",
        ].join("\n"),
      );
      const tsc = join(repo, "node_modules", "typescript", "bin", "tsc");
      const types = join(repo, "node_modules", "@types");
      sh(
        process.execPath,
        [tsc, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext"].concat([
          "--target",
          "es2022",
          "--typeRoots",
          types,
          "--types",
          "node",
          "use.ts",
        ]),
        app,
      );
    });
    await step("afterscale fit --dataset chinchilla (the shipped data file)", () => {
      const fit = JSON.parse(
        sh(bin, ["fit", "--dataset", "chinchilla", "--bootstrap", "0", "--json"], app, 300),
      );
      if (!fit || typeof fit !== "object") throw new Error("fit --json printed no object");
    });
    await step("afterscale report chinchilla (vega from the installed dependencies)", () =>
      sh(bin, ["report", "chinchilla", "--bootstrap", "10", "-o", "report.html"], app, 300),
    );
    const url = await step("afterscale serve: the chat page and its script", () => servePage(app));
    console.log(`     served at ${url}`);
    console.log(`the installed package works (${((performance.now() - t0) / 1000).toFixed(0)} s in all)`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  console.log(`FAIL ${(e as Error).message}`);
  process.exit(1);
}
