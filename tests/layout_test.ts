/**
 * The two floors: nothing under the toolkit (`lib/`) imports from an experiment (`experiments/`), and
 * every toolkit folder has a `mod.ts` that `lib/mod.ts` re-exports. Inside the backtracking experiment,
 * steps depend on artifacts, not on each other (only the orchestrators call steps), and nothing below the
 * steps imports a step.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LIB = join(ROOT, "lib");

function* tsFiles(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* tsFiles(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

/** Every module specifier in `src`: static imports/exports, dynamic imports, `new URL(...)` paths. */
export function specifiers(src: string): string[] {
  const out: string[] = [];
  const patterns = [
    /\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\bnew\s+URL\s*\(\s*["']([^"']+)["']/g,
  ];
  for (const re of patterns) for (const m of src.matchAll(re)) out.push(m[1]!);
  return out;
}

Deno.test("specifiers: finds static, dynamic and URL imports", () => {
  const src = `import a from "./a.ts";\nexport { b } from '../b.ts';\nawait import("./c.ts");\n` +
    `new URL("../../experiments/x.ts", import.meta.url); import "./side.ts";`;
  assert.deepEqual(specifiers(src).sort(), [
    "../../experiments/x.ts",
    "../b.ts",
    "./a.ts",
    "./c.ts",
    "./side.ts",
  ]);
});

Deno.test("toolkit never imports from an experiment", () => {
  const offenders: string[] = [];
  for (const file of tsFiles(LIB)) {
    for (const spec of specifiers(Deno.readTextFileSync(file))) {
      if (!spec.startsWith(".")) continue;
      const target = relative(ROOT, resolve(dirname(file), spec));
      if (!target.startsWith("lib/") && !target.startsWith("lib\\")) {
        offenders.push(`${relative(ROOT, file)} imports ${spec} (→ ${target})`);
      }
    }
  }
  assert.deepEqual(offenders, [], `toolkit files reaching outside lib/:\n${offenders.join("\n")}`);
});

Deno.test("every toolkit folder has a mod.ts re-exported by lib/mod.ts", () => {
  const root = Deno.readTextFileSync(join(LIB, "mod.ts"));
  const folders = [...Deno.readDirSync(LIB)].filter((e) => e.isDirectory).map((e) => e.name).sort();
  for (const f of folders) {
    if (f === "bench") continue; // a program (deno task bench), not a library folder
    assert.ok(
      [...Deno.readDirSync(join(LIB, f))].some((e) => e.name === "mod.ts"),
      `lib/${f}/ has no mod.ts listing its public names`,
    );
    assert.match(root, new RegExp(`"\\./${f}/mod\\.ts"`), `lib/mod.ts does not re-export lib/${f}/mod.ts`);
  }
});

const BT = join(ROOT, "experiments", "backtracking");
const STEPS = join(BT, "steps");
/** Steps that run other steps in order (and the steps' index). */
const ORCHESTRATORS = new Set(["pipeline.ts", "phase2_run.ts", "mod.ts"]);

/** Relative imports of a file, resolved to project-relative paths. */
function relativeImports(file: string): string[] {
  return specifiers(Deno.readTextFileSync(file)).filter((s) => s.startsWith(".")).map((s) =>
    relative(ROOT, resolve(dirname(file), s)).replaceAll("\\", "/")
  );
}

Deno.test("backtracking steps import no other step (only pipeline.ts and phase2_run.ts call steps)", () => {
  const offenders: string[] = [];
  for (const file of tsFiles(STEPS)) {
    const name = relative(STEPS, file);
    if (ORCHESTRATORS.has(name)) continue;
    for (const target of relativeImports(file)) {
      if (target.startsWith("experiments/backtracking/steps/")) {
        offenders.push(`steps/${name} imports ${target}`);
      }
    }
  }
  assert.deepEqual(offenders, [], `steps depending on steps:\n${offenders.join("\n")}`);
});

Deno.test("backtracking: artifacts, context, settings and domain modules import no step", () => {
  // The entry points that run steps: notebooks' helpers, the CLI, the experiment's index.
  const entry = new Set(["notebook_params.ts", "mod.ts", "pipeline_main.ts"]);
  const offenders: string[] = [];
  for (const file of tsFiles(BT)) {
    const rel = relative(BT, file).replaceAll("\\", "/");
    if (rel.startsWith("steps/") || rel.startsWith("cli/") || entry.has(rel)) continue;
    for (const target of relativeImports(file)) {
      if (target.startsWith("experiments/backtracking/steps/")) offenders.push(`${rel} imports ${target}`);
    }
  }
  assert.deepEqual(offenders, [], `non-step modules importing steps:\n${offenders.join("\n")}`);
});

/** Literal paths of `new URL("<path>", import.meta.url)` in `src` (for a template, its part before `${`). */
export function moduleRelativeUrls(src: string): string[] {
  const out: string[] = [];
  for (const m of src.matchAll(/\bnew\s+URL\s*\(\s*(["'`])([^"'`]*?)\1?\s*,\s*import\.meta\.url\s*\)/g)) {
    const raw = m[2]!;
    const path = raw.includes("${") ? raw.slice(0, raw.split("${")[0]!.lastIndexOf("/") + 1) : raw;
    if (path.startsWith(".")) out.push(path);
  }
  return out;
}

Deno.test("moduleRelativeUrls: literal and template paths, up to the template's last folder", () => {
  const src = 'new URL("../../deno.json", import.meta.url);\n' +
    "new URL(`../node_modules/x/ttf/${f}`, import.meta.url);\nnew URL(url);";
  assert.deepEqual(moduleRelativeUrls(src), ["../../deno.json", "../node_modules/x/ttf/"]);
});

Deno.test("files found relative to a module (new URL(…, import.meta.url)) exist after the move", () => {
  const missing: string[] = [];
  for (const dir of [LIB, join(ROOT, "experiments")]) {
    for (const file of tsFiles(dir)) {
      for (const path of moduleRelativeUrls(Deno.readTextFileSync(file))) {
        const target = resolve(dirname(file), path);
        try {
          Deno.statSync(target);
        } catch {
          missing.push(`${relative(ROOT, file)}: ${path} (→ ${relative(ROOT, target)})`);
        }
      }
    }
  }
  assert.deepEqual(missing, [], `module-relative paths that do not exist:\n${missing.join("\n")}`);
});

Deno.test("run metadata records the pinned library versions of deno.json", async () => {
  const { libraryVersions } = await import("../experiments/backtracking/run.ts");
  const denoJson = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  const pin = (pkg: string) => /@([^@/]+)$/.exec(denoJson.imports[pkg])![1];
  const v = await libraryVersions();
  assert.equal(v.onnxruntime, pin("onnxruntime-node"));
  assert.equal(v.polars, pin("nodejs-polars"));
});
