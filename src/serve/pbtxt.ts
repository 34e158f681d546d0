/**
 * Protocol buffer text format, the language of Triton's config.pbtxt: a parser (for
 * `serve --repository`) and a writer (for `export --triton`). Schema-free: every field parses to
 * a list of values (the text format does not say which fields are repeated), enum identifiers are
 * kept apart from quoted strings, and both `{}` and `<>` delimit messages.
 */
import { SwiftFormerError } from '../core/errors.js';

/** An unquoted identifier value: an enum constant such as TYPE_FP32. */
export class PbEnum {
  constructor(readonly name: string) {}
}

export type PbScalar = string | number | boolean | PbEnum;
export interface PbMessage { [field: string]: (PbScalar | PbMessage)[] }

// ---------------------------------------------------------------- parsing

type Token =
  | { kind: 'ident'; text: string; line: number }
  | { kind: 'number'; value: number; line: number }
  | { kind: 'string'; value: string; line: number }
  | { kind: 'punct'; text: string; line: number };

const SIMPLE_ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, "'": 39, '"': 34, '?': 63 };

function parseError(line: number, message: string): SwiftFormerError {
  return new SwiftFormerError('BAD_ARGUMENT', `line ${line}: ${message}`);
}

/** The bytes of a quoted string body (escapes resolved), as UTF-8 text. */
function unescape(body: string, line: number): string {
  const bytes: number[] = [];
  const utf8 = new TextEncoder();
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      bytes.push(...utf8.encode(c));
      continue;
    }
    const e = body[++i];
    if (e === undefined) throw parseError(line, 'string ends with a lone backslash');
    if (e in SIMPLE_ESCAPES) bytes.push(SIMPLE_ESCAPES[e]!);
    else if (/[0-7]/.test(e)) {
      const oct = /^[0-7]{1,3}/.exec(body.slice(i))![0];
      bytes.push(parseInt(oct, 8) & 0xff);
      i += oct.length - 1;
    } else if (e === 'x' || e === 'X') {
      const hex = /^[0-9a-fA-F]{1,2}/.exec(body.slice(i + 1))?.[0];
      if (!hex) throw parseError(line, 'bad \\x escape');
      bytes.push(parseInt(hex, 16));
      i += hex.length;
    } else if (e === 'u') {
      const hex = /^[0-9a-fA-F]{4}/.exec(body.slice(i + 1))?.[0];
      if (!hex) throw parseError(line, 'bad \\u escape');
      bytes.push(...utf8.encode(String.fromCharCode(parseInt(hex, 16))));
      i += 4;
    } else throw parseError(line, `unknown escape \\${e}`);
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(new Uint8Array(bytes));
}

const NUMBER = /^[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?|inf(?:inity)?|nan)(?![A-Za-z0-9_])/i;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) i++;
    else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if ('{}[]<>:,;'.includes(c)) {
      tokens.push({ kind: 'punct', text: c, line });
      i++;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\n') throw parseError(line, 'newline inside a string');
        j += text[j] === '\\' ? 2 : 1;
      }
      if (j >= text.length) throw parseError(line, 'unterminated string');
      tokens.push({ kind: 'string', value: unescape(text.slice(i + 1, j), line), line });
      i = j + 1;
    } else {
      const number = NUMBER.exec(text.slice(i));
      if (number && !/^[A-Za-z_]/.test(number[0])) {
        tokens.push({ kind: 'number', value: numberValue(number[0]), line });
        i += number[0].length;
        continue;
      }
      const ident = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(text.slice(i));
      if (!ident) throw parseError(line, `unexpected character '${c}'`);
      tokens.push({ kind: 'ident', text: ident[0], line });
      i += ident[0].length;
    }
  }
  return tokens;
}

function numberValue(text: string): number {
  const t = text.replace(/[fF]$/, '').toLowerCase();
  const sign = t.startsWith('-') ? -1 : 1;
  const body = t.replace(/^[-+]/, '');
  if (body.startsWith('inf')) return sign * Infinity;
  if (body === 'nan') return NaN;
  if (body.startsWith('0x')) return sign * parseInt(body.slice(2), 16);
  return Number(t);
}

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  message(close?: string): PbMessage {
    const msg: PbMessage = {};
    for (;;) {
      const t = this.tokens[this.pos];
      if (!t) {
        if (close) throw parseError(this.tokens.at(-1)?.line ?? 1, `missing '${close}'`);
        return msg;
      }
      if (t.kind === 'punct' && t.text === close) {
        this.pos++;
        return msg;
      }
      if (t.kind !== 'ident') throw parseError(t.line, `expected a field name, got ${describe(t)}`);
      this.pos++;
      const values = (msg[t.text] ??= []);
      this.fieldValue(values, t.line);
      const sep = this.peek();
      if (sep?.kind === 'punct' && (sep.text === ',' || sep.text === ';')) this.pos++;
    }
  }

  private fieldValue(values: (PbScalar | PbMessage)[], line: number): void {
    const colon = this.eat(':');
    const t = this.peek();
    if (!t) throw parseError(line, 'field has no value');
    if (t.kind === 'punct' && t.text === '[') {
      this.pos++;
      if (this.eat(']')) return;
      for (;;) {
        values.push(this.value(colon));
        if (this.eat(']')) return;
        if (!this.eat(',')) throw parseError(this.peek()?.line ?? line, "expected ',' or ']' in a list");
      }
    }
    values.push(this.value(colon));
  }

  private value(colon: boolean): PbScalar | PbMessage {
    const t = this.tokens[this.pos++];
    if (!t) throw parseError(this.tokens.at(-1)?.line ?? 1, 'missing value');
    if (t.kind === 'punct' && (t.text === '{' || t.text === '<')) return this.message(t.text === '{' ? '}' : '>');
    if (!colon) throw parseError(t.line, `expected ':' before ${describe(t)}`);
    if (t.kind === 'number') return t.value;
    if (t.kind === 'string') {
      let s = t.value;
      // Adjacent string literals are one string.
      while (this.peek()?.kind === 'string') s += (this.tokens[this.pos++] as { value: string }).value;
      return s;
    }
    if (t.kind === 'ident') {
      if (/^(true|t|True)$/.test(t.text)) return true;
      if (/^(false|f|False)$/.test(t.text)) return false;
      if (/^-?(inf|infinity|nan)$/i.test(t.text)) return numberValue(t.text);
      return new PbEnum(t.text);
    }
    throw parseError(t.line, `unexpected ${describe(t)}`);
  }

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private eat(text: string): boolean {
    const t = this.peek();
    if (t?.kind === 'punct' && t.text === text) {
      this.pos++;
      return true;
    }
    return false;
  }
}

function describe(t: Token): string {
  return t.kind === 'punct' || t.kind === 'ident' ? `'${t.text}'` : t.kind === 'string' ? `"${t.value}"` : String(t.value);
}

/** Parses protobuf text format; an error names the line. */
export function parsePbtxt(text: string, name = 'text protobuf'): PbMessage {
  try {
    return new Parser(tokenize(text)).message();
  } catch (err) {
    if (err instanceof SwiftFormerError) throw new SwiftFormerError('BAD_ARGUMENT', `${name}, ${err.message}`);
    throw err;
  }
}

// ---------------------------------------------------------------- writing

export type PbWritable = PbScalar | PbObject | readonly PbScalar[] | readonly PbObject[];
export interface PbObject { [field: string]: PbWritable | undefined }

function scalarText(v: PbScalar): string {
  if (v instanceof PbEnum) return v.name;
  if (typeof v !== 'string') return String(v);
  const escape = (c: string) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : c === '\n' ? '\\n' : `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return `"${v.replace(/[\\"\x00-\x1f\x7f]/g, escape)}"`;
}

const isMessage = (v: unknown): v is PbObject => typeof v === 'object' && v !== null && !(v instanceof PbEnum) && !Array.isArray(v);

function writeMessage(msg: PbObject, indent: string, lines: string[]): void {
  for (const [field, value] of Object.entries(msg)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      if (value.length > 0 && isMessage(value[0])) {
        lines.push(`${indent}${field} [`);
        (value as PbObject[]).forEach((m, i) => {
          lines.push(`${indent}  {`);
          writeMessage(m, `${indent}    `, lines);
          lines.push(`${indent}  }${i < value.length - 1 ? ',' : ''}`);
        });
        lines.push(`${indent}]`);
      } else lines.push(`${indent}${field}: [ ${(value as PbScalar[]).map(scalarText).join(', ')} ]`);
    } else if (isMessage(value)) {
      lines.push(`${indent}${field} {`);
      writeMessage(value, `${indent}  `, lines);
      lines.push(`${indent}}`);
    } else lines.push(`${indent}${field}: ${scalarText(value as PbScalar)}`);
  }
}

/** Text format of a message given as a plain object (arrays: repeated fields; PbEnum: enum constants). */
export function formatPbtxt(msg: PbObject): string {
  const lines: string[] = [];
  writeMessage(msg, '', lines);
  return `${lines.join('\n')}\n`;
}
