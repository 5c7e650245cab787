/**
 * Symmetric eigendecomposition for CMA-ES: Householder reduction to tridiagonal form followed
 * by the implicit QL algorithm with shifts (the EISPACK routines tred2 and tql2; Wilkinson and
 * Reinsch, "Handbook for Automatic Computation, Vol. II: Linear Algebra", 1971, contributions
 * II/2 and II/4; the same pair that JAMA and Hansen's cmaes.m fallback use).
 *
 * Layout: matrices are row-major Float64Array. The eigenvectors are returned as the ROWS of
 * `vectors` (row j is the eigenvector of `values[j]`), which is the transpose of the usual
 * column convention. Both routines are written on that transposed array, so every inner loop
 * walks contiguous memory; CMA-ES then samples with row operations (y = sum_j D_j z_j v_j).
 */

export interface Eigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Row j is the unit eigenvector for values[j]. */
  vectors: Float64Array;
}

/**
 * Eigenvalues and eigenvectors of the symmetric n x n matrix `a` (only its content is read;
 * it is not modified). Eigenvalues come back in ascending order.
 */
export function symmetricEigen(a: Float64Array, n: number): Eigen {
  // W[j*n + k] stands for V[k][j] of the textbook routine (V is symmetric on entry).
  const w = new Float64Array(a);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(w, d, e, n);
  tql2(w, d, e, n);
  return sortAscending(d, w, n);
}

/** Householder tridiagonalisation (tred2); on exit d is the diagonal, e the sub-diagonal, W the transform. */
function tred2(W: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  // V[a][b] == W[b*n + a]
  for (let j = 0; j < n; j++) d[j] = W[j * n + (n - 1)]!;
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = W[j * n + (i - 1)]!;
        W[j * n + i] = 0;
        W[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] = d[k]! / scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        const rowJ = j * n;
        f = d[j]!;
        W[i * n + j] = f; // V[j][i]
        g = e[j]! + W[rowJ + j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const vkj = W[rowJ + k]!; // V[k][j]
          g += vkj * d[k]!;
          e[k] = e[k]! + vkj * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] = e[j]! / h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] = e[j]! - hh * d[j]!;
      for (let j = 0; j < i; j++) {
        const rowJ = j * n;
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) W[rowJ + k] = W[rowJ + k]! - (f * e[k]! + g * d[k]!);
        d[j] = W[rowJ + (i - 1)]!;
        W[rowJ + i] = 0;
      }
    }
    d[i] = h;
  }
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    const rowI = i * n;
    const rowI1 = (i + 1) * n;
    W[rowI + (n - 1)] = W[rowI + i]!;
    W[rowI + i] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = W[rowI1 + k]! / h;
      for (let j = 0; j <= i; j++) {
        const rowJ = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += W[rowI1 + k]! * W[rowJ + k]!;
        for (let k = 0; k <= i; k++) W[rowJ + k] = W[rowJ + k]! - g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) W[rowI1 + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = W[j * n + (n - 1)]!;
    W[j * n + (n - 1)] = 0;
  }
  W[(n - 1) * n + (n - 1)] = 1;
  e[0] = 0;
}

/** Implicit QL with Wilkinson-type shifts on the tridiagonal (d, e), rotating the rows of W. */
function tql2(W: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]!) <= eps * tst1) break;
      m++;
    }
    if (m === n) m = n - 1;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new Error(`tql2: no convergence for eigenvalue ${l} of ${n}`);
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.sqrt(p * p + 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.sqrt(p * p + e[i]! * e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          // rotate eigenvector rows i and i+1 (columns of the textbook V)
          const ri = i * n;
          const ri1 = ri + n;
          for (let k = 0; k < n; k++) {
            const hk = W[ri1 + k]!;
            const vk = W[ri + k]!;
            W[ri1 + k] = s * vk + c * hk;
            W[ri + k] = c * vk - s * hk;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
}

function sortAscending(d: Float64Array, W: Float64Array, n: number): Eigen {
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[a]! - d[b]! || a - b);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const src = order[j]!;
    values[j] = d[src]!;
    vectors.set(W.subarray(src * n, src * n + n), j * n);
  }
  return { values, vectors };
}
