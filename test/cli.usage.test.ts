import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;

function evomerge(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, EVOMERGE_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The one stderr line of a usage error, checked to be the only one. */
function usageError(args: string[]): string {
  const r = evomerge(...args);
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  return lines[0]!;
}

test('a missing argument is one line naming the command and its help, with E_USAGE, exit 2', () => {
  assert.equal(usageError(['lineage']), "evomerge: lineage: missing required argument 'run'; see evomerge lineage --help [E_USAGE]");
});

test('too many arguments, an unknown option and a missing option value follow the same format', () => {
  assert.equal(usageError(['lineage', 'a', '1', 'extra']), 'evomerge: lineage: too many arguments: expected 2 arguments but got 3; see evomerge lineage --help [E_USAGE]');
  assert.equal(usageError(['best', 'demo', '--frobnicate']), "evomerge: best: unknown option '--frobnicate'; see evomerge best --help [E_USAGE]");
  assert.equal(usageError(['best', 'demo', '--top']), "evomerge: best: option '--top <k>' argument missing; see evomerge best --help [E_USAGE]");
});

test('a missing required option names it', () => {
  assert.equal(usageError(['merge', 'x.yaml']), "evomerge: merge: required option '-o, --output <dir>' not specified; see evomerge merge --help [E_USAGE]");
});

test('an unknown command or subcommand keeps the suggestion on the same line', () => {
  assert.equal(usageError(['frobnicate']), "evomerge: unknown command 'frobnicate'; see evomerge --help [E_USAGE]");
  assert.equal(usageError(['lineag', 'demo', '1']), "evomerge: unknown command 'lineag' (did you mean lineage?); see evomerge --help [E_USAGE]");
  assert.equal(usageError(['bench', 'merg']), "evomerge: bench: unknown command 'merg' (did you mean merge?); see evomerge bench --help [E_USAGE]");
});

test('--help and --version still print on stdout and exit 0', () => {
  const help = evomerge('lineage', '--help');
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: evomerge lineage \[options\] <run> <candidate>/);
  assert.match(help.stdout, /--full/);
  assert.equal(help.stderr, '');
  const version = evomerge('--version');
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  const helpCmd = evomerge('help', 'best');
  assert.equal(helpCmd.code, 0);
  assert.match(helpCmd.stdout, /^Usage: evomerge best/);
});
