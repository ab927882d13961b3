/**
 * Resolves once `condition` holds, looking every `everyMs`, or rejects after `ms` naming `what`:
 * for the demo and the benchmarks, which wait on real processes and receivers.
 */
export async function until(condition: () => boolean, what: string, ms: number, everyMs = 5): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`waited ${ms / 1000} s for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
