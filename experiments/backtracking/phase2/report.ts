/**
 * The Phase-2 sections of `report.md`: each Phase-2 step stores its section (markdown built from its
 * numbers) in `analysis/phase2_<name>.json`; this reads the ones that exist, in a fixed order.
 *
 * @module
 */

import { join } from "node:path";

/** A report section. */
export interface ReportSection {
  readonly title: string;
  readonly markdown: string;
}

/** The section files, in report order. */
export const PHASE2_SECTION_FILES = [
  "analysis/phase2_sweeps.json",
  "analysis/phase2_steering.json",
  "analysis/phase2_continuation.json",
  "analysis/phase2_patching.json",
] as const;

/**
 * The Phase-2 sections of a run folder (synchronous: the report builder is).
 *
 * @param runDir The run folder.
 * @returns The sections of the Phase-2 outputs that exist (none for a Phase-1-only run).
 * @throws {SyntaxError} naming the file when one exists but is not valid JSON.
 */
export function phase2ReportSections(runDir: string): ReportSection[] {
  const out: ReportSection[] = [];
  for (const rel of PHASE2_SECTION_FILES) {
    let text: string;
    try {
      text = Deno.readTextFileSync(join(runDir, rel));
    } catch {
      continue;
    }
    try {
      const s = (JSON.parse(text) as { section?: ReportSection }).section;
      if (s && typeof s.title === "string" && typeof s.markdown === "string") out.push(s);
    } catch (e) {
      throw new SyntaxError(`${join(runDir, rel)} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  return out;
}
