/**
 * The `flux-w4a4` command line: a table of commands, shared flag parsing and help, and one error
 * policy (user errors as one line, exit 1; usage mistakes exit 2; anything else with its stack).
 */
import { isFluxError } from '../errors.ts';
import { parseCommandArgs, UsageError, type Command } from './args.ts';
import { benchCommand } from './bench.ts';
import { calibrateCommand } from './calibrate.ts';
import { decodeCommand } from './decode.ts';
import { forwardCommand } from './forward.ts';
import { generateCommand } from './generate.ts';
import { infoCommand } from './info.ts';
import { quantizeCommand } from './quantize.ts';
import { reportCommand } from './report.ts';
import { sampleCommand } from './sample.ts';
import { smoothCommand } from './smooth.ts';
import { encodeCommand, tokenizeCommand } from './text.ts';

const PROGRAM = 'flux-w4a4';
const COMMANDS: readonly Command[] = [
  infoCommand,
  forwardCommand,
  tokenizeCommand,
  encodeCommand,
  decodeCommand,
  sampleCommand,
  generateCommand,
  quantizeCommand,
  benchCommand,
  calibrateCommand,
  smoothCommand,
  reportCommand,
];

const EXIT_OK = 0;
const EXIT_ERROR = 1;
const EXIT_USAGE = 2;

function programHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `usage: ${PROGRAM} <command> [options]`,
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `Run '${PROGRAM} help <command>' for a command's arguments.`,
  ].join('\n');
}

function commandHelp(command: Command): string {
  return [`usage: ${PROGRAM} ${command.usage}`, '', command.summary, ...(command.details ? [command.details] : [])].join('\n');
}

function findCommand(name: string): Command {
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new UsageError(`unknown command "${name}" (see ${PROGRAM} --help)`);
  return command;
}

async function dispatch(argv: readonly string[]): Promise<void> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') {
    process.stdout.write(programHelp() + '\n');
    return;
  }
  if (first === 'help') {
    if (rest.length > 1) throw new UsageError(`help takes at most one command name (see ${PROGRAM} --help)`);
    process.stdout.write((rest[0] === undefined ? programHelp() : commandHelp(findCommand(rest[0]))) + '\n');
    return;
  }
  if (first.startsWith('-')) throw new UsageError(`unknown option ${first} (see ${PROGRAM} --help)`);
  const command = findCommand(first);
  const parsed = parseCommandArgs(rest, command.options, { ...command.positionals, usage: `${PROGRAM} ${command.usage}` });
  if (parsed.values.help) process.stdout.write(commandHelp(command) + '\n');
  else await command.run(parsed);
}

/** Runs the CLI and returns the process exit code; never throws. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await dispatch(argv);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${PROGRAM}: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (isFluxError(e)) {
      process.stderr.write(`${PROGRAM}: ${e.message}\n`);
      return EXIT_ERROR;
    }
    process.stderr.write(`${PROGRAM}: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT_ERROR;
  }
}
