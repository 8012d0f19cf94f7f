// Headless Chromium for the browser tests: Debian's chromium driven by playwright-core, with a fresh
// profile and the flags that keep it off the (closed) network.
import { existsSync, mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** A reason to skip when there is no browser, else false. */
export const noBrowser: string | false = !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}`;

/** The profile folder is removed when the context closes. */
export async function launchBrowser(
  options: { viewport?: { width: number; height: number } } = {},
): Promise<BrowserContext> {
  // A persistent context is how playwright takes a fresh --user-data-dir of our choosing.
  const profile = mkdtempSync(join(tmpdir(), "afterscale-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    ...(options.viewport ? { viewport: options.viewport } : {}),
  });
  // Chromium may still be flushing the profile as the context closes: retry, and never fail a test over it.
  context.on("close", () => {
    rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }).catch(() => {});
  });
  return context;
}
