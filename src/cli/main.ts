/**
 * The command line. Commands are thin: parse, validate, call one function in src/, print.
 * User errors print as one line `evomerge: <message> [CODE]` and exit 2; other failures exit 1.
 * `--debug` (or EVOMERGE_DEBUG=1) prints the stack as well.
 */
import { Command, CommanderError } from 'commander';
import { isEvomergeError } from '../errors.ts';
import { registerCommands } from './commands/index.ts';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('evomerge')
    .description('Discover model-merging recipes by evolutionary search.')
    .version(pkg.version)
    .option('--debug', 'print stack traces of errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerCommands(program);
  return program;
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
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has already printed help or its message; usage errors are bad input
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.exitCode = reportError(err, debugEnabled(argv));
  }
}
