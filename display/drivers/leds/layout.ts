import type { ScreenKind } from "../../screens.ts";

/**
 * What the LEDs and the buzzer show for each screen: a blink pattern per screen kind and the beeps,
 * as waveforms (level over time). Pure; the driver plays them on the clock.
 */

export type LedPatternName = "short-blink" | "slow-blink" | "solid" | "double-blink" | "fast-blink" | "off";

/** A line's level over time: `steps` of [level, ms] from the pattern's start, then `after` (or repeat). */
export interface Waveform {
  readonly steps: ReadonlyArray<readonly [0 | 1, number]>;
  readonly repeat: boolean;
  readonly after: 0 | 1;
}

export const OFF: Waveform = { steps: [], repeat: false, after: 0 };
const ON: Waveform = { steps: [], repeat: false, after: 1 };

/** The waveform of each named pattern, on the LED that pattern uses. */
export const PATTERNS: Readonly<Record<LedPatternName, Waveform>> = {
  "short-blink": {
    steps: [
      [1, 100],
      [0, 900],
    ],
    repeat: true,
    after: 0,
  },
  "slow-blink": {
    steps: [
      [1, 500],
      [0, 500],
    ],
    repeat: true,
    after: 0,
  },
  solid: ON,
  "double-blink": {
    steps: [
      [1, 150],
      [0, 150],
      [1, 150],
      [0, 1550],
    ],
    repeat: true,
    after: 0,
  },
  "fast-blink": {
    steps: [
      [1, 100],
      [0, 100],
    ],
    repeat: true,
    after: 0,
  },
  off: OFF,
};

const BEEP_MS = 100;
export const ONE_BEEP: Waveform = { steps: [[1, BEEP_MS]], repeat: false, after: 0 };
export const TWO_BEEPS: Waveform = {
  steps: [
    [1, BEEP_MS],
    [0, BEEP_MS],
    [1, BEEP_MS],
  ],
  repeat: false,
  after: 0,
};

/** The pattern for each screen kind (the table above). */
export const LED_PATTERNS: Readonly<Record<ScreenKind, LedPatternName>> = {
  starting: "short-blink",
  "waiting-for-time": "short-blink",
  "waiting-for-lock": "short-blink",
  code: "slow-blink",
  waiting: "slow-blink",
  "signed-in": "solid",
  "sign-in-needed": "double-blink",
  "wrong-account": "double-blink",
  blocked: "fast-blink",
  offline: "fast-blink",
  error: "fast-blink",
  expired: "off",
  cancelled: "off",
};

/** The level of `wave` at `elapsed` ms and the elapsed time of its next change (Infinity if none). */
export function sample(wave: Waveform, elapsed: number): { level: 0 | 1; until: number } {
  const period = wave.steps.reduce((sum, [, ms]) => sum + ms, 0);
  if (period === 0) return { level: wave.after, until: Number.POSITIVE_INFINITY };
  if (!wave.repeat && elapsed >= period) return { level: wave.after, until: Number.POSITIVE_INFINITY };
  const cycles = wave.repeat ? Math.floor(elapsed / period) : 0;
  let boundary = cycles * period;
  for (const [level, ms] of wave.steps) {
    boundary += ms;
    if (elapsed < boundary) return { level, until: boundary };
  }
  return { level: wave.after, until: Number.POSITIVE_INFINITY };
}
