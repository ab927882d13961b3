/**
 * JSON with comments: `//` to the end of the line and `/* … *\/` are replaced by spaces (line
 * breaks kept), outside strings, and the rest is parsed by JSON.parse, so an error still names
 * the right line and column and nothing but comments is forgiven (no trailing commas, no text
 * after the value). The packaged default configuration explains itself in comments.
 */
export function parseJsonWithComments(text: string): unknown {
  return JSON.parse(stripComments(text));
}

export function stripComments(text: string): string {
  let out = "";
  let i = 0;
  const blank = (part: string): string => part.replace(/[^\n]/g, " ");
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      // A string, with its escapes, copied as it is.
      let j = i + 1;
      while (j < text.length && text[j] !== '"' && text[j] !== "\n") j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === "/" && text[i + 1] === "/") {
      const end = text.indexOf("\n", i);
      const stop = end === -1 ? text.length : end;
      out += blank(text.slice(i, stop));
      i = stop;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      // An unclosed comment is left to JSON.parse, which reports where it starts.
      if (end === -1) {
        out += text.slice(i);
        break;
      }
      out += blank(text.slice(i, end + 2));
      i = end + 2;
    } else {
      out += c;
      i += 1;
    }
  }
  return out;
}
