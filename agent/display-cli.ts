/**
 * The display module as the CLI loads it: `entratool display …`, and the displays of a sign-in
 * (get-token: the terminal prompt, and those of `--config`). An entrypoint of its own in the
 * compiled binary (scripts/build.ts), loaded only when a code is to be shown or a `display`
 * command runs: drivers, fonts, the QR encoder and the configuration schema would otherwise be
 * part of every start. It lives in agent/ because every lazily loaded entrypoint must share one
 * directory with main.ts for the relative specifiers to resolve there.
 */
export { DISPLAY_HELP, displayCommand, openSignInDisplays } from "./cli/display.ts";
