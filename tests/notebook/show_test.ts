/**
 * Table display (issue 16 item 4): small p-values print in scientific notation rather than `0.000`, wide
 * snake_case headers may wrap after "_" and the table scrolls in its own box; token views mark onsets.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  cellText,
  columnKind,
  pct,
  pctCI,
  pValue,
  tableBundle,
  tokensBundle,
} from "../../lib/notebook/show.ts";
import { ciPct, ciPp, fixed, pp } from "../../lib/tables/format.ts";

Deno.test("cellText: p-values in scientific notation where fixed would print zero; other floats fixed", () => {
  assert.equal(cellText(9.1e-13, 3, "p"), "9.1e-13"); // printed "0.000" before
  assert.equal(cellText(0.0004, 3, "p"), "4e-4");
  assert.equal(cellText(0.0005, 3, "p"), "0.001"); // rounds to a non-zero fixed value: kept fixed
  assert.equal(cellText(0, 3, "p"), "0.000");
  // the new-user trial: tiny non-p values switched to scientific inside 3-decimal columns (04 diff_logprob
  // "-8.83e-6" beside "0.49"), integral floats dropped their decimals ("0" beside "0.475"), NaN printed raw
  assert.equal(cellText(-8.83e-6, 3), "0.000");
  assert.equal(cellText(6.26e-4, 3), "0.001");
  assert.equal(cellText(-0.0004, 2), "0.00", "no -0.00");
  assert.equal(cellText(0, 3), "0.000");
  assert.equal(cellText(60, 3, "float"), "60.000");
  assert.equal(cellText(0.1234, 3), "0.123");
  assert.equal(cellText(12, 3, "int"), "12");
  assert.equal(cellText(1.5e12, 3), "1500000000000"); // integers as is
  assert.equal(cellText(1234567890.5, 3), "1.23e+9");
  assert.equal(cellText(Number.NaN, 3), "n/a");
});

Deno.test("columnKind: p-value columns by name, floats when any value is fractional, else integers", () => {
  assert.equal(columnKind("mcnemar_bt_p", [0.5]), "p");
  assert.equal(columnKind("p_value", [1]), "p");
  assert.equal(columnKind("bt_rate", [0, 0.475]), "float");
  assert.equal(columnKind("n", [80, 40]), "int");
  assert.equal(columnKind("unknown_rate", [0, 0]), "float", "a rate column of zeros printed 0 beside 0.000");
  assert.equal(columnKind("component", ["attn"]), "int");
  const b = tableBundle([{ n: 80, bt_rate: 0.475, d: -8.83e-6 }, { n: 40, bt_rate: 0, d: 0.49 }]);
  assert.match(b["text/html"], /<td>80<\/td><td>0\.475<\/td><td>0\.000<\/td>/);
  assert.match(b["text/html"], /<td>40<\/td><td>0\.000<\/td><td>0\.490<\/td>/);
});

Deno.test("tableBundle: headers break after underscores, the table scrolls in its own box", () => {
  const b = tableBundle([{ mcnemar_bt_p: 9.1e-13, n: 80 }]);
  assert.match(b["text/html"], /^<div style="overflow-x:auto;max-width:100%"><table>/);
  assert.match(b["text/html"], /<th>mcnemar_<wbr>bt_<wbr>p<\/th>/);
  assert.match(b["text/html"], /<td>9\.1e-13<\/td>/);
  assert.match(b["text/plain"], /mcnemar_bt_p/);
});

Deno.test("tokensBundle: marked tokens highlighted with their mark, visible whitespace, text fallback", () => {
  const b = tokensBundle([{ text: "5." }, { text: " Wait", mark: 'onset of "Wait"' }, { text: "\n" }]);
  assert.equal(b["text/plain"], "5.⟦ Wait⟧\n");
  assert.match(b["text/html"], /title="1: onset of &quot;Wait&quot;"[^>]*font-weight:bold[^>]*>·Wait</);
  assert.match(b["text/html"], />↵</);
  assert.match(b["text/html"], /<b>marked:<\/b> 1: onset of &quot;Wait&quot;/);
});

Deno.test("pValue: scientific below 0.001, two significant digits below 0.1, two decimals above", () => {
  assert.equal(pValue(9.1e-13), "9.1e-13"); // notebook 09's reading printed "0.00" before
  assert.equal(pValue(0.0312), "0.031");
  assert.equal(pValue(0.4231), "0.42"); // the report printed "4.2e-1"
  assert.equal(pValue(1), "1.00"); // the report printed "1.0e+0"
  assert.equal(pValue(0), "< 1e-300");
  assert.equal(pValue(Number.NaN), "n/a");
  assert.equal(pValue(undefined), "n/a");
});

Deno.test("pct, pp, ciPct, ciPp, fixed: one rule for report, Phase 2 and notebooks", () => {
  assert.equal(pct(0.475), "47.5%");
  assert.equal(pct(undefined), "n/a");
  assert.equal(pp(-0.475), "-47.5 pp");
  assert.equal(pp(1 / 80), "+1.3 pp");
  assert.equal(pp(-1 / 80), "-1.3 pp"); // printed "-1.2 pp" beside "+1.3 pp" before
  assert.equal(pp(-0.0001), "0.0 pp");
  assert.equal(ciPct(0.369, 0.583), "[36.9%, 58.3%]");
  assert.equal(ciPp(-0.575, -0.363), "[-57.5, -36.3]");
  assert.equal(ciPp(Number.NaN, 0), "");
  assert.equal(fixed(-0.0004, 2), "0.00");
  assert.equal(pctCI({ lower: 0.369, upper: 0.583 }), "[36.9%, 58.3%]");
});
