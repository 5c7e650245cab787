/**
 * The one way sizes and counts are written for users (inspect, merge, export, the memory plan,
 * benchmarks). Depends on nothing.
 *
 * - Sizes in binary units (IEC 80000-13: 1 KiB = 1024 B): bytes below 1 KiB as `512 B`, larger
 *   sizes with 3 significant digits, `1.00 KiB`, `817 KiB`, `12.3 MiB`, `6.74 GiB`. A value that
 *   rounds up to 1024 of a unit is written in the next (`1.00 MiB`, never `1024 KiB`); from 1000
 *   to 1023 of a unit the integer is written (`1010 KiB`), the one place with four digits.
 * - Counts (parameters, elements) in decimal steps of 1000 with 3 significant digits: `999`,
 *   `12.3k`, `1.10M`, `6.74B`, `1.20T`.
 * Rates in decimal GB/s (benchmarks) are not sizes and keep their own formatting.
 */

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;
const COUNT_UNITS = ['k', 'M', 'B', 'T'] as const;

/** 3 significant digits of v in [1, 1024): `1.23`, `12.3`, `123`, `1010`. */
function threeDigits(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** `v` rounded to 3 significant digits, as a number (999.6 -> 1000, 9.996 -> 10). */
function round3(v: number): number {
  return Number(v.toPrecision(3));
}

/** A byte count for users: `0 B`, `512 B`, `1.00 KiB`, `817 KiB`, `1.10 MiB`, `6.74 GiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return `${bytes} B`;
  if (bytes < 0) return `-${formatBytes(-bytes)}`;
  if (bytes < 1024) {
    const b = Math.round(bytes);
    // 1023.6 B rounds to 1024 B: that is 1.00 KiB
    if (b < 1024) return `${b} B`;
  }
  // what v is written as: 3 significant digits, or the integer from 1000 up
  const shown = (v: number) => (v >= 1000 ? Math.round(v) : round3(v));
  let v = bytes / 1024;
  let unit = 0;
  while (unit < BYTE_UNITS.length - 1 && shown(v) >= 1024) {
    v /= 1024;
    unit++;
  }
  const r = shown(v);
  return `${r >= 1000 ? String(r) : threeDigits(r)} ${BYTE_UNITS[unit]}`;
}

/** A count of things (parameters, elements, tokens) for users: `999`, `12.3k`, `1.10M`, `6.74B`. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n < 0) return `-${formatCount(-n)}`;
  if (round3(n) < 1000) return Number.isInteger(n) ? String(n) : threeDigits(round3(n));
  let v = n;
  let unit = -1;
  while (unit < COUNT_UNITS.length - 1 && round3(v) >= 1000) {
    v /= 1000;
    unit++;
  }
  const r = round3(v);
  return `${r >= 1000 ? String(Math.round(r)) : threeDigits(r)}${COUNT_UNITS[unit]}`;
}
