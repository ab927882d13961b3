import { closeSync, openSync, writeSync } from "node:fs";
import type { Interface } from "node:readline";
import { EntraToolError } from "../core/errors.ts";
import type { CliIO, Output } from "./context.ts";

/**
 * The process's terminal for the CLI: stdout and stderr written with write(2), questions on stdin,
 * and the controlling terminal for the device code prompt when stderr is captured.
 *
 * Bun builds Node's `process.stdout`/`process.stderr`/`process.stdin` objects on first touch, which
 * costs a compiled binary more than all of a cached `get-token` (10+ ms; README "Benchmark"), so
 * they are touched only when really needed: the terminal width, a question, or a pipe that is full
 * (EAGAIN), after which every later write goes through the stream so that the order is kept.
 */
export class FdOutput implements Output {
  readonly #fd: number;
  readonly #stream: (() => NodeJS.WriteStream) | undefined;
  #viaStream = false;
  #tty: boolean | undefined;

  /** `stream`: Node's stream for this fd, for the cases above; none for /dev/tty. */
  constructor(fd: number, stream?: () => NodeJS.WriteStream, isTTY?: boolean) {
    this.#fd = fd;
    this.#stream = stream;
    this.#tty = isTTY;
  }

  get isTTY(): boolean {
    this.#tty ??= (require("node:tty") as typeof import("node:tty")).isatty(this.#fd);
    return this.#tty;
  }

  get columns(): number | undefined {
    return this.isTTY ? this.#stream?.().columns : undefined;
  }

  get rows(): number | undefined {
    return this.isTTY ? this.#stream?.().rows : undefined;
  }

  write(text: string): void {
    if (this.#viaStream && this.#stream) {
      this.#stream().write(text);
      return;
    }
    const data = Buffer.from(text, "utf8");
    let offset = 0;
    try {
      while (offset < data.length) offset += writeSync(this.#fd, data, offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // The reader went away (`entratool … | head -1`): nothing more to say to it.
      if (code === "EPIPE" || code === "EIO") return;
      if (code !== "EAGAIN" || !this.#stream) throw error;
      this.#viaStream = true;
      this.#stream().write(data.subarray(offset));
    }
  }

  /** Resolves once everything written has left the process. */
  flush(): Promise<void> {
    const stream = this.#stream;
    if (!this.#viaStream || !stream) return Promise.resolve();
    return new Promise((resolve) => stream().write("", () => resolve()));
  }

  close(): void {
    if (this.#stream === undefined) closeSync(this.#fd);
  }
}

/**
 * stdin, stdout and stderr of the process, with one line reader for the whole process: answers
 * typed (or pasted) ahead of their question stay queued for it (a reader per question would take
 * the following lines with it when closed, and the next question would see the end of input).
 * A question ends with E_CANCELLED on Ctrl+C at it, or when `signal` aborts (SIGTERM).
 */
export class Terminal implements CliIO {
  readonly stdout = new FdOutput(1, () => process.stdout);
  readonly stderr = new FdOutput(2, () => process.stderr);
  readonly #signal: AbortSignal;
  #reader: Interface | undefined;
  readonly #lines: string[] = [];
  #waiter: ((line: string | undefined) => void) | undefined;
  #ended = false;
  #interrupted = false;
  #tty: FdOutput | null | undefined;

  constructor(signal: AbortSignal) {
    this.#signal = signal;
    signal.addEventListener("abort", () => this.#interrupt(), { once: true });
  }

  get interactive(): boolean {
    return this.stderr.isTTY && (require("node:tty") as typeof import("node:tty")).isatty(0);
  }

  /**
   * The controlling terminal, when stderr is not one but a person may still be watching: a script
   * that captures entratool's output (the original tool's Python example, `subprocess.run(..., capture_output=True)`)
   * would otherwise hide the code. undefined when stderr is the terminal already, or there is none
   * (a service, a detached process).
   */
  get promptMirror(): Output | undefined {
    if (this.#tty === undefined) {
      this.#tty = null;
      if (!this.stderr.isTTY) {
        try {
          this.#tty = new FdOutput(openSync("/dev/tty", "w"), undefined, true);
        } catch {
          // ENXIO: no controlling terminal. Nobody to show the code to but stderr.
        }
      }
    }
    return this.#tty ?? undefined;
  }

  async ask(question: string): Promise<string | undefined> {
    const rl = await this.#open();
    if (!this.#ended) {
      rl.setPrompt(question);
      rl.prompt();
    }
    const typedAhead = this.#lines.shift();
    // Echoed when it was typed; shown again after its question so that the transcript reads right.
    if (typedAhead !== undefined) this.stderr.write(`${typedAhead}\n`);
    const line =
      typedAhead ??
      (this.#ended
        ? undefined
        : await new Promise<string | undefined>((resolve) => {
            this.#waiter = resolve;
          }));
    if (this.#interrupted) {
      this.stderr.write("\n");
      throw new EntraToolError("E_CANCELLED", { message: "Cancelled by user." });
    }
    return line;
  }

  /** Closes the line reader and the controlling terminal, and waits until all output is out. */
  async close(): Promise<void> {
    this.#reader?.close();
    this.#tty?.close();
    await Promise.all([this.stdout.flush(), this.stderr.flush()]);
  }

  // node:readline is loaded only when a question is asked: it would add to every start.
  async #open(): Promise<Interface> {
    if (this.#reader) return this.#reader;
    const { createInterface } = await import("node:readline");
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    rl.on("line", (line) => {
      if (this.#waiter) this.#settle(line);
      else this.#lines.push(line);
    });
    // Ctrl+C at a question: in raw mode it arrives as input, not as a signal.
    rl.on("SIGINT", () => this.#interrupt());
    rl.on("close", () => {
      this.#ended = true;
      this.#settle(undefined);
    });
    this.#reader = rl;
    if (this.#signal.aborted) this.#interrupt();
    return rl;
  }

  #interrupt(): void {
    this.#interrupted = true;
    this.#reader?.close();
  }

  #settle(line: string | undefined): void {
    const resolve = this.#waiter;
    this.#waiter = undefined;
    resolve?.(line);
  }
}
