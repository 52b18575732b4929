// Validates an OpenAPI document with @seriousme/openapi-schema-validator (the
// specification's own JSON Schemas, checked with Ajv) and resolves every $ref.
// Usage: node validate.mjs FILE. Prints "valid: OpenAPI <version>" and exits 0, or
// prints the errors and exits 1. Run by tests/api/test_24_openapi.py.
import { Validator } from "@seriousme/openapi-schema-validator";

const file = process.argv[2];
const validator = new Validator();
const res = await validator.validate(file);
if (!res.valid) {
  console.log(JSON.stringify(res.errors, null, 2));
  process.exit(1);
}
try {
  validator.resolveRefs(); // throws on a $ref that points nowhere
} catch (e) {
  console.log("unresolved reference: " + e.message);
  process.exit(1);
}
console.log("valid: OpenAPI " + validator.version);
