// A training process for the resume and signal tests (test/train.resume.test.ts): argv[2] is JSON
// {config, resume?, slowMs?}. It reports each checkpoint and the result as JSON lines on stdout.
// Without an argument it does nothing (node --test also loads every file under test/).
import { train } from "../../src/train/index.js";

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Spin: keeps the step slow enough that a signal lands mid-run.
  }
}

const arg = process.argv[2];
if (arg !== undefined) {
  const { config, resume, slowMs } = JSON.parse(arg) as {
    config: unknown;
    resume?: boolean;
    slowMs?: number;
  };
  const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const result = await train(config as Record<string, unknown>, {
    resume: resume ?? false,
    quiet: true,
    log: (m) => process.stderr.write(`${m}\n`),
    onStep: (m) => {
      say({ step: m.step });
      if (slowMs) busyWait(slowMs);
    },
    onCheckpoint: (c) => say({ checkpoint: c.step }),
  });
  say({
    result: {
      step: result.step,
      interrupted: result.interrupted,
      resumedFrom: result.resumedFrom,
      checkpoint: result.checkpoint,
    },
  });
}
