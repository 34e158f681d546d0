/**
 * The command line of a bench script: node's parseArgs (strict), plus `--help`, which prints the
 * script's header comment (where each script documents its usage), and for an unknown or
 * malformed option one line naming it and exit code 2 instead of parseArgs' stack trace. An
 * option whose default is a number takes only numbers, or a comma list of them (some, such as
 * --milestones, are lists), so that a typo does not run as NaN.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** `script`: the calling script's import.meta.url. */
export function benchArgs<T extends ParseArgsConfig>(script: string, config: T): ReturnType<typeof parseArgs<T>> {
  const file = fileURLToPath(script);
  const name = relative(process.cwd(), file);
  let parsed;
  try {
    parsed = parseArgs({ ...config, options: { ...config.options, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message.split('\n')[0]} (--help shows the usage)\n`);
    process.exit(2);
  }
  const values = parsed.values as Record<string, unknown>;
  if (values.help) {
    process.stdout.write(`${usage(file)}\n`);
    process.exit(0);
  }
  for (const [option, spec] of Object.entries(config.options ?? {})) {
    const given = values[option];
    if (isNumber(spec.default) && typeof given === 'string' && !given.split(',').every(isNumber)) {
      process.stderr.write(`${name}: --${option} takes a number (default ${spec.default}), got '${given}'\n`);
      process.exit(2);
    }
  }
  delete values.help;
  return parsed as ReturnType<typeof parseArgs<T>>;
}

function isNumber(v: unknown): v is string {
  return typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v));
}

/** The first doc comment of `file`, without its comment markers. */
function usage(file: string): string {
  const comment = /\/\*\*([\s\S]*?)\*\//.exec(readFileSync(file, 'utf8'))?.[1] ?? '';
  return comment.split('\n').map((line) => line.replace(/^\s*\* ?/, '')).join('\n').trim();
}
