/**
 * The run store over better-sqlite3 in WAL mode: one writer (the process that owns the run),
 * any number of readers (`evomerge status` during a search). Each step of the search loop is
 * one transaction, so a kill at any moment leaves the database at a step boundary.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { InputError, RuntimeFailure } from '../errors.ts';
import { DDL, MIGRATIONS, SCHEMA_VERSION, type CandidateRow, type CandidateState, type RunOwner, type RunRow, type RunSettings, type RunStatus } from './schema.ts';

export interface NewRun {
  name: string;
  space: unknown;
  spacePath?: string | null;
  codeVersion: string;
  seed: number;
  fingerprints?: Record<string, string>;
  settings?: RunSettings;
  /** The process that creates the run and searches it (it then holds its lease). */
  owner?: RunOwner;
}

export interface NewCandidate {
  stage: number;
  generation: number;
  /** The optimizer's id for the proposal, unique within (run, stage). */
  proposalId: string;
  operator: string;
  genome: readonly number[];
  recipe: unknown;
  recipeHash: string;
  /** Proposal ids of the parents, in the same stage, or candidate ids (numbers) of any stage. */
  parents?: ReadonlyArray<string | number>;
  /** Multi-fidelity evaluation: the full-fidelity score to beat (null or absent: score in full). */
  threshold?: number | null;
}

export interface MetricValue {
  evaluator: string;
  metric: string;
  value: number | null;
}

export interface CandidateResult {
  /** null (or NaN) for a failed candidate. */
  fitness: number | null;
  objectives?: readonly number[] | null;
  metrics?: readonly MetricValue[];
  error?: string | null;
  worker?: string | null;
  backend?: string | null;
  evalMs?: number | null;
  reusedFrom?: number | null;
  /** Fraction of each evaluator's items the score rests on (multi-fidelity runs; null: all, fidelity off). */
  fidelity?: number | null;
  /** Items the evaluators scored for this result. */
  itemEvals?: number | null;
  /** When its merge and scoring ran, and the slot (pipelined evaluation). */
  phases?: { mergeStart?: number; mergeEnd?: number; writeMs?: number; scoreStart?: number; scoreEnd?: number; slot?: string } | null;
}

export interface LineageEntry {
  candidate: CandidateRow;
  depth: number;
  /** Parents of this entry with the operator that used them. */
  parents: Array<{ id: number; operator: string }>;
}

const now = () => new Date().toISOString();

/**
 * The disk (or its quota) filled up, or the file system failed, while writing the run database.
 * SQLite rolled back the write, so the database is still at its last committed step.
 */
export class StoreWriteError extends RuntimeFailure {}

const WRITES = ['createRun', 'setRunStatus', 'claimRun', 'heartbeat', 'endRun', 'updateSettings', 'addCandidates', 'markRunning', 'recordResult', 'retryFailed', 'commitStep', 'saveGeneration', 'event'] as const;

/** A SQLite "full" or I/O error as a StoreWriteError naming the file and the way on; other errors as they are. */
export function storeWriteFailure(err: unknown, path: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || err instanceof StoreWriteError) return err;
  const full = code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_WRITE' && /no space|full/i.test(String((err as Error).message));
  if (full) {
    return new StoreWriteError('E_DISK_FULL', `${path}: the disk is full; the last write to the run database was rolled back and the run is intact at its last committed step. Free space on that disk, then continue with 'evomerge resume <run> --db ${path}'`, { cause: err });
  }
  if (code.startsWith('SQLITE_IOERR')) {
    return new StoreWriteError('E_DB_IO', `${path}: the file system failed while writing the run database (${code}: ${(err as Error).message}); the run is at its last committed step. Check the disk, then continue with 'evomerge resume <run> --db ${path}'`, { cause: err });
  }
  return err;
}

type Row = Record<string, unknown>;

function toRun(r: Row): RunRow {
  return {
    id: r.id as number,
    name: r.name as string,
    space: JSON.parse(r.space_json as string),
    spacePath: (r.space_path as string | null) ?? null,
    codeVersion: r.code_version as string,
    seed: r.seed as number,
    fingerprints: JSON.parse(r.fingerprints_json as string),
    status: r.status as RunStatus,
    createdAt: r.created_at as string,
    updatedAt: r.updated_at as string,
    // a schema-2 database opened read-only has none of these columns
    settings: r.settings_json && r.settings_json !== '{}' ? JSON.parse(r.settings_json as string) : null,
    owner: r.owner_json ? JSON.parse(r.owner_json as string) : null,
    heartbeatAt: (r.heartbeat_at as string | null | undefined) ?? null,
    stopReason: (r.stop_reason as string | null | undefined) ?? null,
    error: (r.error as string | null | undefined) ?? null,
  };
}

function toCandidate(r: Row): CandidateRow {
  return {
    id: r.id as number,
    runId: r.run_id as number,
    stage: r.stage as number,
    generation: r.generation as number,
    proposalId: r.proposal_id as string,
    operator: r.operator as string,
    genome: JSON.parse(r.genome_json as string),
    recipe: JSON.parse(r.recipe_json as string),
    recipeHash: r.recipe_hash as string,
    state: r.state as CandidateState,
    fitness: (r.fitness as number | null) ?? null,
    objectives: r.objectives_json ? JSON.parse(r.objectives_json as string) : null,
    error: (r.error as string | null) ?? null,
    worker: (r.worker as string | null) ?? null,
    backend: (r.backend as string | null) ?? null,
    reusedFrom: (r.reused_from as number | null) ?? null,
    told: r.told === 1,
    createdAt: r.created_at as string,
    startedAt: (r.started_at as string | null) ?? null,
    finishedAt: (r.finished_at as string | null) ?? null,
    evalMs: (r.eval_ms as number | null) ?? null,
    threshold: (r.threshold as number | null | undefined) ?? null,
    fidelity: (r.fidelity as number | null | undefined) ?? null,
    itemEvals: (r.item_evals as number | null | undefined) ?? null,
    phases: {
      mergeStart: (r.merge_start as number | null | undefined) ?? null, mergeEnd: (r.merge_end as number | null | undefined) ?? null,
      writeMs: (r.write_ms as number | null | undefined) ?? null, scoreStart: (r.score_start as number | null | undefined) ?? null,
      scoreEnd: (r.score_end as number | null | undefined) ?? null, slot: (r.slot as string | null | undefined) ?? null,
    },
  };
}

export class RunStore {
  readonly path: string;
  readonly db: Database.Database;
  readonly readonly: boolean;
  /**
   * SQL that holds for a score that may rank as best: one on all of its items (fidelity null or
   * 1). A schema-1 database opened read-only has no fidelity column and only full scores.
   */
  private fullScore = '(fidelity IS NULL OR fidelity >= 1)';

  private constructor(path: string, db: Database.Database, readonly: boolean) {
    this.path = path;
    this.db = db;
    this.readonly = readonly;
    // every write that fails for lack of space (or an I/O error) says so, and how to go on
    for (const name of WRITES) {
      const write = this[name] as (...args: unknown[]) => unknown;
      (this as Record<string, unknown>)[name] = (...args: unknown[]) => {
        try {
          return write.apply(this, args);
        } catch (err) {
          throw storeWriteFailure(err, path);
        }
      };
    }
  }

  /** Open (creating when allowed) a run database. */
  static open(path: string, options: { readonly?: boolean; create?: boolean } = {}): RunStore {
    const readonly = options.readonly ?? false;
    if (!readonly && options.create !== false) mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(path, { readonly, fileMustExist: readonly || options.create === false });
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.code === 'SQLITE_CANTOPEN') throw new InputError('E_NO_RUN_DB', `${path}: no run database there; check --db or the run name (evomerge runs lists them)`);
      throw new RuntimeFailure('E_DB_OPEN', `${path}: cannot open the run database (${e.message})`, { cause: err });
    }
    try {
      db.pragma('busy_timeout = 5000');
      if (!readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
      }
      db.pragma('foreign_keys = ON');
      const store = new RunStore(path, db, readonly);
      store.migrate();
      return store;
    } catch (err) {
      db.close();
      if (err instanceof InputError) throw err;
      const e = err as Error & { code?: string };
      if (e.code === 'SQLITE_NOTADB' || e.code === 'SQLITE_CORRUPT') {
        throw new InputError('E_DB_CORRUPT', `${path}: not a run database, or a damaged one (${e.message})`);
      }
      throw storeWriteFailure(err, path);
    }
  }

  private migrate(): void {
    const hasMeta = this.db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get();
    if (hasMeta) {
      const row = this.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined;
      const version = row ? Number(row.value) : NaN;
      if (Number.isInteger(version) && version >= 1 && version < SCHEMA_VERSION) {
        if (this.readonly) {
          // read as it is: a schema-1 run has no partial scores (`evomerge status` of an old run)
          if (version === 1) this.fullScore = '1';
          return;
        }
        // a table rebuilt by a migration is dropped while others still reference it: foreign
        // keys are off for the migration (it cannot change inside a transaction) and checked
        // before it commits
        this.db.pragma('foreign_keys = OFF');
        try {
          this.db.transaction(() => {
            for (const step of MIGRATIONS.slice(version - 1)) for (const ddl of step) this.db.exec(ddl);
            const broken = this.db.pragma('foreign_key_check') as unknown[];
            if (broken.length > 0) throw new RuntimeFailure('E_DB_MIGRATE', `${this.path}: migrating the run database to schema ${SCHEMA_VERSION} broke ${broken.length} references; the database is unchanged`);
            this.db.prepare(`UPDATE meta SET value = ? WHERE key = 'schema_version'`).run(String(SCHEMA_VERSION));
          })();
        } finally {
          this.db.pragma('foreign_keys = ON');
        }
        return;
      }
      if (version !== SCHEMA_VERSION) {
        throw new InputError('E_DB_VERSION', `${this.path}: run database schema version ${row?.value ?? 'unknown'}, this evomerge reads version ${SCHEMA_VERSION}; use the evomerge version that wrote it`);
      }
      return;
    }
    if (this.readonly) throw new InputError('E_DB_EMPTY', `${this.path}: this file holds no evomerge run`);
    this.db.transaction(() => {
      for (const ddl of DDL) this.db.exec(ddl);
      this.db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('created_by', 'evomerge')`).run(String(SCHEMA_VERSION));
    })();
  }

  /** Run `fn` in one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  // --- runs -------------------------------------------------------------------------------

  createRun(run: NewRun): RunRow {
    if (this.run(run.name)) {
      throw new InputError('E_RUN_EXISTS', `a run named '${run.name}' already exists in ${this.path}; continue it with 'evomerge resume ${run.name}' or choose another --run name`);
    }
    const t = now();
    const info = this.db.prepare(
      `INSERT INTO runs (name, space_json, space_path, code_version, seed, fingerprints_json, status, created_at, updated_at, settings_json, owner_json, heartbeat_at)
       VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)`,
    ).run(run.name, JSON.stringify(run.space), run.spacePath ?? null, run.codeVersion, run.seed, JSON.stringify(run.fingerprints ?? {}), t, t,
      JSON.stringify(run.settings ?? {}), run.owner ? JSON.stringify(run.owner) : null, run.owner ? t : null);
    return this.runById(Number(info.lastInsertRowid))!;
  }

  run(name: string): RunRow | undefined {
    const r = this.db.prepare(`SELECT * FROM runs WHERE name = ?`).get(name) as Row | undefined;
    return r ? toRun(r) : undefined;
  }

  runById(id: number): RunRow | undefined {
    const r = this.db.prepare(`SELECT * FROM runs WHERE id = ?`).get(id) as Row | undefined;
    return r ? toRun(r) : undefined;
  }

  runs(): RunRow[] {
    return (this.db.prepare(`SELECT * FROM runs ORDER BY id`).all() as Row[]).map(toRun);
  }

  setRunStatus(runId: number, status: RunStatus): void {
    this.db.prepare(`UPDATE runs SET status = ?, updated_at = ? WHERE id = ?`).run(status, now(), runId);
  }

  /** Take the run's lease for `owner` (a new session): status 'running', the last end cleared. */
  claimRun(runId: number, owner: RunOwner): void {
    const t = now();
    this.db.prepare(`UPDATE runs SET status = 'running', owner_json = ?, heartbeat_at = ?, stop_reason = NULL, error = NULL, updated_at = ? WHERE id = ?`)
      .run(JSON.stringify(owner), t, t, runId);
  }

  /**
   * Renew the lease of the session holding `token`. Returns false when another session has
   * taken the run meanwhile (this one was presumed dead): the caller must stop writing.
   */
  heartbeat(runId: number, token: string): boolean {
    return this.db.prepare(`UPDATE runs SET heartbeat_at = ? WHERE id = ? AND json_extract(owner_json, '$.token') = ?`).run(now(), runId, token).changes > 0;
  }

  /** The session holding `token` ends the run: its status, why, and the error of a failed run. */
  endRun(runId: number, token: string, end: { status: Exclude<RunStatus, 'running'>; reason: string; error?: string | null }): boolean {
    return this.db.prepare(`UPDATE runs SET status = ?, stop_reason = ?, error = ?, heartbeat_at = NULL, updated_at = ? WHERE id = ? AND json_extract(owner_json, '$.token') = ?`)
      .run(end.status, end.reason, end.error ?? null, now(), runId, token).changes > 0;
  }

  /** Record the run's effective settings (at its start, or changed by flags given to `resume`). */
  updateSettings(runId: number, settings: RunSettings): void {
    this.db.prepare(`UPDATE runs SET settings_json = ?, updated_at = ? WHERE id = ?`).run(JSON.stringify(settings), now(), runId);
  }

  // --- candidates ---------------------------------------------------------------------------

  /** Insert proposals as pending candidates, with their parents, in one transaction. */
  addCandidates(runId: number, candidates: readonly NewCandidate[]): CandidateRow[] {
    const insert = this.db.prepare(
      `INSERT INTO candidates (run_id, stage, generation, proposal_id, operator, genome_json, recipe_json, recipe_hash, state, created_at, threshold)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
    );
    const byProposal = this.db.prepare(`SELECT id FROM candidates WHERE run_id = ? AND stage = ? AND proposal_id = ?`);
    const link = this.db.prepare(`INSERT OR IGNORE INTO candidate_parents (candidate_id, parent_id, position, operator) VALUES (?, ?, ?, ?)`);
    return this.transaction(() => {
      const t = now();
      const ids: number[] = [];
      for (const c of candidates) {
        const info = insert.run(runId, c.stage, c.generation, c.proposalId, c.operator, JSON.stringify(c.genome), JSON.stringify(c.recipe), c.recipeHash, t, c.threshold ?? null);
        const id = Number(info.lastInsertRowid);
        ids.push(id);
        (c.parents ?? []).forEach((p, position) => {
          const parentId = typeof p === 'number' ? p : (byProposal.get(runId, c.stage, p) as { id: number } | undefined)?.id;
          if (parentId === undefined) {
            throw new RuntimeFailure('E_LINEAGE', `candidate '${c.proposalId}' names parent '${p}', which is not in the run (stage ${c.stage})`);
          }
          link.run(id, parentId, position, c.operator);
        });
      }
      return ids.map((id) => this.candidate(id)!);
    });
  }

  candidate(id: number): CandidateRow | undefined {
    const r = this.db.prepare(`SELECT * FROM candidates WHERE id = ?`).get(id) as Row | undefined;
    return r ? toCandidate(r) : undefined;
  }

  candidateByProposal(runId: number, stage: number, proposalId: string): CandidateRow | undefined {
    const r = this.db.prepare(`SELECT * FROM candidates WHERE run_id = ? AND stage = ? AND proposal_id = ?`).get(runId, stage, proposalId) as Row | undefined;
    return r ? toCandidate(r) : undefined;
  }

  candidates(runId: number, filter: { state?: CandidateState | CandidateState[]; stage?: number } = {}): CandidateRow[] {
    const states = filter.state === undefined ? null : Array.isArray(filter.state) ? filter.state : [filter.state];
    const where = ['run_id = ?'];
    const args: unknown[] = [runId];
    if (states) {
      where.push(`state IN (${states.map(() => '?').join(', ')})`);
      args.push(...states);
    }
    if (filter.stage !== undefined) {
      where.push('stage = ?');
      args.push(filter.stage);
    }
    return (this.db.prepare(`SELECT * FROM candidates WHERE ${where.join(' AND ')} ORDER BY id`).all(...args) as Row[]).map(toCandidate);
  }

  markRunning(candidateId: number, worker: string | null): void {
    this.db.prepare(`UPDATE candidates SET state = 'running', worker = ?, started_at = ? WHERE id = ? AND state IN ('pending', 'running')`).run(worker, now(), candidateId);
  }

  /**
   * Record a candidate's outcome once: a second result for a finished candidate (a retry, a
   * duplicate delivery) is ignored and `false` returned. NaN fitness counts as a failure.
   */
  recordResult(candidateId: number, result: CandidateResult): boolean {
    const fitness = result.fitness === null || Number.isNaN(result.fitness) ? null : result.fitness;
    const failed = fitness === null;
    const error = failed ? result.error ?? (result.fitness === null ? 'no fitness returned' : 'fitness is NaN') : result.error ?? null;
    const ph = result.phases;
    return this.transaction(() => {
      const info = this.db.prepare(
        `UPDATE candidates SET state = ?, fitness = ?, objectives_json = ?, error = ?, worker = COALESCE(?, worker), backend = ?, eval_ms = ?, reused_from = ?, finished_at = ?, fidelity = ?, item_evals = ?,
           merge_start = ?, merge_end = ?, write_ms = ?, score_start = ?, score_end = ?, slot = ?
         WHERE id = ? AND state IN ('pending', 'running')`,
      ).run(failed ? 'failed' : 'done', fitness, result.objectives ? JSON.stringify(result.objectives) : null, error,
        result.worker ?? null, result.backend ?? null, result.evalMs ?? null, result.reusedFrom ?? null, now(), result.fidelity ?? null, result.itemEvals ?? null,
        ph?.mergeStart ?? null, ph?.mergeEnd ?? null, ph?.writeMs ?? null, ph?.scoreStart ?? null, ph?.scoreEnd ?? null, ph?.slot ?? null, candidateId);
      if (info.changes === 0) return false;
      const put = this.db.prepare(`INSERT OR REPLACE INTO metrics (candidate_id, evaluator, metric, value) VALUES (?, ?, ?, ?)`);
      for (const m of result.metrics ?? []) put.run(candidateId, m.evaluator, m.metric, m.value === null || Number.isNaN(m.value) ? null : m.value);
      return true;
    });
  }

  /**
   * Put a stage's failed candidates that the optimizer was not told back to pending (their error,
   * scores and metrics cleared), so a resumed run evaluates them again: what a run stopped by a
   * set-up error does, since their failure said nothing about their genomes. Returns how many.
   */
  retryFailed(runId: number, stage: number): number {
    return this.transaction(() => {
      const ids = (this.db.prepare(`SELECT id FROM candidates WHERE run_id = ? AND stage = ? AND state = 'failed' AND told = 0`).all(runId, stage) as Row[]).map((r) => r.id as number);
      const clear = this.db.prepare(`DELETE FROM metrics WHERE candidate_id = ?`);
      const reset = this.db.prepare(`UPDATE candidates SET state = 'pending', fitness = NULL, objectives_json = NULL, error = NULL, eval_ms = NULL, finished_at = NULL, fidelity = NULL, item_evals = NULL,
        merge_start = NULL, merge_end = NULL, write_ms = NULL, score_start = NULL, score_end = NULL, slot = NULL WHERE id = ?`);
      for (const id of ids) {
        clear.run(id);
        reset.run(id);
      }
      return ids.length;
    });
  }

  /**
   * A finished, successful candidate of this run with the same recipe hash, if any, whose score a
   * candidate proposed with `threshold` may take. Multi-fidelity (space `fidelity`): a score on
   * all items always; a partial one only from a candidate proposed with a threshold at most this
   * one's, since the worker's racing (src/candidate/fidelity.ts) would stop this candidate at that
   * rung or earlier, so the score reused is of equal or higher fidelity. Without fidelity every
   * score is full and the earliest is taken, as before.
   */
  scoredByHash(runId: number, recipeHash: string, threshold: number | null = null): CandidateRow | undefined {
    const rows = (this.db.prepare(`SELECT * FROM candidates WHERE run_id = ? AND recipe_hash = ? AND state = 'done' ORDER BY id`).all(runId, recipeHash) as Row[]).map(toCandidate);
    return rows.find((c) => c.fidelity === null || c.fidelity >= 1 || (threshold !== null && c.threshold !== null && c.threshold <= threshold));
  }

  /**
   * The k best finished candidates, best first (ties: earlier first). Failures never rank, nor
   * scores on part of the items (multi-fidelity): only a full-fidelity score can be the best.
   */
  best(runId: number, k = 1): CandidateRow[] {
    return (this.db.prepare(`SELECT * FROM candidates WHERE run_id = ? AND state = 'done' AND fitness IS NOT NULL AND ${this.fullScore} ORDER BY fitness DESC, id ASC LIMIT ?`).all(runId, k) as Row[]).map(toCandidate);
  }

  /**
   * What evaluation cost: items scored (summed over candidates and evaluators) and, for runs with
   * `fidelity`, finished candidates by the fraction of items their score rests on.
   */
  itemEvaluations(runId: number, stage?: number): { items: number; byFidelity: Array<{ fidelity: number; candidates: number }> } {
    if (this.fullScore === '1') return { items: 0, byFidelity: [] };
    const where = stage === undefined ? 'run_id = ?' : 'run_id = ? AND stage = ?';
    const args = stage === undefined ? [runId] : [runId, stage];
    const items = (this.db.prepare(`SELECT COALESCE(SUM(item_evals), 0) AS n FROM candidates WHERE ${where}`).get(...args) as { n: number }).n;
    const byFidelity = this.db.prepare(`SELECT fidelity, COUNT(*) AS candidates FROM candidates WHERE ${where} AND state = 'done' AND fidelity IS NOT NULL GROUP BY fidelity ORDER BY fidelity`).all(...args) as Array<{ fidelity: number; candidates: number }>;
    return { items, byFidelity };
  }

  /**
   * What a stage's candidates cost of its budget (src/search/loop.ts): one per finished
   * candidate, or the fraction of the items its score rests on in a multi-fidelity run. With
   * `before`, over the candidates proposed before that one, counting each unfinished one as 1
   * (an upper bound) and saying how many are unfinished.
   */
  stageCost(runId: number, stage: number): number;
  stageCost(runId: number, stage: number, before: number): { upper: number; unfinished: number };
  stageCost(runId: number, stage: number, before?: number): number | { upper: number; unfinished: number } {
    if (before === undefined) {
      return (this.db.prepare(`SELECT COALESCE(SUM(COALESCE(${this.fullScore === '1' ? 'NULL' : 'fidelity'}, 1)), 0) AS n FROM candidates WHERE run_id = ? AND stage = ? AND state IN ('done', 'failed')`).get(runId, stage) as { n: number }).n;
    }
    const r = this.db.prepare(
      `SELECT COALESCE(SUM(CASE WHEN state IN ('done', 'failed') THEN COALESCE(${this.fullScore === '1' ? 'NULL' : 'fidelity'}, 1) ELSE 1 END), 0) AS upper,
              COALESCE(SUM(CASE WHEN state IN ('done', 'failed') THEN 0 ELSE 1 END), 0) AS unfinished
       FROM candidates WHERE run_id = ? AND stage = ? AND id < ?`,
    ).get(runId, stage, before) as { upper: number; unfinished: number };
    return r;
  }

  /**
   * Add metrics to a finished candidate without touching its state or fitness, in one
   * transaction (the scores of a second split, src/search/select.ts, which names them apart from
   * the search's evaluators). A metric already stored under the same evaluator and name is replaced.
   */
  addMetrics(candidateId: number, metrics: readonly MetricValue[]): void {
    const put = this.db.prepare(`INSERT OR REPLACE INTO metrics (candidate_id, evaluator, metric, value) VALUES (?, ?, ?, ?)`);
    this.transaction(() => {
      for (const m of metrics) put.run(candidateId, m.evaluator, m.metric, m.value === null || Number.isNaN(m.value) ? null : m.value);
    });
  }

  metrics(candidateId: number): MetricValue[] {
    return this.db.prepare(`SELECT evaluator, metric, value FROM metrics WHERE candidate_id = ? ORDER BY evaluator, metric`).all(candidateId) as MetricValue[];
  }

  counts(runId: number): Record<CandidateState, number> {
    const out: Record<CandidateState, number> = { pending: 0, running: 0, done: 0, failed: 0 };
    for (const r of this.db.prepare(`SELECT state, COUNT(*) AS n FROM candidates WHERE run_id = ? GROUP BY state`).all(runId) as Array<{ state: CandidateState; n: number }>) out[r.state] = r.n;
    return out;
  }

  /**
   * Ancestors of a candidate, breadth first: the candidate (depth 0), then each ancestor once, at
   * its smallest depth (steps back), by depth and id, each with its parents and the operator that
   * used them. `maxDepth` stops the walk: entries at that depth may list parents that are not
   * entries themselves. The walk keeps a set of visited ids, so its cost is one query per
   * ancestor whatever the depth (a CMA-ES child lists every parent of its generation).
   */
  lineage(candidateId: number, maxDepth = Infinity): LineageEntry[] {
    const parentsOf = this.db.prepare(`SELECT parent_id AS id, operator FROM candidate_parents WHERE candidate_id = ? ORDER BY position`);
    const seen = new Set([candidateId]);
    const out: LineageEntry[] = [];
    let level = [candidateId];
    for (let depth = 0; level.length > 0; depth++) {
      const next: number[] = [];
      for (const id of level.sort((a, b) => a - b)) {
        const candidate = this.candidate(id);
        if (!candidate) continue;
        const parents = parentsOf.all(id) as Array<{ id: number; operator: string }>;
        out.push({ candidate, depth, parents });
        if (depth >= maxDepth) continue;
        for (const p of parents) {
          if (seen.has(p.id)) continue;
          seen.add(p.id);
          next.push(p.id);
        }
      }
      level = next;
    }
    return out;
  }

  /**
   * The line of descent of a candidate: the candidate, its fittest parent, that parent's fittest
   * parent, and so on to a candidate without parents (one step per generation for the
   * optimizers here). The fittest parent has the highest fitness; failed or unscored parents come
   * last, ties go to the lower id.
   */
  fittestChain(candidateId: number): Array<{ candidate: CandidateRow; parents: number }> {
    const fittest = this.db.prepare(
      `SELECT p.parent_id AS id, (SELECT COUNT(*) FROM candidate_parents q WHERE q.candidate_id = p.candidate_id) AS n
       FROM candidate_parents p JOIN candidates c ON c.id = p.parent_id
       WHERE p.candidate_id = ? ORDER BY c.fitness IS NULL, c.fitness DESC, p.parent_id LIMIT 1`,
    );
    const out: Array<{ candidate: CandidateRow; parents: number }> = [];
    const seen = new Set<number>();
    let id: number | undefined = candidateId;
    while (id !== undefined && !seen.has(id)) {
      seen.add(id);
      const candidate = this.candidate(id);
      if (!candidate) break;
      const row = fittest.get(id) as { id: number; n: number } | undefined;
      out.push({ candidate, parents: row?.n ?? 0 });
      id = row?.id;
    }
    return out;
  }

  /** How many distinct ancestors a candidate has (parents, their parents, ...), at any depth. */
  ancestorCount(candidateId: number): number {
    const row = this.db.prepare(
      `WITH RECURSIVE anc(id) AS (
         SELECT ?
         UNION
         SELECT p.parent_id FROM candidate_parents p JOIN anc ON p.candidate_id = anc.id
       )
       SELECT COUNT(*) - 1 AS n FROM anc`,
    ).get(candidateId) as { n: number };
    return row.n;
  }

  /** Candidates of a stage not yet told to the optimizer, in proposal order. */
  outstanding(runId: number, stage: number): CandidateRow[] {
    return (this.db.prepare(`SELECT * FROM candidates WHERE run_id = ? AND stage = ? AND told = 0 ORDER BY id`).all(runId, stage) as Row[]).map(toCandidate);
  }

  /**
   * One step of the search loop, atomically: mark the candidates whose outcomes were just told,
   * store the optimizer state that results from that tell and the following ask, and insert
   * the proposals of that ask. A kill before the commit leaves the previous step intact.
   */
  commitStep(runId: number, step: { stage: number; generation: number; optimizerState: unknown; told: readonly number[]; proposals: readonly NewCandidate[] }): CandidateRow[] {
    return this.transaction(() => {
      const mark = this.db.prepare(`UPDATE candidates SET told = 1 WHERE id = ? AND run_id = ?`);
      for (const id of step.told) mark.run(id, runId);
      this.saveGeneration(runId, step.stage, step.generation, step.optimizerState);
      return this.addCandidates(runId, step.proposals);
    });
  }

  // --- optimizer state --------------------------------------------------------------------

  saveGeneration(runId: number, stage: number, generation: number, optimizerState: unknown): void {
    this.db.prepare(`INSERT OR REPLACE INTO generations (run_id, stage, generation, optimizer_state, created_at) VALUES (?, ?, ?, ?, ?)`)
      .run(runId, stage, generation, JSON.stringify(optimizerState), now());
    this.db.prepare(`UPDATE runs SET updated_at = ? WHERE id = ?`).run(now(), runId);
  }

  /** The latest optimizer state (highest stage, then generation), optionally of one stage. */
  latestGeneration(runId: number, stage?: number): { stage: number; generation: number; state: unknown } | undefined {
    const r = (stage === undefined
      ? this.db.prepare(`SELECT stage, generation, optimizer_state FROM generations WHERE run_id = ? ORDER BY stage DESC, generation DESC LIMIT 1`).get(runId)
      : this.db.prepare(`SELECT stage, generation, optimizer_state FROM generations WHERE run_id = ? AND stage = ? ORDER BY generation DESC LIMIT 1`).get(runId, stage)) as
      | { stage: number; generation: number; optimizer_state: string } | undefined;
    return r ? { stage: r.stage, generation: r.generation, state: JSON.parse(r.optimizer_state) } : undefined;
  }

  // --- events -------------------------------------------------------------------------------

  event(runId: number | null, kind: string, message: string, data?: unknown): void {
    this.db.prepare(`INSERT INTO events (run_id, at, kind, message, data_json) VALUES (?, ?, ?, ?, ?)`)
      .run(runId, now(), kind, message, data === undefined ? null : JSON.stringify(data));
  }

  events(runId: number, limit = 100): Array<{ at: string; kind: string; message: string; data: unknown }> {
    return (this.db.prepare(`SELECT at, kind, message, data_json FROM events WHERE run_id = ? ORDER BY id DESC LIMIT ?`).all(runId, limit) as Row[])
      .map((r) => ({ at: r.at as string, kind: r.kind as string, message: r.message as string, data: r.data_json ? JSON.parse(r.data_json as string) : null }))
      .reverse();
  }

  /** SQLite's own consistency check: 'ok' when the file is sound. */
  integrityCheck(): string {
    return (this.db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check).join('; ');
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
