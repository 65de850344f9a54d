/**
 * Small utilities: atomic file writes, progress display.
 *
 * @module
 */

export * from "./fs.ts";
export * from "./progress.ts";
export * from "./run_lock.ts";
