import assert from "node:assert/strict";
import {
  createProgress,
  detectProgressMode,
  formatDuration,
  formatProgress,
  formatRate,
  type JupyterDisplay,
} from "../lib/util/progress.ts";

function fakeClock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

Deno.test("formatDuration", () => {
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(7.4), "0:07");
  assert.equal(formatDuration(754), "12:34");
  assert.equal(formatDuration(3723), "1:02:03");
  assert.equal(formatDuration(100 * 3600), "100:00:00");
  assert.equal(formatDuration(Number.NaN), "?");
  assert.equal(formatDuration(Infinity), "?");
  assert.equal(formatDuration(-1), "?");
});

Deno.test("formatRate", () => {
  assert.equal(formatRate(0, "tok"), "0 tok/s");
  assert.equal(formatRate(0.4123, "samples"), "0.412 samples/s");
  assert.equal(formatRate(3.14159, "tok"), "3.14 tok/s");
  assert.equal(formatRate(35.24, "tok"), "35.2 tok/s");
  assert.equal(formatRate(352.4, "tok"), "352 tok/s");
  assert.equal(formatRate(1234, "tok"), "1.23k tok/s");
  assert.equal(formatRate(2.5e6, "tok"), "2.50M tok/s");
  assert.equal(formatRate(Number.NaN, "tok"), "? tok/s");
});

Deno.test("formatProgress: rates, ETA, resumed runs", () => {
  const base = { unit: "samples", total: 600, initial: 0, tokens: 0 };
  assert.equal(
    formatProgress({ ...base, label: "gen", completed: 120, tokens: 61440, elapsedSeconds: 240 }),
    "gen: 120/600 samples (20%) | 0.500 samples/s | 256 tok/s | elapsed 4:00 | ETA 16:00",
  );
  // 300 resumed: only the 60 done in this run count for the rate.
  assert.equal(
    formatProgress({ ...base, completed: 360, initial: 300, elapsedSeconds: 120 }),
    "360/600 samples (60%) | 0.500 samples/s | elapsed 2:00 | ETA 8:00",
  );
  assert.equal(
    formatProgress({ ...base, completed: 0, elapsedSeconds: 0 }),
    "0/600 samples (0%) | ? samples/s | elapsed 0:00 | ETA ?",
  );
  assert.equal(
    formatProgress({ ...base, completed: 600, elapsedSeconds: 60 }),
    "600/600 samples (100%) | 10.0 samples/s | elapsed 1:00 | done",
  );
});

Deno.test("detectProgressMode", () => {
  assert.equal(detectProgressMode({ inNotebook: true, stderrIsTerminal: true }), "notebook");
  assert.equal(detectProgressMode({ inNotebook: false, stderrIsTerminal: true }), "tty");
  assert.equal(detectProgressMode({ inNotebook: false, stderrIsTerminal: false }), "log");
});

Deno.test("tty mode redraws one line with \\r, throttled to 10 Hz", async () => {
  const clock = fakeClock();
  const out: string[] = [];
  const p = createProgress({ total: 100, stream: "tty", now: clock.now, write: (s) => out.push(s) });
  for (let i = 0; i < 100; i++) {
    clock.advance(10);
    p.tick(1, { tokens: 10 });
  }
  await p.done();
  // 1 s of ticks every 10 ms: the initial line, ~10 redraws, the final line.
  assert.ok(out.length >= 10 && out.length <= 13, `${out.length} writes`);
  assert.ok(out.every((s) => s.startsWith("\r")));
  assert.ok(!out.slice(0, -1).some((s) => s.includes("\n")));
  const last = out.at(-1)!;
  assert.ok(last.startsWith("\r") && last.endsWith("\x1b[K\n"), JSON.stringify(last));
  assert.match(last, /100\/100 samples \(100%\) \| 100 samples\/s \| 1.00k tok\/s \| elapsed 0:01 \| done/);
  p.tick(5);
  await p.done();
  assert.equal(p.completed, 100, "ticks after done are ignored");
});

Deno.test("log mode prints at each 10 % and after 30 s of silence", async () => {
  const clock = fakeClock();
  const out: string[] = [];
  const p = createProgress({
    total: 50,
    label: "gen",
    stream: "log",
    now: clock.now,
    write: (s) => out.push(s),
  });
  for (let i = 0; i < 50; i++) {
    clock.advance(100);
    p.tick();
  }
  assert.equal(out.length, 11, out.join("")); // start + 10 deciles
  out.length = 0;
  const slow = createProgress({ total: 1000, stream: "log", now: clock.now, write: (s) => out.push(s) });
  for (let i = 0; i < 20; i++) {
    clock.advance(10_000);
    slow.tick();
  }
  assert.equal(out.length, 1 + 6, "start + one line per 30 s over 200 s");
  await slow.done();
  await p.done();
  assert.ok(out.every((s) => s.endsWith("\n") && !s.includes("\r")));
});

Deno.test("notebook mode displays once then updates the same display id, throttled", async () => {
  const clock = fakeClock();
  const calls: { bundle: Record<string, string>; update: boolean; id: string }[] = [];
  const jupyter: JupyterDisplay = {
    display(bundle, o) {
      calls.push({ bundle, update: o.update ?? false, id: o.display_id ?? "" });
      return Promise.resolve();
    },
  };
  const p = createProgress({
    total: 10,
    stream: "auto",
    now: clock.now,
    jupyter,
    write: () => assert.fail("wrote text"),
  });
  for (let i = 0; i < 10; i++) {
    clock.advance(200);
    p.tick();
  }
  await p.done();
  assert.equal(calls[0]!.update, false);
  assert.ok(calls.slice(1).every((c) => c.update && c.id === calls[0]!.id));
  assert.ok(calls.length >= 4 && calls.length <= 7, `${calls.length} displays over 2 s`);
  assert.match(calls.at(-1)!.bundle["text/plain"]!, /^10\/10 samples \(100%\).*done$/);
  assert.match(calls.at(-1)!.bundle["text/html"]!, /<progress value="1.0000" max="1"/);
});

Deno.test("invalid options are rejected by name", () => {
  assert.throws(() => createProgress({ total: -1 }), /"total" must be a non-negative integer, got -1/);
  assert.throws(() => createProgress({ total: 1, initial: 0.5 }), /"initial"/);
  assert.throws(() => createProgress({ total: 1, stream: "notebook" }), /deno jupyter/);
  assert.throws(() => createProgress({ total: 1, stream: "silent" }).tick(-1), /got -1/);
});

Deno.test("log mode prints the final state once (no duplicate 'done' line)", async () => {
  const { createProgress } = await import("../lib/util/progress.ts");
  const lines: string[] = [];
  let t = 0;
  const p = createProgress({ total: 4, stream: "log", now: () => t, write: (s) => lines.push(s) });
  for (let i = 0; i < 4; i++) {
    t += 1000;
    p.tick(1, { tokens: 10 });
  }
  await p.done();
  const done = lines.filter((l) => l.includes("done"));
  assert.equal(done.length, 1, lines.join(""));
});
