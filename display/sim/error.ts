/**
 * What a simulated chip (or line, or terminal) does when it is driven wrong: the real one would
 * ignore the command, show garbage or hang; the simulator throws, with a stable code for the tests
 * to check and a sentence that says which rule of the datasheet was broken. Not a user-facing
 * error (those are in agent/core/errors.ts): a driver that trips one has a bug.
 */
export class SimulatorError<C extends string> extends Error {
  readonly code: C;

  constructor(code: C, message: string) {
    super(message);
    this.code = code;
  }
}
