// Training progress on stderr: a live bar (step, loss, tokens/s, ETA) when stderr is a terminal, plain
// periodic lines otherwise (logs, CI), nothing when quiet.
import cliProgress from "cli-progress";

export interface ProgressFields {
  step: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  valLoss: number | null;
  /** valLoss is the periodic estimate (shown as ≈), not the whole validation split. */
  valEstimate: boolean;
}

export interface ProgressOptions {
  quiet: boolean;
  /** Plain mode prints a line every this many steps. */
  logInterval: number;
  /** Where plain lines and messages go (default stderr). */
  log?: (message: string) => void;
  /** Force the live bar on or off (default: on when stderr is a TTY). */
  bar?: boolean;
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class Progress {
  private readonly opts: ProgressOptions;
  private readonly emit: (message: string) => void;
  private multi: cliProgress.MultiBar | null = null;
  private bar: cliProgress.SingleBar | null = null;
  private total = 0;
  private startStep = 0;
  private startTime = 0;

  constructor(opts: ProgressOptions) {
    this.opts = opts;
    this.emit = opts.log ?? ((m) => process.stderr.write(`${m}\n`));
  }

  start(total: number, startStep: number): void {
    this.total = total;
    this.startStep = startStep;
    this.startTime = performance.now();
    if (this.opts.quiet) return;
    if (this.opts.bar ?? (process.stderr.isTTY === true && this.opts.log === undefined)) {
      this.multi = new cliProgress.MultiBar(
        {
          format:
            "{bar} {value}/{total} | loss {loss} | val {val} | lr {lr} | {tps} tok/s | ETA {eta_formatted}",
          barsize: 24,
          hideCursor: true,
          stream: process.stderr,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar = this.multi.create(total, startStep, { loss: "-", val: "-", lr: "-", tps: "-" });
    }
  }

  /** A message that must not be lost in the bar (evaluations, checkpoints, warnings). */
  message(text: string): void {
    if (this.opts.quiet) return;
    if (this.multi) this.multi.log(`${text}\n`);
    else this.emit(text);
  }

  update(f: ProgressFields): void {
    if (this.opts.quiet) return;
    if (this.bar) {
      this.bar.update(f.step, {
        loss: f.loss.toFixed(4),
        val: f.valLoss === null ? "-" : `${f.valEstimate ? "≈" : ""}${f.valLoss.toFixed(4)}`,
        lr: f.lr.toExponential(2),
        tps: Math.round(f.tokensPerSecond),
      });
      return;
    }
    if (f.step % this.opts.logInterval !== 0 && f.step !== this.total) return;
    const done = f.step - this.startStep;
    const spent = (performance.now() - this.startTime) / 1000;
    const eta = done > 0 ? (spent / done) * (this.total - f.step) : Number.NaN;
    this.emit(
      `step ${f.step}/${this.total} | loss ${f.loss.toFixed(4)} | lr ${f.lr.toExponential(2)} | ` +
        `${Math.round(f.tokensPerSecond)} tok/s | ETA ${formatSeconds(eta)}`,
    );
  }

  stop(): void {
    this.multi?.stop();
    this.multi = null;
    this.bar = null;
  }
}
