// Inert stand-in for @matrix-org/matrix-sdk-crypto-nodejs (see
// crypto-shim.cjs): any export is a class that does nothing.
module.exports = new Proxy(
  {},
  {
    get: (_, name) => (name === "__esModule" ? false : class {}),
  },
);
