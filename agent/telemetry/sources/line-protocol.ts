/**
 * A parser for InfluxDB line protocol, the text format many monitoring scripts already print
 * (Telegraf's exec input takes the same):
 *
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 *
 * One point per line; blank lines and lines starting with `#` (after leading spaces) are skipped;
 * a line may end in CRLF. The rules, as InfluxDB's own grammar has them:
 *
 * - Measurement: `\,` and `\ ` are a comma and a space; may not start with `#`.
 * - Tag keys, tag values, field keys: `\,`, `\=` and `\ ` are a comma, an equals sign and a space;
 *   none may be empty.
 * - Elsewhere a backslash is literal (`a\b` is `a\b`); in a run of backslashes before an escapable
 *   character only the last one escapes it (`\\,` in a tag is the text `\,` and does not end the
 *   tag), so a value cannot end in a backslash.
 * - Field values: `"text"` (inside it `\"` is a quote and `\\` a backslash; any other backslash is
 *   literal), `12i` (signed 64-bit integer), `12u` (unsigned 64-bit), `t`/`T`/`true`/`True`/`TRUE`
 *   and `f`/`F`/`false`/`False`/`FALSE`, or a float (`1`, `-1.5`, `.5`, `1e-3`; no NaN, no Inf).
 * - Timestamp: optional, signed 64-bit nanoseconds since the Unix epoch.
 * - Sections are separated by one or more spaces; control characters are not allowed outside
 *   string values; a newline always ends the point (line protocol has no newlines in values).
 *
 * What JSON cannot hold exactly is kept exactly: an integer beyond ±2^53 is given as its decimal
 * string, and the timestamp both as written (nanoseconds, a string) and in milliseconds.
 */

/** A field's value: a float or an integer as a number (a string past ±2^53), a string, a boolean. */
export type FieldValue = number | string | boolean;

export interface LinePoint {
  readonly measurement: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly fields: Readonly<Record<string, FieldValue>>;
  /** Nanoseconds since the Unix epoch, as written (a JSON number would lose the last digits). */
  readonly timestamp?: string;
  /** The timestamp in epoch milliseconds (rounded down). */
  readonly timestampMs?: number;
  /** 1-based line number in the input. */
  readonly line: number;
}

export interface LineError {
  /** 1-based line number in the input. */
  readonly line: number;
  /** What is wrong, with the 1-based column: "column 12: missing field value". */
  readonly message: string;
}

export interface ParsedLines {
  readonly points: LinePoint[];
  readonly errors: LineError[];
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const FLOAT = /^-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)$/;
const TRUE = new Set(["t", "T", "true", "True", "TRUE"]);
const FALSE = new Set(["f", "F", "false", "False", "FALSE"]);

/** Parses every line of `text`: the points of the good lines, and one error per bad line. */
export function parseLineProtocol(text: string): ParsedLines {
  const points: LinePoint[] = [];
  const errors: LineError[] = [];
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index] as string;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const start = skipSpaces(line, 0);
    if (start === line.length || line[start] === "#") continue;
    try {
      points.push({ ...parsePoint(line, start), line: index + 1 });
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      errors.push({ line: index + 1, message: error.message });
    }
  }
  return { points, errors };
}

/** Parses one point (no newline in `line`); throws SyntaxError with the column. */
export function parseLinePoint(line: string): Omit<LinePoint, "line"> {
  const start = skipSpaces(line, 0);
  if (start === line.length || line[start] === "#") throw fail(start, "no point on this line");
  return parsePoint(line, start);
}

function fail(at: number, message: string): SyntaxError {
  return new SyntaxError(`column ${at + 1}: ${message}`);
}

function skipSpaces(line: string, at: number): number {
  let position = at;
  while (line[position] === " ") position++;
  return position;
}

function isControl(char: string): boolean {
  const code = char.charCodeAt(0);
  return code < 0x20 || code === 0x7f;
}

/**
 * Reads an element (measurement, key or tag value) from `at` up to the first unescaped character
 * of `stops`, unescaping `escapes`. Returns the text and where it stopped.
 */
function readElement(
  line: string,
  at: number,
  stops: string,
  escapes: string,
  what: string,
): { readonly text: string; readonly end: number } {
  let text = "";
  let position = at;
  while (position < line.length) {
    const char = line[position] as string;
    if (stops.includes(char)) break;
    if (isControl(char)) throw fail(position, `control character in ${what}`);
    if (char === "\\" && escapes.includes(line[position + 1] ?? "")) {
      text += line[position + 1];
      position += 2;
      continue;
    }
    text += char;
    position++;
  }
  return { text, end: position };
}

function parsePoint(line: string, start: number): Omit<LinePoint, "line"> {
  if (line[start] === "#") throw fail(start, "a measurement may not start with #");
  const measurement = readElement(line, start, ", ", ", ", "the measurement");
  if (measurement.text === "") throw fail(start, "missing measurement");
  let position = measurement.end;

  const tags = new Map<string, string>();
  while (line[position] === ",") {
    const key = readElement(line, position + 1, ",= ", ",= ", "a tag key");
    if (key.text === "") throw fail(position + 1, "missing tag key");
    if (line[key.end] !== "=") throw fail(key.end, `missing "=" after tag key ${JSON.stringify(key.text)}`);
    const value = readElement(line, key.end + 1, ",= ", ",= ", "a tag value");
    if (value.text === "") throw fail(key.end + 1, `missing value of tag ${JSON.stringify(key.text)}`);
    if (line[value.end] === "=") throw fail(value.end, `unescaped "=" in tag ${JSON.stringify(key.text)}`);
    tags.set(key.text, value.text);
    position = value.end;
  }

  if (line[position] !== " ") throw fail(position, "missing fields");
  position = skipSpaces(line, position);
  if (position === line.length) throw fail(position, "missing fields");

  const fields = new Map<string, FieldValue>();
  for (;;) {
    const key = readElement(line, position, ",= ", ",= ", "a field key");
    if (key.text === "") throw fail(position, "missing field key");
    if (line[key.end] !== "=") throw fail(key.end, `missing "=" after field key ${JSON.stringify(key.text)}`);
    const value = readFieldValue(line, key.end + 1, key.text);
    fields.set(key.text, value.value);
    position = value.end;
    if (position < line.length && line[position] !== "," && line[position] !== " ") {
      throw fail(position, `unexpected text after field ${JSON.stringify(key.text)}`);
    }
    if (line[position] !== ",") break;
    position++;
  }

  let timestamp: string | undefined;
  if (position < line.length) {
    // Only a space can end a field value here (readFieldValue stops at "," or " ").
    position = skipSpaces(line, position);
    const end = line.indexOf(" ", position);
    const written = line.slice(position, end === -1 ? line.length : end);
    if (written !== "") {
      if (!/^-?[0-9]+$/.test(written)) throw fail(position, `invalid timestamp ${JSON.stringify(written)}`);
      const ns = BigInt(written);
      if (ns < INT64_MIN || ns > INT64_MAX) throw fail(position, "timestamp out of range");
      timestamp = ns.toString();
      position += written.length;
    }
    position = skipSpaces(line, position);
    if (position < line.length) throw fail(position, "unexpected text after the timestamp");
  }

  const point = {
    measurement: measurement.text,
    // fromEntries makes own properties, so a key like "__proto__" stays a key.
    tags: Object.fromEntries(tags) as Record<string, string>,
    fields: Object.fromEntries(fields) as Record<string, FieldValue>,
  };
  if (timestamp === undefined) return point;
  return { ...point, timestamp, timestampMs: Number(floorDiv(BigInt(timestamp), 1_000_000n)) };
}

function floorDiv(a: bigint, b: bigint): bigint {
  const quotient = a / b;
  return a % b !== 0n && a < 0n ? quotient - 1n : quotient;
}

function readFieldValue(
  line: string,
  at: number,
  key: string,
): { readonly value: FieldValue; readonly end: number } {
  const name = JSON.stringify(key);
  if (line[at] === '"') {
    let text = "";
    let position = at + 1;
    while (position < line.length) {
      const char = line[position] as string;
      if (char === '"') return { value: text, end: position + 1 };
      if (char === "\\" && position + 1 < line.length) {
        const next = line[position + 1] as string;
        text += next === '"' || next === "\\" ? next : `\\${next}`;
        position += 2;
        continue;
      }
      text += char;
      position++;
    }
    throw fail(at, `unterminated string in field ${name}`);
  }
  let end = at;
  while (end < line.length && line[end] !== "," && line[end] !== " ") end++;
  const written = line.slice(at, end);
  if (written === "") throw fail(at, `missing value of field ${name}`);
  return { value: fieldValue(written, at, name), end };
}

function fieldValue(written: string, at: number, name: string): FieldValue {
  if (TRUE.has(written)) return true;
  if (FALSE.has(written)) return false;
  const last = written[written.length - 1];
  if (last === "i" || last === "u") {
    const digits = written.slice(0, -1);
    const pattern = last === "i" ? /^-?[0-9]+$/ : /^[0-9]+$/;
    if (!pattern.test(digits)) throw fail(at, `invalid ${last === "i" ? "integer" : "unsigned"} ${name}`);
    const value = BigInt(digits);
    const inRange = last === "i" ? value >= INT64_MIN && value <= INT64_MAX : value <= UINT64_MAX;
    if (!inRange) throw fail(at, `${last === "i" ? "integer" : "unsigned"} ${name} out of range`);
    const number = Number(value);
    return Number.isSafeInteger(number) ? number : value.toString();
  }
  if (!FLOAT.test(written)) throw fail(at, `invalid value of field ${name}: ${JSON.stringify(written)}`);
  const number = Number(written);
  if (!Number.isFinite(number)) throw fail(at, `float ${name} out of range`);
  return number;
}
