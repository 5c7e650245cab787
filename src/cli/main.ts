/**
 * The command line. Commands are thin: parse, validate, call one function in src/, print.
 * User errors print as one line `evomerge: <message> [CODE]` and exit 2; other failures exit 1.
 * Usage errors found by commander (a missing argument or required option, an unknown option or
 * command, too many arguments) print the same way, with the command and where to read its help:
 * `evomerge: lineage: missing required argument 'run'; see evomerge lineage --help [E_USAGE]`.
 * `--debug` (or EVOMERGE_DEBUG=1) prints the stack as well. A closed stdout or stderr (`| head`)
 * ends the command quietly with exit 0 (pipes.ts).
 */
import { Command, CommanderError } from 'commander';
import { isEvomergeError } from '../errors.ts';
import { registerCommands } from './commands/index.ts';
import { watchPipes } from './pipes.ts';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('evomerge')
    .description('Discover model-merging recipes by evolutionary search.')
    .version(pkg.version)
    .option('--debug', 'print stack traces of errors')
    .exitOverride();
  registerCommands(program);
  for (const cmd of withSubcommands(program)) {
    cmd.showHelpAfterError(false).configureOutput({ outputError: (str, write) => write(`${usageLine(cmd, str)}\n`) });
  }
  return program;
}

function withSubcommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(withSubcommands)];
}

/** `bench merge` for that subcommand, '' for the program itself. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * commander's message as evomerge's one line: `error: too many arguments for 'lineage'. Expected
 * 2 arguments but got 3.` from lineage becomes `evomerge: lineage: too many arguments: expected 2
 * arguments but got 3; see evomerge lineage --help [E_USAGE]`.
 */
export function usageLine(cmd: Command, message: string): string {
  const path = commandPath(cmd);
  const what = message.trim()
    .replace(/^error: /, '')
    .replace(/^too many arguments for '[^']*'/, 'too many arguments')
    .replace(/\s*\n\(Did you mean (.*)\?\)$/s, ' (did you mean $1?)')
    .replace(/\.\s+([A-Z])/g, (_m, c: string) => `: ${c.toLowerCase()}`)
    .replace(/\.$/, '')
    .replace(/\s*\n\s*/g, ' ');
  return `evomerge: ${path ? `${path}: ` : ''}${what}; see evomerge ${path ? `${path} ` : ''}--help [E_USAGE]`;
}

function debugEnabled(argv: readonly string[]): boolean {
  return argv.includes('--debug') || process.env.EVOMERGE_DEBUG === '1';
}

export function reportError(err: unknown, debug: boolean): number {
  if (isEvomergeError(err)) {
    process.stderr.write(`evomerge: ${err.message} [${err.code}]\n`);
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`evomerge: unexpected failure: ${e.message}\n`);
  if (debug) process.stderr.write(`${e.stack ?? ''}\n`);
  else process.stderr.write('(run again with --debug for the stack trace, and please report it)\n');
  return 1;
}

export async function main(argv: readonly string[]): Promise<void> {
  watchPipes();
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has already printed the help, the version or the usage line; usage errors are bad input
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.exitCode = reportError(err, debugEnabled(argv));
  }
}
