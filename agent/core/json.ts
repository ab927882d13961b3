/** A parsed JSON object: not null, not an array (`typeof [] === "object"`). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
