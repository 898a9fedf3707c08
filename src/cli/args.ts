/** What every CLI command is made of, and the argument parsing they share. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how the CLI was called (unknown command or flag, missing argument): exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/** One entry of the CLI's command table; main.ts parses flags and handles --help for all of them. */
export interface Command {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Arguments after the command name, e.g. `<file>`. */
  readonly usage: string;
  /** Extra lines shown by `help <command>`. */
  readonly details?: string;
  readonly options: OptionSpec;
  readonly positionals: { readonly min: number; readonly max: number };
  run(args: ParsedArgs): Promise<void>;
}

/**
 * Strict parsing (unknown flags are errors) with a positional count check. `--help` is always
 * accepted; callers check `values.help` first.
 */
export function parseCommandArgs(
  args: readonly string[],
  options: OptionSpec,
  positionals: { min: number; max: number; usage: string },
): ParsedArgs {
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    // node's messages run on with advice about '--'; the first sentence is the useful part.
    const message = e instanceof Error ? e.message.split(/\.\s/)[0]! : String(e);
    throw new UsageError(`${message} (usage: ${positionals.usage})`);
  }
  if (parsed.values.help) return parsed;
  const count = parsed.positionals.length;
  if (count < positionals.min || count > positionals.max) {
    throw new UsageError(`expected ${describeCount(positionals)}, got ${count} (usage: ${positionals.usage})`);
  }
  return parsed;
}

function describeCount({ min, max }: { min: number; max: number }): string {
  const plural = (n: number) => `${n} argument${n === 1 ? '' : 's'}`;
  if (min === max) return plural(min);
  return max === Infinity ? `at least ${plural(min)}` : `${min} to ${max} arguments`;
}

/** A numeric flag's value, or undefined when absent; anything else is a UsageError. */
export function optionalNumber(values: ParsedArgs['values'], flag: string, integer: boolean): number | undefined {
  const v = values[flag];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isSafeInteger(n))) throw new UsageError(`--${flag} must be ${integer ? 'an integer' : 'a number'} (got "${String(v)}")`);
  return n;
}
