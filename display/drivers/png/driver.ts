import { writeFileAtomic } from "../../../agent/core/atomic.ts";
import { type Screen, screenFamily } from "../../screens.ts";

/**
 * The `png` display: on every screen, the picture that the display `as` would show, rendered
 * through its real driver and simulator (the preview path, `display preview`, handed in as
 * `render`: the preview builds displays, this among them, so it cannot be imported here),
 * written to `file` atomically (readers never see half a PNG) and only when the picture changed,
 * so a countdown that changes nothing visible does not rewrite the file every second.
 *
 * The file is written 0600 (owner only), although the code on it is meant to be seen: the screen
 * in front of the device is seen by whoever stands there, but a world-readable file would hand the
 * live user code to every local account, and whoever enters a device code first decides which
 * account the device signs in as. Whatever serves the file (a support tool, a web page) runs as the
 * same user. Every write replaces the inode, so a chmod made later by hand does not survive.
 */

/** Draws `screen` at `now`, up since `since` (a paged display turns its pages from then). */
export type PngRenderer = (screen: Screen, now: number, since: number) => Promise<Uint8Array>;
export type PngWriter = (file: string, png: Uint8Array) => Promise<void>;

export interface PngSinkOptions {
  readonly file: string;
  /** What draws the screen: the preview of the display the file pictures. */
  readonly render: PngRenderer;
  /** Tests: what writes the file; default writeFileAtomic with mode 0600. */
  readonly write?: PngWriter;
  /** For `clear()`, which is not handed a time; default Date.now. */
  readonly now?: () => number;
}

/** What `clear()` pictures: a screen without the code (the sink has no blank glass of its own). */
export const CLEARED_SCREEN: Screen = { kind: "cancelled" };

export class PngSink {
  readonly #file: string;
  readonly #render: PngRenderer;
  readonly #write: PngWriter;
  readonly #now: () => number;
  /** Since when the current picture family has been up (see screenFamily). */
  #since: { readonly family: string; readonly at: number } | undefined;
  /** The bytes last written; PNG encoding is deterministic within a process, so equal bytes mean an equal picture. */
  #last: Uint8Array | undefined;

  constructor(options: PngSinkOptions) {
    this.#file = options.file;
    this.#render = options.render;
    this.#write = options.write ?? ((path, png) => writeFileAtomic(path, png, 0o600));
    this.#now = options.now ?? Date.now;
  }

  async show(screen: Screen, now: number): Promise<void> {
    const family = screenFamily(screen);
    if (this.#since?.family !== family) this.#since = { family, at: now };
    const png = await this.#render(screen, now, this.#since.at);
    if (this.#last !== undefined && Buffer.from(png).equals(this.#last)) return;
    try {
      await this.#write(this.#file, png);
    } catch (error) {
      // The picture may not be on disk: write it again next time even if it is the same.
      this.#last = undefined;
      const code = (error as NodeJS.ErrnoException).code;
      const fix =
        code === "ENOENT"
          ? "its directory does not exist; create it"
          : code === "EACCES" || code === "EPERM"
            ? "permission denied; let this user write to its directory"
            : (error as Error).message;
      throw new Error(`Cannot write ${this.#file}: ${fix}.`, { cause: error });
    }
    this.#last = png;
  }

  async clear(): Promise<void> {
    await this.show(CLEARED_SCREEN, this.#now());
  }
}
