/**
 * The run database: one schema, the single source of truth of a search. Anything not here is
 * lost when the process dies; everything here is enough to resume. Optimizer state and
 * lineage have tables and columns of their own, as plain JSON and rows (not pickles).
 */
export const SCHEMA_VERSION = 4;

/**
 * Columns added after version 1, in order: a database of version v gets MIGRATIONS[v - 1 ...]
 * applied (RunStore.migrate), so a run started before them opens, resumes and reports.
 */
/**
 * The runs table. `status` is what the owner last wrote: 'running' while a search holds the run
 * (a live owner renews `heartbeat_at`; with none alive, readers call the run 'interrupted', see
 * lease.ts), then 'finished', 'stopped' (Ctrl-C, a closed output) or 'failed', with the reason in
 * `stop_reason` and the error in `error`. `settings_json` holds the run's effective settings (the
 * space's, with every command-line override), which `resume` continues with.
 */
function RUNS_TABLE(name: string): string {
  return `CREATE TABLE IF NOT EXISTS ${name} (
     id INTEGER PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     space_json TEXT NOT NULL,
     space_path TEXT,
     code_version TEXT NOT NULL,
     seed INTEGER NOT NULL,
     fingerprints_json TEXT NOT NULL DEFAULT '{}',
     status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'finished', 'stopped', 'failed')),
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     settings_json TEXT NOT NULL DEFAULT '{}',
     owner_json TEXT,
     heartbeat_at TEXT,
     stop_reason TEXT,
     error TEXT
   )`;
}

export const MIGRATIONS: readonly (readonly string[])[] = [
  // 1 -> 2: multi-fidelity evaluation (space `fidelity`)
  [
    `ALTER TABLE candidates ADD COLUMN threshold REAL`,
    `ALTER TABLE candidates ADD COLUMN fidelity REAL`,
    `ALTER TABLE candidates ADD COLUMN item_evals INTEGER`,
  ],
  // 2 -> 3: the run's effective settings and its owner's lease. The status CHECK gains 'failed',
  // and SQLite cannot change a CHECK in place, so the table is rebuilt (SQLite's documented
  // "generalized ALTER TABLE" procedure; RunStore.migrate turns foreign keys off around it)
  [
    RUNS_TABLE('runs_v3'),
    `INSERT INTO runs_v3 (id, name, space_json, space_path, code_version, seed, fingerprints_json, status, created_at, updated_at)
       SELECT id, name, space_json, space_path, code_version, seed, fingerprints_json, status, created_at, updated_at FROM runs`,
    `DROP TABLE runs`,
    `ALTER TABLE runs_v3 RENAME TO runs`,
  ],
  // 3 -> 4: when each phase of a candidate ran (merge, scoring) and on which evaluation slot
  [
    `ALTER TABLE candidates ADD COLUMN merge_start REAL`,
    `ALTER TABLE candidates ADD COLUMN merge_end REAL`,
    `ALTER TABLE candidates ADD COLUMN write_ms REAL`,
    `ALTER TABLE candidates ADD COLUMN score_start REAL`,
    `ALTER TABLE candidates ADD COLUMN score_end REAL`,
    `ALTER TABLE candidates ADD COLUMN slot TEXT`,
  ],
];

export const DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS meta (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL
   )`,
  RUNS_TABLE('runs'),
  // optimizer state after each tell: the row with the highest (stage, generation) resumes the run
  `CREATE TABLE IF NOT EXISTS generations (
     run_id INTEGER NOT NULL REFERENCES runs(id),
     stage INTEGER NOT NULL,
     generation INTEGER NOT NULL,
     optimizer_state TEXT NOT NULL,
     created_at TEXT NOT NULL,
     PRIMARY KEY (run_id, stage, generation)
   )`,
  `CREATE TABLE IF NOT EXISTS candidates (
     id INTEGER PRIMARY KEY,
     run_id INTEGER NOT NULL REFERENCES runs(id),
     stage INTEGER NOT NULL,
     generation INTEGER NOT NULL,
     proposal_id TEXT NOT NULL,
     operator TEXT NOT NULL,
     genome_json TEXT NOT NULL,
     recipe_json TEXT NOT NULL,
     recipe_hash TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
     fitness REAL,
     objectives_json TEXT,
     error TEXT,
     worker TEXT,
     backend TEXT,
     reused_from INTEGER REFERENCES candidates(id),
     told INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL,
     started_at TEXT,
     finished_at TEXT,
     eval_ms REAL,
     -- multi-fidelity evaluation (space fidelity): the score to beat that the candidate was
     -- proposed with (null: none, scored in full), the fraction of each evaluator's items its
     -- score rests on (null: all, fidelity off), and the items its evaluators scored
     threshold REAL,
     fidelity REAL,
     item_evals INTEGER,
     -- the phases of a pipelined evaluation (src/pool/pipeline.ts), in milliseconds since the
     -- epoch: merging into the candidate's folder (write_ms of it spent writing) and scoring on
     -- an evaluation slot; null where the candidate was merged and scored in one thread
     merge_start REAL,
     merge_end REAL,
     write_ms REAL,
     score_start REAL,
     score_end REAL,
     slot TEXT,
     UNIQUE (run_id, stage, proposal_id)
   )`,
  `CREATE INDEX IF NOT EXISTS candidates_by_state ON candidates (run_id, state)`,
  `CREATE INDEX IF NOT EXISTS candidates_by_hash ON candidates (run_id, recipe_hash)`,
  `CREATE INDEX IF NOT EXISTS candidates_by_fitness ON candidates (run_id, fitness DESC)`,
  `CREATE TABLE IF NOT EXISTS candidate_parents (
     candidate_id INTEGER NOT NULL REFERENCES candidates(id),
     parent_id INTEGER NOT NULL REFERENCES candidates(id),
     position INTEGER NOT NULL,
     operator TEXT NOT NULL,
     PRIMARY KEY (candidate_id, parent_id)
   )`,
  `CREATE TABLE IF NOT EXISTS metrics (
     candidate_id INTEGER NOT NULL REFERENCES candidates(id),
     evaluator TEXT NOT NULL,
     metric TEXT NOT NULL,
     value REAL,
     PRIMARY KEY (candidate_id, evaluator, metric)
   )`,
  `CREATE TABLE IF NOT EXISTS events (
     id INTEGER PRIMARY KEY,
     run_id INTEGER REFERENCES runs(id),
     at TEXT NOT NULL,
     kind TEXT NOT NULL,
     message TEXT NOT NULL,
     data_json TEXT
   )`,
];

/** What the run's owner last wrote. */
export type RunStatus = 'running' | 'finished' | 'stopped' | 'failed';
/** What a reader sees: a 'running' run whose owner is gone is 'interrupted' (lease.ts). */
export type RunState = RunStatus | 'interrupted';

/** The process that holds a run (writes its candidates): renewed by a heartbeat. */
export interface RunOwner {
  pid: number;
  host: string;
  /** Random per session: a heartbeat or release by anyone else changes nothing. */
  token: string;
  startedAt: string;
}

/**
 * The effective settings of a run: the space's values with every command-line override
 * applied, as the run was (or is being) searched. `resume` continues with exactly these; a flag
 * given to `resume` changes what it names and is recorded in the run's events. `given` lists the
 * settings that came from the command line rather than the space.
 */
export interface RunSettings {
  budget: { evaluations?: number; minutes?: number };
  workers: number;
  seed: number;
  backend: string;
  /** Bytes; null: the machine's memory. */
  maxMemory: number | null;
  allowTestSplit: boolean;
  /** The queue the run's candidates go through (URL without its password), or null: the local pool. */
  queue: { url: string; slots?: number } | null;
  /** One evaluation slot per GPU id for command evaluators (absent or null: `workers` slots without a GPU). */
  gpus?: string[] | null;
  /** Where candidate folders go (absent or null: /dev/shm when the plan allows, else the temporary folder). */
  candidateDir?: string | null;
  given: string[];
}
export type CandidateState = 'pending' | 'running' | 'done' | 'failed';

export interface RunRow {
  id: number;
  name: string;
  space: unknown;
  spacePath: string | null;
  codeVersion: string;
  seed: number;
  fingerprints: Record<string, string>;
  status: RunStatus;
  createdAt: string;
  updatedAt: string;
  /** Null for a run started before schema 3 (its settings are the space's). */
  settings: RunSettings | null;
  owner: RunOwner | null;
  heartbeatAt: string | null;
  /** Why the run ended: the stages' stop reasons, 'Ctrl-C', ... (null while running). */
  stopReason: string | null;
  /** The error a failed run ended with. */
  error: string | null;
}

export interface CandidateRow {
  id: number;
  runId: number;
  stage: number;
  generation: number;
  proposalId: string;
  operator: string;
  genome: number[];
  recipe: unknown;
  recipeHash: string;
  state: CandidateState;
  fitness: number | null;
  objectives: number[] | null;
  error: string | null;
  worker: string | null;
  backend: string | null;
  reusedFrom: number | null;
  /** Whether the optimizer has been told this candidate's outcome (in a committed step). */
  told: boolean;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  evalMs: number | null;
  /** The full-fidelity score to beat the candidate was proposed with (space `fidelity`); null: scored in full. */
  threshold: number | null;
  /** The fraction of each evaluator's items its score rests on; null when the run has no `fidelity` (all items). */
  fidelity: number | null;
  /** Items its evaluators scored (0 when its score was reused); null when unknown (a failure, or a run of schema 1). */
  itemEvals: number | null;
  /** When its merge and its scoring ran, and on which slot (pipelined evaluation; null fields: unknown, or a run of schema 3 or older). */
  phases?: { mergeStart: number | null; mergeEnd: number | null; writeMs: number | null; scoreStart: number | null; scoreEnd: number | null; slot: string | null };
}

/** A score on every item, not a multi-fidelity estimate on part of them: only such a score can be a run's best. */
export function isFullFidelity(c: Pick<CandidateRow, 'fidelity'>): boolean {
  return c.fidelity === null || c.fidelity >= 1;
}
