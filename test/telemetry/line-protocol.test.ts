import { describe, expect, test } from "vitest";
import { parseLinePoint, parseLineProtocol } from "../../agent/telemetry/sources/line-protocol.ts";

function one(line: string) {
  return parseLinePoint(line);
}

function error(line: string): string {
  try {
    parseLinePoint(line);
  } catch (caught) {
    expect(caught).toBeInstanceOf(SyntaxError);
    return (caught as Error).message;
  }
  throw new Error(`parsed: ${line}`);
}

describe("line protocol: a point", () => {
  test("measurement, tags, fields of every type and a timestamp", () => {
    expect(
      one('weather,station=roof,kind=outdoor temp=18.5,hum=61i,n=7u,ok=t,note="fine" 1700000000123456789'),
    ).toEqual({
      measurement: "weather",
      tags: { station: "roof", kind: "outdoor" },
      fields: { temp: 18.5, hum: 61, n: 7, ok: true, note: "fine" },
      timestamp: "1700000000123456789",
      timestampMs: 1700000000123,
    });
  });

  test("no tags and no timestamp", () => {
    expect(one("cpu value=1")).toEqual({ measurement: "cpu", tags: {}, fields: { value: 1 } });
  });

  test("every boolean spelling", () => {
    const spellings = ["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"];
    const line = `m ${spellings.map((spelling, index) => `b${index}=${spelling}`).join(",")}`;
    expect(Object.values(one(line).fields)).toEqual([
      true,
      true,
      true,
      true,
      true,
      false,
      false,
      false,
      false,
      false,
    ]);
    for (const wrong of ["tRUE", "yes", "1b"])
      expect(error(`m b=${wrong}`)).toMatch(/invalid value of field "b"/);
  });

  test("floats in every form the grammar has, and none it lacks", () => {
    const forms: Record<string, number> = {
      "1": 1,
      "-1": -1,
      "1.": 1,
      "1.5": 1.5,
      ".5": 0.5,
      "-.5": -0.5,
      "1e3": 1000,
      "1E-3": 0.001,
      "2.5e+2": 250,
      "-0": -0,
    };
    for (const [written, value] of Object.entries(forms)) expect(one(`m f=${written}`).fields.f).toBe(value);
    for (const wrong of ["+1", "1.2.3", "NaN", "Inf", "1e", ".", "0x10", "1_000"]) {
      expect(error(`m f=${wrong}`), wrong).toMatch(/invalid value of field "f"/);
    }
    expect(error("m f=1e400")).toMatch(/out of range/);
  });

  test("integers and unsigned: 64-bit ranges; beyond 2^53 kept exactly as strings", () => {
    expect(one("m a=-12i,b=0u,c=9007199254740991i").fields).toEqual({ a: -12, b: 0, c: 9007199254740991 });
    expect(one("m a=9223372036854775807i,b=-9223372036854775808i,c=18446744073709551615u").fields).toEqual({
      a: "9223372036854775807",
      b: "-9223372036854775808",
      c: "18446744073709551615",
    });
    expect(error("m a=9223372036854775808i")).toMatch(/integer "a" out of range/);
    expect(error("m a=18446744073709551616u")).toMatch(/unsigned "a" out of range/);
    expect(error("m a=-1u")).toMatch(/invalid unsigned "a"/);
    expect(error("m a=1.5i")).toMatch(/invalid integer "a"/);
  });

  test('strings: \\" and \\\\ are escapes, any other backslash is literal; commas, spaces and = are text', () => {
    expect(one(String.raw`m s="say \"hi\", a=b c",p="C:\temp\\x",e=""`).fields).toEqual({
      s: 'say "hi", a=b c',
      p: String.raw`C:\temp\x`,
      e: "",
    });
    expect(error('m s="open')).toMatch(/unterminated string in field "s"/);
    expect(error('m s="a"b')).toMatch(/unexpected text after field "s"/);
  });

  test("escapes in the measurement: comma and space; = is plain text there", () => {
    expect(one(String.raw`my\ meas\,ure=x v=1`).measurement).toBe("my meas,ure=x");
    expect(one(String.raw`a\=b v=1`).measurement).toBe(String.raw`a\=b`);
  });

  test("escapes in tag keys, tag values and field keys: comma, equals and space", () => {
    const point = one(String.raw`m,tag\ key=v\,a\=l\ ue,x\=y=1 field\,k\=e\ y=1`);
    expect(point.tags).toEqual({ "tag key": "v,a=l ue", "x=y": "1" });
    expect(point.fields).toEqual({ "field,k=e y": 1 });
  });

  test("a backslash before another character is kept; in a run of them only the last escapes", () => {
    expect(one(String.raw`m,t=a\b v=1`).tags).toEqual({ t: String.raw`a\b` });
    expect(one(String.raw`m\\ x v=1`).measurement).toBe(String.raw`m\ x`);
    // So a tag value cannot end in a backslash: here it escapes the space, and "=" follows.
    expect(error(String.raw`m,t=end\ v=1`)).toMatch(/unescaped "=" in tag "t"/);
    // "\\,": the first backslash is literal, the second escapes the comma, which stays in the value.
    expect(one(String.raw`m,t=a\\,u v=1`).tags).toEqual({ t: String.raw`a\,u` });
  });

  test("keys that look like Object's own stay data", () => {
    const point = one("m,__proto__=x constructor=1,__proto__=2");
    expect(Object.keys(point.tags)).toEqual(["__proto__"]);
    expect(Object.keys(point.fields)).toEqual(["constructor", "__proto__"]);
    expect(JSON.stringify(point.fields)).toBe('{"constructor":1,"__proto__":2}');
  });

  test("the last of repeated keys wins", () => {
    expect(one("m,t=1,t=2 f=1,f=2").tags).toEqual({ t: "2" });
    expect(one("m,t=1,t=2 f=1,f=2").fields).toEqual({ f: 2 });
  });

  test("timestamps: negative, before 1970 rounded down to the millisecond, and 64-bit bounded", () => {
    expect(one("m v=1 -1500000").timestampMs).toBe(-2);
    expect(one("m v=1 0").timestampMs).toBe(0);
    expect(one("m v=1 1700000000999999999").timestampMs).toBe(1700000000999);
    expect(error("m v=1 9223372036854775808")).toMatch(/timestamp out of range/);
    expect(error("m v=1 12.5")).toMatch(/invalid timestamp/);
    expect(error("m v=1 17e9")).toMatch(/invalid timestamp/);
    expect(error("m v=1 1 2")).toMatch(/unexpected text after the timestamp/);
  });

  test("spaces: leading, several between sections and trailing are allowed", () => {
    expect(one("   m,t=a    v=1    123   ")).toEqual({
      measurement: "m",
      tags: { t: "a" },
      fields: { v: 1 },
      timestamp: "123",
      timestampMs: 0,
    });
  });

  test("what is missing or empty is named, with its column", () => {
    expect(error("m")).toBe("column 2: missing fields");
    expect(error("m ")).toBe("column 3: missing fields");
    expect(error(",t=a v=1")).toBe("column 1: missing measurement");
    expect(error("m,=a v=1")).toMatch(/^column 3: missing tag key/);
    expect(error("m,t= v=1")).toMatch(/missing value of tag "t"/);
    expect(error("m,t v=1")).toMatch(/missing "=" after tag key "t"/);
    expect(error("m,t=a=b v=1")).toMatch(/unescaped "=" in tag "t"/);
    expect(error("m =1")).toMatch(/missing field key/);
    expect(error("m v")).toMatch(/missing "=" after field key "v"/);
    expect(error("m v=")).toMatch(/missing value of field "v"/);
    expect(error("m v=1,")).toMatch(/missing field key/);
    expect(error("m,t=a\tb v=1")).toMatch(/control character in a tag value/);
  });
});

describe("line protocol: a text", () => {
  test("one point per line; blank lines, comments and CRLF endings; line numbers kept", () => {
    const text = "# a comment\r\ncpu v=1\r\n\r\n   # indented comment\nmem,host=a used=2i 1000000\n";
    const { points, errors } = parseLineProtocol(text);
    expect(errors).toEqual([]);
    expect(points).toEqual([
      { measurement: "cpu", tags: {}, fields: { v: 1 }, line: 2 },
      {
        measurement: "mem",
        tags: { host: "a" },
        fields: { used: 2 },
        timestamp: "1000000",
        timestampMs: 1,
        line: 5,
      },
    ]);
  });

  test("a bad line is reported with its number and does not stop the others", () => {
    const { points, errors } = parseLineProtocol("a v=1\nb v=\nc v=3\nd\n");
    expect(points.map((point) => point.measurement)).toEqual(["a", "c"]);
    expect(errors).toEqual([
      { line: 2, message: 'column 5: missing value of field "v"' },
      { line: 4, message: "column 2: missing fields" },
    ]);
  });

  test("JSON is not line protocol", () => {
    expect(parseLineProtocol('{"a": 1}').errors).toHaveLength(1);
    expect(parseLineProtocol("").points).toEqual([]);
  });
});
