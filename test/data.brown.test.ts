import assert from "node:assert/strict";
import { test } from "node:test";
import { brownCorpus, brownDocuments, brownFileToText, detokenize } from "../src/data/brown.js";

test("detokenize rebuilds ordinary spacing and quotes", () => {
  assert.equal(
    detokenize(["``", "Only", "a", "few", "''", ",", "the", "jury", "said", "(", "twice", ")", "."]),
    '"Only a few", the jury said (twice).',
  );
  assert.equal(detokenize(["the", "'", "Met", "'", "again", "--", "now", "?"]), "the 'Met' again -- now?");
  assert.equal(detokenize(["Ivan", "Allen", "Jr.", "."]), "Ivan Allen Jr.");
  assert.equal(detokenize(["only", "4'", "10''", "''", "tall"]), `only 4' 10" tall`);
});

test("tagged lines become plain paragraphs", () => {
  const tagged =
    "\n\nJury/nn-hl rules/vbz-hl\nThe/at jury/nn said/vbd ``/`` no/at\n''/'' ./.\nIt/pps agreed/vbd ./.\n\n\n\t1/2/cd inch/nn ./.\n";
  assert.equal(brownFileToText(tagged), 'Jury rules\n\nThe jury said "no". It agreed.\n\n1/2 inch.');
});

test("the built-in Brown corpus looks like English, with no tags left", () => {
  const docs = brownDocuments();
  assert.equal(docs.length, 500);
  assert.equal(docs[0].id, "ca01");
  assert.equal(docs[0].category, "news");
  const texts = brownCorpus();
  assert.ok(texts[0].startsWith("The Fulton County Grand Jury said Friday an investigation of Atlanta's"));
  const all = texts.join("\n");
  assert.ok(all.length > 5_000_000, `expected ~6 MB, got ${all.length}`);
  const find = (re: RegExp): string => all.match(re)?.[0] ?? "";
  assert.equal(
    find(/.{0,20}[A-Za-z]\/(at|nn|np|vbd|in|jj|nns|cc)(-tl|-hl)?\s/),
    "",
    "POS tags left in the text",
  );
  assert.equal(find(/.{0,20}(``|'').{0,20}/), "", "Brown quote marks left in the text");
  assert.ok((all.match(/ [,;?!]/g) ?? []).length < 5, "space before punctuation");
  const words = all.split(/\s+/);
  const the = words.filter((w) => w === "the" || w === "The").length;
  assert.ok(the / words.length > 0.04, "'the' should be ~5% of English words");
});
