/**
 * Progress reporting for long loops (generation, teacher-forced passes): samples done / total,
 * throughput in tokens/s, elapsed time and ETA, shown in the way that suits where the code runs.
 *
 * - `"tty"` (stderr is a terminal): one line redrawn in place with `\r`, at most ~10 times a second.
 * - `"notebook"` (inside the `deno jupyter` kernel): one output updated in place through
 *   `Deno.jupyter.display(bundle, { raw: true, display_id, update })`, at most ~2 times a second.
 * - `"log"` (CI logs, pipes): one line per 10 % of the total, or after 30 s without a line.
 * - `"silent"`: nothing.
 *
 * @example
 * ```ts
 * import { createProgress } from "./progress.ts";
 * const progress = createProgress({ total: 600, label: "generate", unit: "samples" });
 * for (let i = 0; i < 600; i++) progress.tick(1, { tokens: 512 });
 * await progress.done();
 * ```
 *
 * @module
 */

/** Where and how progress is shown. */
export type ProgressMode = "tty" | "notebook" | "log" | "silent";

/** The part of `Deno.jupyter` used here. */
export interface JupyterDisplay {
  display(
    obj: Record<string, string>,
    options: { raw: boolean; update?: boolean; display_id?: string },
  ): Promise<void>;
}

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  /** Number of units to complete (a non-negative integer). */
  readonly total: number;
  /** Prefix of the line, e.g. `"generate baseline"`. Default none. */
  readonly label?: string;
  /** Name of the counted unit. Default `"samples"`. */
  readonly unit?: string;
  /** Display mode; `"auto"` (default) picks notebook, then tty, then log. */
  readonly stream?: "auto" | ProgressMode;
  /** Units already done before this run (e.g. resumed); counted as done, excluded from rates. Default 0. */
  readonly initial?: number;
  /** Clock in milliseconds, for tests. Default `performance.now`. */
  readonly now?: () => number;
  /** Text sink for `"tty"` and `"log"`, for tests. Default: synchronous writes to stderr. */
  readonly write?: (text: string) => void;
  /** Jupyter display API, for tests. Default `Deno.jupyter` when running inside the kernel. */
  readonly jupyter?: JupyterDisplay;
}

/** A running progress reporter. */
export interface Progress {
  /**
   * Record `n` more completed units (default 1) and optionally the tokens they produced.
   * Ignored after {@link Progress.done}.
   */
  tick(n?: number, info?: { readonly tokens?: number }): void;
  /** Show the final state (and end the terminal line). Idempotent. */
  done(): Promise<void>;
  /** Units completed so far, `initial` included. */
  readonly completed: number;
}

/** A snapshot of progress, the input of {@link formatProgress}. */
export interface ProgressState {
  readonly label?: string;
  readonly unit: string;
  readonly completed: number;
  readonly total: number;
  /** Units done before this run (not in the rates). */
  readonly initial: number;
  /** Tokens produced in this run. */
  readonly tokens: number;
  readonly elapsedSeconds: number;
}

const TTY_INTERVAL_MS = 100;
const NOTEBOOK_INTERVAL_MS = 500;
const LOG_INTERVAL_MS = 30_000;

/**
 * A duration as `m:ss` or `h:mm:ss`; `"?"` when unknown (negative, NaN or infinite).
 * @example
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * formatDuration(3723); // "1:02:03"
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * A rate with 3 significant digits and k/M suffixes, e.g. `"35.2 tok/s"`, `"1.23k tok/s"`; `"?"` when
 * not finite.
 * @example
 * ```ts
 * import { formatRate } from "./progress.ts";
 * formatRate(0.4123, "samples"); // "0.412 samples/s"
 * ```
 */
export function formatRate(perSecond: number, unit: string): string {
  if (!Number.isFinite(perSecond) || perSecond < 0) return `? ${unit}/s`;
  const [v, suffix] = perSecond >= 1e6
    ? [perSecond / 1e6, "M"]
    : perSecond >= 1e3
    ? [perSecond / 1e3, "k"]
    : [perSecond, ""];
  const text = v === 0
    ? "0"
    : v >= 100
    ? v.toFixed(0)
    : v >= 10
    ? v.toFixed(1)
    : v >= 1
    ? v.toFixed(2)
    : v.toPrecision(3);
  return `${text}${suffix} ${unit}/s`;
}

/**
 * The one-line summary: `label: 120/600 samples (20%) | 0.41 samples/s | 35.2 tok/s | 4:52 | ETA 19:29`.
 * Rates and ETA use this run's units (`completed - initial`) over its elapsed time.
 */
export function formatProgress(state: ProgressState): string {
  const { completed, total, initial, tokens, elapsedSeconds: t, unit } = state;
  const pct = total > 0 ? Math.floor((100 * completed) / total) : 100;
  const ran = completed - initial;
  const rate = t > 0 ? ran / t : Number.NaN;
  const eta = completed >= total ? 0 : rate > 0 ? (total - completed) / rate : Number.NaN;
  const parts = [
    `${completed}/${total} ${unit} (${pct}%)`,
    formatRate(rate, unit),
    ...(tokens > 0 ? [formatRate(t > 0 ? tokens / t : Number.NaN, "tok")] : []),
    `elapsed ${formatDuration(t)}`,
    completed >= total ? "done" : `ETA ${formatDuration(eta)}`,
  ];
  return `${state.label ? `${state.label}: ` : ""}${parts.join(" | ")}`;
}

/**
 * The mode `"auto"` resolves to: notebook inside the Jupyter kernel, tty when stderr is a terminal,
 * log otherwise.
 */
export function detectProgressMode(
  env: { readonly inNotebook: boolean; readonly stderrIsTerminal: boolean },
): ProgressMode {
  return env.inNotebook ? "notebook" : env.stderrIsTerminal ? "tty" : "log";
}

/**
 * Start a progress reporter.
 * @param options total, label, unit, mode and test hooks; see {@link ProgressOptions}.
 * @returns the reporter; call `tick` as units complete and `await done()` at the end.
 * @throws {RangeError} when `total` or `initial` is not a non-negative integer.
 * @example
 * ```ts
 * import { createProgress } from "./progress.ts";
 * const p = createProgress({ total: 3, stream: "silent" });
 * p.tick(); p.tick(2, { tokens: 100 });
 * await p.done();
 * ```
 */
export function createProgress(options: ProgressOptions): Progress {
  const { total } = options;
  const initial = options.initial ?? 0;
  if (!Number.isSafeInteger(total) || total < 0) {
    throw new RangeError(`Progress "total" must be a non-negative integer, got ${total}`);
  }
  if (!Number.isSafeInteger(initial) || initial < 0) {
    throw new RangeError(`Progress "initial" must be a non-negative integer, got ${initial}`);
  }
  const now = options.now ?? (() => performance.now());
  const jupyter = options.jupyter ?? kernelJupyter();
  const requested = options.stream ?? "auto";
  const mode: ProgressMode = requested === "auto"
    ? detectProgressMode({ inNotebook: jupyter !== undefined, stderrIsTerminal: stderrIsTerminal() })
    : requested;
  if (mode === "notebook" && !jupyter) {
    throw new RangeError(
      'Progress stream "notebook" needs the `deno jupyter` kernel (Deno.jupyter unavailable)',
    );
  }
  const write = options.write ?? writeStderr;
  const start = now();
  const displayId = `progress-${crypto.randomUUID()}`;
  let completed = initial;
  let tokens = 0;
  let finished = false;
  let lastShown = -Infinity;
  let lastDecile = Math.floor((10 * completed) / Math.max(total, 1));
  let displayed = false;
  let lastLogged = -1;
  let pending: Promise<void> = Promise.resolve();

  const line = () =>
    formatProgress({
      ...(options.label === undefined ? {} : { label: options.label }),
      unit: options.unit ?? "samples",
      completed,
      total,
      initial,
      tokens,
      elapsedSeconds: (now() - start) / 1000,
    });

  const show = (final: boolean) => {
    const t = now();
    switch (mode) {
      case "tty":
        if (!final && t - lastShown < TTY_INTERVAL_MS) return;
        write(`\r${line()}\x1b[K${final ? "\n" : ""}`);
        break;
      case "log": {
        const decile = Math.floor((10 * completed) / Math.max(total, 1));
        if (!final && decile <= lastDecile && t - lastShown < LOG_INTERVAL_MS) return;
        // The final state may already be on the last line (the 100% decile): print it once.
        if (final && completed === lastLogged) break;
        lastDecile = decile;
        lastLogged = completed;
        write(`${line()}\n`);
        break;
      }
      case "notebook": {
        if (!final && t - lastShown < NOTEBOOK_INTERVAL_MS) return;
        const text = line();
        const pct = total > 0 ? completed / total : 1;
        const bundle = {
          "text/plain": text,
          "text/html": `<div style="font-family:monospace"><progress value="${pct.toFixed(4)}" max="1" ` +
            `style="width:20em;vertical-align:middle"></progress> ${escapeHtml(text)}</div>`,
        };
        const update = displayed;
        displayed = true;
        pending = pending
          .then(() => jupyter!.display(bundle, { raw: true, update, display_id: displayId }))
          .catch(() => {});
        break;
      }
      case "silent":
        return;
    }
    lastShown = t;
  };

  show(false);
  return {
    tick(n = 1, info = {}) {
      if (finished) return;
      if (!(Number.isFinite(n) && n >= 0)) {
        throw new RangeError(`Progress tick must be a non-negative number, got ${n}`);
      }
      completed += n;
      tokens += info.tokens ?? 0;
      show(false);
    },
    async done() {
      if (!finished) {
        finished = true;
        show(true);
      }
      await pending;
    },
    get completed() {
      return completed;
    },
  };
}

/** The `Deno.jupyter` display API when running inside the `deno jupyter` kernel, else undefined. */
export function kernelJupyter(): JupyterDisplay | undefined {
  if (!("jupyter" in Deno)) return undefined;
  try {
    // Outside the `deno jupyter` kernel the getter throws.
    const j = (Deno as unknown as { jupyter?: Partial<JupyterDisplay> }).jupyter;
    return typeof j?.display === "function" ? (j as JupyterDisplay) : undefined;
  } catch {
    return undefined;
  }
}

function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

function writeStderr(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
