/** Argument parsing shared by the commands: node's parseArgs with errors a user can act on. */
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

/** Strict parsing: an unknown option is a usage error that shows the command's usage. */
export function parse(argv: string[], options: Options, usage: string): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
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
    throw new SwiftFormerError('BAD_ARGUMENT', `${(err as Error).message}\n\n${usage}`);
  }
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
