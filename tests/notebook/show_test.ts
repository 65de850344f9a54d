/**
 * Table display (issue 16 item 4): small p-values print in scientific notation rather than `0.000`, wide
 * snake_case headers may wrap after "_" and the table scrolls in its own box; token views mark onsets.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cellText, pValue, tableBundle, tokensBundle } from "../../lib/notebook/show.ts";

Deno.test("cellText: fixed decimals, scientific where fixed would print zero or is huge", () => {
  assert.equal(cellText(9.1e-13, 3), "9.1e-13"); // printed "0.000" before
  assert.equal(cellText(-2.5e-5, 3), "-2.5e-5");
  assert.equal(cellText(0.0004, 3), "4e-4");
  assert.equal(cellText(0.0005, 3), "0.001"); // rounds to a non-zero fixed value: kept fixed
  assert.equal(cellText(0.1234, 3), "0.123");
  assert.equal(cellText(0, 3), "0");
  assert.equal(cellText(12, 3), "12");
  assert.equal(cellText(1.5e12, 3), "1500000000000"); // integers as is
  assert.equal(cellText(1234567890.5, 3), "1.23e+9");
  assert.equal(cellText(Number.NaN, 3), "NaN");
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

Deno.test("pValue: scientific below 0.001, three decimals otherwise", () => {
  assert.equal(pValue(9.1e-13), "9.1e-13"); // notebook 09's reading printed "0.00" before
  assert.equal(pValue(0.0312), "0.031");
  assert.equal(pValue(1), "1.000");
  assert.equal(pValue(0), "0.000");
  assert.equal(pValue(Number.NaN), "n/a");
});
