#!/usr/bin/env node
// Completes package-lock.json with the other platforms' optional native packages.
//
// `npm ci` refuses a lockfile that lacks an entry for any optional dependency, even one for
// another platform. npm writes those entries only when the registry serves the packages, and
// the registry mirror of this workplace does not serve some of them (for example
// @napi-rs/canvas-darwin-arm64 answers 404), so a lockfile written here breaks `npm ci`
// everywhere. This adds the missing entries with the os / cpu / libc that their names state,
// which is all npm needs to skip them on other platforms. Run it after every `npm install`
// that changes dependencies: `node .ci/lockfile-platforms.mjs`.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;
const OS = ['android', 'darwin', 'linux', 'win32', 'freebsd', 'openbsd', 'netbsd', 'sunos', 'aix'];
const CPU = ['arm64', 'x64', 'arm', 'ia32', 'riscv64', 's390x', 'ppc64', 'loong64', 'mips64el'];

function platformOf(name) {
  const parts = name.split('/').pop().split('-');
  for (let i = 0; i < parts.length - 1; i++) {
    if (OS.includes(parts[i]) && CPU.includes(parts[i + 1])) {
      const abi = parts[i + 2];
      const libc = abi === 'musl' ? ['musl'] : abi && abi.startsWith('gnu') ? ['glibc'] : undefined;
      return { os: [parts[i]], cpu: [parts[i + 1]], ...(libc ? { libc } : {}) };
    }
  }
  return null;
}

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const where = `${path ? `${path}/` : ''}node_modules/${dep}`;
    const hoisted = `node_modules/${dep}`;
    if (packages[where] || packages[hoisted]) continue;
    const platform = platformOf(dep);
    if (!platform) throw new Error(`${dep} (optional dependency of ${path || 'the root'}) is missing from the lockfile and its name states no platform: run npm install where the registry serves it`);
    packages[hoisted] = { version, optional: true, ...platform };
    added++;
  }
}
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: ${added} platform entries added`);
