/** Argument parsing shared by the commands: node's parseArgs with errors a user can act on. */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SwiftFormerError } from '../core/errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  /** String options by name. */
  values: Record<string, string | undefined>;
  /** Boolean options that were given. */
  flags: Set<string>;
  /** Options declared `multiple: true`, each value in order. */
  lists: Record<string, string[]>;
  positionals: string[];
}

/** Where a usage text's --help is: 'Usage: swiftformer info ...' gives 'swiftformer info --help'. */
function helpOf(usage: string): string {
  const command = /^Usage: swiftformer (\S+)/.exec(usage)?.[1];
  return command ? `swiftformer ${command} --help` : '--help';
}

/** A usage error: one line that points at the command's --help (the usage itself is not repeated). */
export function usageError(usage: string, message: string): SwiftFormerError {
  return new SwiftFormerError('BAD_ARGUMENT', `${message}; see ${helpOf(usage)}`);
}

/**
 * Strict parsing: an unknown option, a missing value or (unless the command takes them) a
 * positional argument is a usage error.
 */
export function parse(argv: string[], options: Options, usage: string, { positionals: allowPositionals = false } = {}): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
    const strings: Record<string, string | undefined> = {};
    const flags = new Set<string>();
    const lists: Record<string, string[]> = {};
    for (const [name, value] of Object.entries(values)) {
      if (typeof value === 'string') strings[name] = value;
      else if (value === true) flags.add(name);
      else if (Array.isArray(value)) lists[name] = value.filter((v): v is string => typeof v === 'string');
    }
    return { values: strings, flags, lists, positionals };
  } catch (err) {
    // parseArgs' first sentence says it ("Unknown option '--x'"); the rest is advice about '--'.
    const first = (err as Error).message.split(/\. (?=[A-Z])/)[0]!.replace(/\.$/, '');
    throw usageError(usage, first.charAt(0).toLowerCase() + first.slice(1));
  }
}

/**
 * The library speaks in options (`strict: false`, `maxPixels`); a CLI user needs the flag that
 * does it, or nothing where the command has no such flag.
 */
const FLAG_WORDING: { library: RegExp; flag: string; cli: string; without: string }[] = [
  { library: /, or strict: false to load what fits\./, flag: '--no-strict', cli: ', or --no-strict to load what fits.', without: '.' },
  { library: / \(raise the limit with maxPixels if the image is genuine\)/, flag: '--max-pixels', cli: ' (raise the limit with --max-pixels if the image is genuine)', without: '' },
  { library: /; allowNonFinite: true loads them anyway/, flag: '--allow-non-finite', cli: '; --allow-non-finite loads them anyway', without: '' },
  { library: / \(leave the size out to use it\)/, flag: '--size', cli: ' (leave out --size to use it)', without: '' },
];

/** An error message as the CLI shows it: one line, in the flags of the command `usage` describes. */
export function cliMessage(message: string, usage: string): string {
  let text = message;
  for (const { library, flag, cli, without } of FLAG_WORDING) text = text.replace(library, usage.includes(flag) ? cli : without);
  // A message that carries the whole usage text keeps its first part and points at --help.
  const cut = text.indexOf('\n\nUsage: ');
  return cut < 0 ? text : `${text.slice(0, cut)}; see ${helpOf(usage)}`;
}

/** A positive integer option, or undefined when absent. */
export function intOption(value: unknown, name: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new SwiftFormerError('BAD_ARGUMENT', `--${name} must be an integer >= ${min}, got '${String(value)}'`);
  return n;
}

export function choice<T extends string>(value: unknown, name: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new SwiftFormerError('BAD_ARGUMENT', `--${name} must be one of ${allowed.join(', ')}, got '${String(value)}'`);
  return value as T;
}

export function formatCount(n: number, unit: 'M' | 'G'): string {
  return `${(n / (unit === 'M' ? 1e6 : 1e9)).toFixed(unit === 'M' ? 2 : 3)} ${unit}`;
}

/** package.json's version (the file sits two levels above both src/cli and dist/cli). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
