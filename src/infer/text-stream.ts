// Turns generated token bytes into text deltas that are safe to show as they arrive:
//
// - UTF-8 is decoded incrementally, so a character whose bytes arrive over several tokens is emitted
//   only once complete (TextDecoder in stream mode); invalid bytes become U+FFFD, as in Tokenizer.decode.
// - Stop strings are found in the decoded text. Text that could still be the start of a stop string is
//   held back until the next bytes settle it, so neither the stop string nor anything after it is ever
//   emitted. The concatenation of all deltas always equals `text`.

export interface TextPush {
  /** Newly safe text (may be ""). */
  delta: string;
  /** A stop string was found: `text` ends just before it, and nothing more will be accepted. */
  stopped: boolean;
}

export class StopTextStream {
  /** Everything decoded so far, cut before the stop string once one is found. */
  private decoded = "";
  /** Characters of `decoded` already handed out as deltas. */
  private emitted = 0;
  private done = false;
  private hit = false;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  private readonly stops: string[];
  private readonly longestStop: number;

  constructor(stop: readonly string[] = []) {
    for (const s of stop) {
      if (typeof s !== "string" || s.length === 0)
        throw new Error(`stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
    }
    this.stops = [...new Set(stop)];
    this.longestStop = Math.max(0, ...this.stops.map((s) => s.length));
  }

  /** The text so far that is final: emitted text plus nothing held back. */
  get text(): string {
    return this.decoded.slice(0, this.emitted);
  }

  /** A stop string was found. */
  get stopped(): boolean {
    return this.hit;
  }

  /** No more text will be accepted (a stop string was found, or finish() was called). */
  get ended(): boolean {
    return this.done;
  }

  /** Adds the bytes of one token. */
  pushBytes(bytes: Uint8Array): TextPush {
    return this.add(this.decoder.decode(bytes, { stream: true }), false);
  }

  /** Adds already-decoded text (e.g. a special token's content); pending partial bytes are flushed first. */
  pushText(text: string): TextPush {
    const flushed = this.decoder.decode();
    return this.add(flushed + text, false);
  }

  /**
   * Ends the stream: flushes an incomplete UTF-8 tail (as U+FFFD) and releases the held-back text,
   * which can no longer become a stop string.
   */
  finish(): TextPush {
    if (this.done) return { delta: "", stopped: this.hit };
    return this.add(this.decoder.decode(), true);
  }

  private add(chunk: string, final: boolean): TextPush {
    if (this.done) throw new Error("StopTextStream: text pushed after the stream ended");
    const before = this.decoded.length;
    this.decoded += chunk;
    // A stop string not found before can only end inside the new chunk.
    const from = Math.max(0, before - this.longestStop + 1);
    let cut = -1;
    for (const s of this.stops) {
      const at = this.decoded.indexOf(s, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.decoded = this.decoded.slice(0, cut);
      this.done = true;
      this.hit = true;
      return { delta: this.release(cut), stopped: true };
    }
    if (final) {
      this.done = true;
      return { delta: this.release(this.decoded.length), stopped: false };
    }
    return { delta: this.release(this.decoded.length - this.heldBack()), stopped: false };
  }

  /** Length of the longest suffix of the text that is a proper prefix of some stop string. */
  private heldBack(): number {
    const text = this.decoded;
    let held = 0;
    for (const s of this.stops) {
      for (let len = Math.min(s.length - 1, text.length); len > held; len--) {
        if (text.endsWith(s.slice(0, len))) {
          held = len;
          break;
        }
      }
    }
    return held;
  }

  private release(upTo: number): string {
    if (upTo <= this.emitted) return "";
    const delta = this.decoded.slice(this.emitted, upTo);
    this.emitted = upTo;
    return delta;
  }
}
