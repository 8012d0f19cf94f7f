import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  excludeTopLoss,
  loadPoints,
  parseCsv,
  pointsFromCsv,
  pointsFromRuns,
} from "../src/scaling/points.js";

test("points: CSV with N, D, loss columns under other spellings", () => {
  const pts = pointsFromCsv("Params,Training Tokens,final_loss\n1e6,2e7,3.5\n2e6,4e7,3.25\n");
  assert.equal(pts.length, 2);
  assert.deepEqual(pts[0], { N: 1e6, D: 2e7, C: 6 * 1e6 * 2e7, loss: 3.5 });
});

test("points: CSV with compute instead of tokens derives D = C / 6N", () => {
  const pts = pointsFromCsv('"model_size","FLOPs","loss","budget"\n1e6,1.2e14,3.5,1e14\n');
  assert.equal(pts[0]!.D, 1.2e14 / 6e6);
  assert.equal(pts[0]!.budget, 1e14);
});

test("points: bad values name the row and column", () => {
  assert.throws(
    () => pointsFromCsv("N,D,loss\n1e6,2e7,3.5\n1e6,abc,3.1\n"),
    /data row 2 \(line 3\), column "D".*"abc"/,
  );
  assert.throws(() => pointsFromCsv("N,D,loss\n1e6,2e7,-1\n"), /data row 1 \(line 2\), column "loss"/);
  assert.throws(
    () => pointsFromCsv("N,D,loss\n1e6,,3\n"),
    /column "D": expected a positive finite number, got ""/,
  );
  assert.throws(() => pointsFromCsv("size,tokens\n1,2\n"), /no loss column.*found columns: "size", "tokens"/);
  assert.throws(() => pointsFromCsv("N,loss\n1,2\n"), /need a tokens column/);
  assert.throws(() => pointsFromRuns([{ N: 1e6, loss: 3 }]), /run 0: needs D/);
  assert.throws(
    () => pointsFromRuns([{ N: Number.NaN, D: 1, loss: 3 }]),
    /run 0: N must be a positive finite number/,
  );
});

test("points: quoted CSV fields and CRLF line ends", () => {
  assert.deepEqual(parseCsv('a,"b,c","d ""q"""\r\n1,2,3\r\n'), [
    ["a", "b,c", 'd "q"'],
    ["1", "2", "3"],
  ]);
});

test("points: excludeTopLoss drops exactly the K highest losses", () => {
  const pts = pointsFromRuns([3, 5, 1, 4, 2].map((loss) => ({ N: 1, D: 1, loss })));
  assert.deepEqual(
    excludeTopLoss(pts, 2).map((p) => p.loss),
    [3, 1, 2],
  );
  assert.throws(() => excludeTopLoss(pts, 5), /would drop all/);
});

test("points: loadPoints reads a CSV file, a built-in dataset, or runs — exactly one", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "afterscale-points-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "runs.csv");
  writeFileSync(file, "N,D,loss\n1e6,2e7,3.5\n2e6,4e7,3.25\n4e6,8e7,3.0\n");
  assert.equal(loadPoints({ csv: file, excludeTopLoss: 1 }).length, 2);
  assert.equal(loadPoints({ dataset: "chinchilla" }).length, 245);
  assert.equal(loadPoints({ runs: [{ N: 1, C: 6, loss: 2 }] })[0]!.D, 1);
  assert.throws(
    () => loadPoints({ dataset: "nope" }),
    /unknown dataset "nope"; built-in datasets: chinchilla/,
  );
  assert.throws(() => loadPoints({ csv: join(dir, "missing.csv") }), /CSV file not found/);
  assert.throws(() => loadPoints({}), /exactly one of/);
});
