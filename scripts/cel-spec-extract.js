// Renders @bufbuild/cel-spec's conformance data as JSON: {tests: the SimpleTest suites (protobuf JSON, as the
// package ships them), descriptors: the base64 FileDescriptorProtos of cel-spec's TestAllTypes protos}. The
// generated protobuf-es modules run with @bufbuild/protobuf stubbed (it is not installed): each module hands its
// descriptor to fileDesc(), which is all that is kept. Usage: node cel-spec-extract.js PACKAGE_DIR
"use strict";
const Module = require("module");
const load = Module._load;
const descriptors = [];
Module._load = function (request, parent, isMain) {
  if (request.startsWith("@bufbuild/protobuf")) {
    const fileDesc = (b64) => (descriptors.push(b64), {});
    return new Proxy({}, { get: (_t, key) => (key === "fileDesc" ? fileDesc : () => ({})) });
  }
  return load.call(this, request, parent, isMain);
};
const dist = `${process.argv[2]}/dist/cjs`;
for (const name of ["proto2/test_all_types_pb.js", "proto2/test_all_types_extensions_pb.js", "proto3/test_all_types_pb.js"]) {
  require(`${dist}/gen/cel/expr/conformance/${name}`);
}
const tests = require(`${dist}/testdata/conformance.js`).tests;
process.stdout.write(JSON.stringify({ tests, descriptors }));
