// Validates an AsyncAPI document with the official parser; exits 1 on any error diagnostic.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"));
// Severity 0 is an error; warnings and hints are printed but do not fail the document.
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  console.log(`${["error", "warning", "info", "hint"][d.severity]} ${d.code} ${d.path.join(".")}: ${d.message}`);
}
if (!document || errors.length > 0) {
  console.log(`INVALID: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`VALID: AsyncAPI ${document.version()}, ${document.channels().length} channels, ${document.operations().length} operations`);
