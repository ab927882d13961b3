/**
 * The agent module as the CLI loads it: `entratool agent` and `entratool check-config`. An
 * entrypoint of its own in the compiled binary (scripts/build.ts), loaded only by those commands:
 * the outbox (bun:sqlite), mqtt.js, the sinks and the sources would otherwise be part of every
 * start. It lives in agent/ because every lazily loaded entrypoint must share one directory with
 * main.ts for the relative specifiers to resolve there.
 */
export { agentCommand } from "./cli/agent.ts";
export { checkConfigCommand } from "./cli/check-config.ts";
export { doctorCommand } from "./cli/doctor.ts";
export { provisionCommand } from "./cli/provision.ts";
