// Preloaded by bridge.mjs's runner (node --require ./crypto-shim.cjs).
// matrix-appservice-bridge loads matrix-bot-sdk, which loads the native
// Rust crypto of @matrix-org/matrix-sdk-crypto-nodejs at start even when
// the bridge encrypts nothing; that package's binary comes from a GitHub
// download in a postinstall script, which npm 11 does not run by default
// and which offline machines cannot make. When the binary is missing,
// this stands in for the package: every export is an inert class. The
// test's bridge does not encrypt, so none is ever used.
const fs = require("node:fs");
const path = require("node:path");
const Module = require("node:module");

const pkg = "@matrix-org/matrix-sdk-crypto-nodejs";
let dir;
try {
  dir = path.dirname(require.resolve(`${pkg}/package.json`));
} catch {
  dir = undefined;
}
const hasBinary = dir !== undefined && fs.readdirSync(dir).some((f) => f.endsWith(".node"));
if (!hasBinary) {
  const stubPath = path.join(__dirname, "crypto-stub.cjs");
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, ...rest) {
    if (request === pkg) {
      return stubPath;
    }
    return resolve.call(this, request, ...rest);
  };
}
