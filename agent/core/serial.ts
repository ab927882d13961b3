/**
 * Runs tasks one at a time, in the order they were handed in: a slow bus must not interleave two
 * frames, and two read-modify-writes of one file must not interleave. A task that fails does not
 * stop the ones after it; its caller gets the failure.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task, task);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every task handed in so far has settled. */
  async idle(): Promise<void> {
    await this.#tail;
  }
}
