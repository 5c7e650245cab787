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
      symmetricProduct(W, d, e, n, i);
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] = e[j]! / h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] = e[j]! - hh * d[j]!;
      rankTwoUpdate(W, d, e, n, i);
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
      // rows j -= (row_{i+1} . row_j) d, four rows per pass (same sums in the same order)
      let j = 0;
      for (; j + 3 <= i; j += 4) {
        const r0 = j * n;
        const r1 = r0 + n;
        const r2 = r1 + n;
        const r3 = r2 + n;
        let g0 = 0;
        let g1 = 0;
        let g2 = 0;
        let g3 = 0;
        for (let k = 0; k <= i; k++) {
          const u = W[rowI1 + k]!;
          g0 += u * W[r0 + k]!;
          g1 += u * W[r1 + k]!;
          g2 += u * W[r2 + k]!;
          g3 += u * W[r3 + k]!;
        }
        for (let k = 0; k <= i; k++) {
          const dk = d[k]!;
          W[r0 + k] = W[r0 + k]! - g0 * dk;
          W[r1 + k] = W[r1 + k]! - g1 * dk;
          W[r2 + k] = W[r2 + k]! - g2 * dk;
          W[r3 + k] = W[r3 + k]! - g3 * dk;
        }
      }
      for (; j <= i; j++) {
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

/*
 * The two O(i^2) steps of each tred2 reduction, on four rows j at a time: the loads of d and e
 * are shared by the four rows, which is where the time went. Each element still gets the same
 * operations in the same order as the row-by-row loops of the textbook routine (for e[k] the
 * contributions of rows j0 < j1 < j2 < j3 are added in that order), so the results are
 * bit-identical; the rows' triangular starts run one row at a time before the common part.
 */

/** e[0..i-1] = V[0..i-1][0..i-1] d (lower triangle by rows, e zeroed by the caller); V[j][i] = d[j]. */
function symmetricProduct(W: Float64Array, d: Float64Array, e: Float64Array, n: number, i: number): void {
  let j = 0;
  for (; j + 3 < i; j += 4) {
    const r0 = j * n;
    const r1 = r0 + n;
    const r2 = r1 + n;
    const r3 = r2 + n;
    const f0 = d[j]!;
    const f1 = d[j + 1]!;
    const f2 = d[j + 2]!;
    const f3 = d[j + 3]!;
    W[i * n + j] = f0;
    W[i * n + j + 1] = f1;
    W[i * n + j + 2] = f2;
    W[i * n + j + 3] = f3;
    // triangular starts: row j0 up to k = j+3, then j1, then j2
    let g0 = e[j]! + W[r0 + j]! * f0;
    for (let k = j + 1; k <= j + 3; k++) {
      const v = W[r0 + k]!;
      g0 += v * d[k]!;
      e[k] = e[k]! + v * f0;
    }
    let g1 = e[j + 1]! + W[r1 + j + 1]! * f1;
    for (let k = j + 2; k <= j + 3; k++) {
      const v = W[r1 + k]!;
      g1 += v * d[k]!;
      e[k] = e[k]! + v * f1;
    }
    let g2 = e[j + 2]! + W[r2 + j + 2]! * f2;
    {
      const v = W[r2 + j + 3]!;
      g2 += v * d[j + 3]!;
      e[j + 3] = e[j + 3]! + v * f2;
    }
    let g3 = e[j + 3]! + W[r3 + j + 3]! * f3;
    for (let k = j + 4; k <= i - 1; k++) {
      const dk = d[k]!;
      const v0 = W[r0 + k]!;
      const v1 = W[r1 + k]!;
      const v2 = W[r2 + k]!;
      const v3 = W[r3 + k]!;
      g0 += v0 * dk;
      g1 += v1 * dk;
      g2 += v2 * dk;
      g3 += v3 * dk;
      e[k] = e[k]! + v0 * f0 + v1 * f1 + v2 * f2 + v3 * f3;
    }
    e[j] = g0;
    e[j + 1] = g1;
    e[j + 2] = g2;
    e[j + 3] = g3;
  }
  for (; j < i; j++) {
    const rowJ = j * n;
    const f = d[j]!;
    W[i * n + j] = f; // V[j][i]
    let g = e[j]! + W[rowJ + j]! * f;
    for (let k = j + 1; k <= i - 1; k++) {
      const vkj = W[rowJ + k]!; // V[k][j]
      g += vkj * d[k]!;
      e[k] = e[k]! + vkj * f;
    }
    e[j] = g;
  }
}

/** V[k][j] -= d[j] e[k] + e[j] d[k] for 0 <= j <= k < i; then d[j] = V[i-1][j], V[i][j] = 0. */
function rankTwoUpdate(W: Float64Array, d: Float64Array, e: Float64Array, n: number, i: number): void {
  let j = 0;
  for (; j + 3 < i; j += 4) {
    const r0 = j * n;
    const r1 = r0 + n;
    const r2 = r1 + n;
    const r3 = r2 + n;
    const f0 = d[j]!;
    const f1 = d[j + 1]!;
    const f2 = d[j + 2]!;
    const f3 = d[j + 3]!;
    const g0 = e[j]!;
    const g1 = e[j + 1]!;
    const g2 = e[j + 2]!;
    const g3 = e[j + 3]!;
    for (let k = j; k <= j + 2; k++) W[r0 + k] = W[r0 + k]! - (f0 * e[k]! + g0 * d[k]!);
    for (let k = j + 1; k <= j + 2; k++) W[r1 + k] = W[r1 + k]! - (f1 * e[k]! + g1 * d[k]!);
    W[r2 + j + 2] = W[r2 + j + 2]! - (f2 * e[j + 2]! + g2 * d[j + 2]!);
    for (let k = j + 3; k <= i - 1; k++) {
      const ek = e[k]!;
      const dk = d[k]!;
      W[r0 + k] = W[r0 + k]! - (f0 * ek + g0 * dk);
      W[r1 + k] = W[r1 + k]! - (f1 * ek + g1 * dk);
      W[r2 + k] = W[r2 + k]! - (f2 * ek + g2 * dk);
      W[r3 + k] = W[r3 + k]! - (f3 * ek + g3 * dk);
    }
    // d[j..j+3] are read above as the rows' own factors, so they are replaced only now
    d[j] = W[r0 + (i - 1)]!;
    d[j + 1] = W[r1 + (i - 1)]!;
    d[j + 2] = W[r2 + (i - 1)]!;
    d[j + 3] = W[r3 + (i - 1)]!;
    W[r0 + i] = 0;
    W[r1 + i] = 0;
    W[r2 + i] = 0;
    W[r3 + i] = 0;
  }
  for (; j < i; j++) {
    const rowJ = j * n;
    const f = d[j]!;
    const g = e[j]!;
    for (let k = j; k <= i - 1; k++) W[rowJ + k] = W[rowJ + k]! - (f * e[k]! + g * d[k]!);
    d[j] = W[rowJ + (i - 1)]!;
    W[rowJ + i] = 0;
  }
}

/** Implicit QL with Wilkinson-type shifts on the tridiagonal (d, e), rotating the rows of W. */
function tql2(W: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  const rc = new Float64Array(n);
  const rs = new Float64Array(n);
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
          // the rotation of eigenvector rows i and i+1 (columns of the textbook V), applied below
          rc[i] = c;
          rs[i] = s;
        }
        applyRotations(W, n, l, m, rc, rs);
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
}

/**
 * One QL sweep's rotations on the rows of W, in the sweep's order i = m-1 down to l: rotation i
 * sets row i+1 to s_i row_i + c_i row_{i+1} and row i to c_i row_i - s_i row_{i+1}. Row i+1 is
 * final after rotation i and row i carries into rotation i-1, so for each column the chain
 * runs in registers and every row is loaded and stored once per sweep instead of twice per
 * rotation; four columns go together so each row access is one contiguous 32-byte piece.
 * Each element gets the same operations in the same order as rotation by rotation.
 */
function applyRotations(W: Float64Array, n: number, l: number, m: number, rc: Float64Array, rs: Float64Array): void {
  let k = 0;
  for (; k + 3 < n; k += 4) {
    let at = m * n + k;
    let h0 = W[at]!;
    let h1 = W[at + 1]!;
    let h2 = W[at + 2]!;
    let h3 = W[at + 3]!;
    for (let i = m - 1; i >= l; i--) {
      const c = rc[i]!;
      const s = rs[i]!;
      const below = at;
      at -= n;
      const v0 = W[at]!;
      const v1 = W[at + 1]!;
      const v2 = W[at + 2]!;
      const v3 = W[at + 3]!;
      W[below] = s * v0 + c * h0;
      W[below + 1] = s * v1 + c * h1;
      W[below + 2] = s * v2 + c * h2;
      W[below + 3] = s * v3 + c * h3;
      h0 = c * v0 - s * h0;
      h1 = c * v1 - s * h1;
      h2 = c * v2 - s * h2;
      h3 = c * v3 - s * h3;
    }
    W[at] = h0;
    W[at + 1] = h1;
    W[at + 2] = h2;
    W[at + 3] = h3;
  }
  for (; k < n; k++) {
    let at = m * n + k;
    let h = W[at]!;
    for (let i = m - 1; i >= l; i--) {
      const below = at;
      at -= n;
      const v = W[at]!;
      W[below] = rs[i]! * v + rc[i]! * h;
      h = rc[i]! * v - rs[i]! * h;
    }
    W[at] = h;
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

// ---------------------------------------------------------------------------------------------
// Kernels of the CMA-ES core (./cmaes.ts). In the tutorial's notation C = B D^2 B^T with the
// eigenvectors as the columns of B; the state stores them as the rows of `B` (see above) and
// `D` as the vector of the square roots of the eigenvalues.

/**
 * Y = Z diag(D) B for the full variant: row k is sum_j D_j z_kj b_j, with b_j the eigenvector
 * rows of B. Four eigenvectors are added per pass over a row of Y, which loads and stores Y a
 * quarter as often as one at a time (2.5x faster at n = 200; measured with /tmp scratch code
 * against the one-at-a-time loop, see the commit message).
 */
export function rotateSamples(B: readonly number[], D: readonly number[], Z: Float64Array, lambda: number, n: number): Float64Array {
  const Y = new Float64Array(lambda * n);
  for (let k = 0; k < lambda; k++) {
    const ko = k * n;
    let j = 0;
    for (; j + 3 < n; j += 4) {
      const a0 = D[j]! * Z[ko + j]!;
      const a1 = D[j + 1]! * Z[ko + j + 1]!;
      const a2 = D[j + 2]! * Z[ko + j + 2]!;
      const a3 = D[j + 3]! * Z[ko + j + 3]!;
      const b0 = j * n;
      const b1 = b0 + n;
      const b2 = b1 + n;
      const b3 = b2 + n;
      for (let i = 0; i < n; i++) Y[ko + i] = Y[ko + i]! + a0 * B[b0 + i]! + a1 * B[b1 + i]! + a2 * B[b2 + i]! + a3 * B[b3 + i]!;
    }
    for (; j < n; j++) {
      const a = D[j]! * Z[ko + j]!;
      const bj = j * n;
      for (let i = 0; i < n; i++) Y[ko + i] = Y[ko + i]! + a * B[bj + i]!;
    }
  }
  return Y;
}

/**
 * C <- decay C + sum_v coef_v y_v y_v^T on the upper triangle (row-major n x n). Four vectors
 * are added per pass over a row, for the same reason as in `rotateSamples`.
 */
export function symmetricRankUpdate(C: number[], n: number, decay: number, vecs: Float64Array[], coefs: number[]): void {
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let j = i; j < n; j++) C[row + j] = decay * C[row + j]!;
    let v = 0;
    for (; v + 3 < vecs.length; v += 4) {
      const y0 = vecs[v]!;
      const y1 = vecs[v + 1]!;
      const y2 = vecs[v + 2]!;
      const y3 = vecs[v + 3]!;
      const a0 = coefs[v]! * y0[i]!;
      const a1 = coefs[v + 1]! * y1[i]!;
      const a2 = coefs[v + 2]! * y2[i]!;
      const a3 = coefs[v + 3]! * y3[i]!;
      for (let j = i; j < n; j++) C[row + j] = C[row + j]! + a0 * y0[j]! + a1 * y1[j]! + a2 * y2[j]! + a3 * y3[j]!;
    }
    for (; v < vecs.length; v++) {
      const y = vecs[v]!;
      const a = coefs[v]! * y[i]!;
      for (let j = i; j < n; j++) C[row + j] = C[row + j]! + a * y[j]!;
    }
  }
}

/**
 * D^-1 B^T v: a step v in the coordinates where a sample of N(0, C) is standard normal
 * (separable: B = I and this is v / D).
 */
export function whiten(B: readonly number[], D: readonly number[], separable: boolean, v: ArrayLike<number>, n: number): Float64Array {
  const w = new Float64Array(n);
  if (separable) {
    for (let i = 0; i < n; i++) w[i] = v[i]! / D[i]!;
    return w;
  }
  for (let j = 0; j < n; j++) {
    let t = 0;
    for (let i = 0; i < n; i++) t += B[j * n + i]! * v[i]!;
    w[j] = t / D[j]!;
  }
  return w;
}

/** C^{-1/2} v = B D^-1 B^T v (tutorial, after eq. 43; separable: v / D). */
export function invSqrtTimes(B: readonly number[], D: readonly number[], separable: boolean, v: ArrayLike<number>, n: number): Float64Array {
  const r = new Float64Array(n);
  if (separable) {
    for (let i = 0; i < n; i++) r[i] = v[i]! / D[i]!;
    return r;
  }
  for (let j = 0; j < n; j++) {
    let t = 0;
    const bj = j * n;
    for (let i = 0; i < n; i++) t += B[bj + i]! * v[i]!;
    t /= D[j]!;
    for (let i = 0; i < n; i++) r[i] = r[i]! + t * B[bj + i]!;
  }
  return r;
}

/** Typed array to a plain array for the JSON state (Array.from on a typed array is ~10x slower). */
export function toArray(a: Float64Array): number[] {
  const r = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) r[i] = a[i]!;
  return r;
}
