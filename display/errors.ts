import { EntraToolError, type ErrorCode } from "../agent/core/errors.ts";

/**
 * A display driver's failure: a code from the catalogue (agent/core/errors.ts) and one sentence
 * that says what to check. The drivers' own classes (Hd44780Error, FramebufferError…) narrow the
 * code to their part of the catalogue, so a caller can tell them apart and still treat each as any
 * other EntraToolError (its exit code, its sentence). Simulator errors are not these: they are the
 * simulated chip's complaints about the wire, not a user's problem.
 */
export class DisplayError<C extends ErrorCode = ErrorCode> extends EntraToolError {
  override readonly name: string = "DisplayError";
  declare readonly code: C;

  constructor(code: C, message: string, cause?: unknown) {
    super(code, { message, ...(cause === undefined ? {} : { cause }) });
  }
}

/** A preview that cannot be drawn with the options given (a page the screen does not have…). */
export class PreviewError extends DisplayError<"E_PREVIEW"> {
  override readonly name = "PreviewError";

  constructor(message: string) {
    super("E_PREVIEW", message);
  }
}
