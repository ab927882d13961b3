import type { Interface } from "node:readline";
import { EntraToolError } from "../core/errors.ts";
import { rowsCompleted } from "../core/output.ts";
import type { CliIO, Output } from "./context.ts";

/**
 * The writes of the process's outputs, one after another in the order they were asked for, also
 * across outputs (an error on stderr stays after the lines before it on stdout). Bun.write is
 * asynchronous: a write returns at once, and `flush` waits until everything has left the process.
 *
 * The reader going away (`entratool … | head -1`: EPIPE, or EIO from a terminal that was hung up)
 * ends that output quietly, as nobody is left to read it. Any other failure (ENOSPC with stdout
 * redirected to a full disk) is kept and thrown by the next `flush`, so that the command fails as
 * when the write itself threw.
 */
class WriteQueue {
  #tail: Promise<void> = Promise.resolve();
  #failure: { readonly error: unknown } | undefined;

  add(write: () => Promise<unknown>, onGone: () => void): void {
    this.#tail = this.#tail.then(write).then(
      () => undefined,
      (error: unknown) => {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "EPIPE" || code === "EIO") onGone();
        else this.#failure ??= { error };
      },
    );
  }

  async flush(): Promise<void> {
    await this.#tail;
    const failure = this.#failure;
    this.#failure = undefined;
    if (failure) throw failure.error;
  }
}

/**
 * One of the process's outputs, written with Bun.write (see WriteQueue): stdout, stderr, or the
 * controlling terminal.
 *
 * Not node:fs's writeSync, nor Node's `process.stdout`/`process.stderr`: loading node:fs's
 * JavaScript layer costs a compiled binary a few ms at every start, and Bun builds the
 * `process.std*` streams on first touch at a cost of more than all of a cached `get-token`
 * (README "Benchmark"). The streams are touched only for the terminal's size, and for questions.
 */
export class FdOutput implements Output {
  readonly #fd: number;
  readonly #sink: Bun.BunFile;
  readonly #queue: WriteQueue;
  readonly #stream: (() => NodeJS.WriteStream) | undefined;
  #tty: boolean | undefined;
  #gone = false;
  #rowsWritten = 0;

  /**
   * `sink`: Bun.stdout, Bun.stderr, or Bun.file(fd). `stream`: Node's stream for this fd, for the
   * terminal's size; none for /dev/tty.
   */
  constructor(
    fd: number,
    sink: Bun.BunFile,
    queue: WriteQueue,
    stream?: () => NodeJS.WriteStream,
    isTTY?: boolean,
  ) {
    this.#fd = fd;
    this.#sink = sink;
    this.#queue = queue;
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

  /** Counted only once this output is known to be a terminal (nothing else asks). */
  get rowsWritten(): number | undefined {
    return this.#tty === true ? this.#rowsWritten : undefined;
  }

  write(text: string): void {
    if (this.#gone || text === "") return;
    if (this.#tty === true && text.includes("\n"))
      this.#rowsWritten += rowsCompleted(text, this.columns || 80);
    this.#queue.add(
      () => Bun.write(this.#sink, text),
      () => {
        this.#gone = true;
      },
    );
  }

  /** Closes the descriptor: only for one this process opened (/dev/tty), after a flush. */
  close(): void {
    // node:fs only here: it opened the descriptor (see Terminal.promptMirror).
    (require("node:fs") as typeof import("node:fs")).closeSync(this.#fd);
  }
}

/**
 * stdin, stdout and stderr of the process, with one line reader for the whole process: answers
 * typed (or pasted) ahead of their question stay queued for it (a reader per question would take
 * the following lines with it when closed, and the next question would see the end of input).
 * A question ends with E_CANCELLED on Ctrl+C at it, or when `signal` aborts (SIGTERM).
 */
export class Terminal implements CliIO {
  readonly #queue = new WriteQueue();
  readonly stdout = new FdOutput(1, Bun.stdout, this.#queue, () => process.stdout);
  readonly stderr = new FdOutput(2, Bun.stderr, this.#queue, () => process.stderr);
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
          // node:fs only on the way to a device code, which has loaded it for the lock already.
          const fd = (require("node:fs") as typeof import("node:fs")).openSync("/dev/tty", "w");
          this.#tty = new FdOutput(fd, Bun.file(fd), this.#queue, undefined, true);
        } catch {
          // ENXIO: no controlling terminal. Nobody to show the code to but stderr.
        }
      }
    }
    return this.#tty ?? undefined;
  }

  async ask(question: string): Promise<string | undefined> {
    // What was written before goes out before readline writes the question.
    await this.flush();
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

  /**
   * Resolves once everything written so far has left the process; rejects with the first failed
   * write since the last flush (other than to a reader that went away, see WriteQueue).
   */
  flush(): Promise<void> {
    return this.#queue.flush();
  }

  /**
   * Closes the line reader and the controlling terminal once all output is out. A failed write is
   * not thrown here: `flush` reported it to the command, or it came after the command ended.
   */
  async close(): Promise<void> {
    this.#reader?.close();
    await this.#queue.flush().catch(() => undefined);
    this.#tty?.close();
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
