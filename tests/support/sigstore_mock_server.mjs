// Serve @sigstore/mock's Fulcio, Rekor (v1 API) and timestamp authority handlers over real HTTP on loopback.
//
// Usage: node sigstore_mock_server.mjs <npm prefix holding node_modules/@sigstore/mock>
//
// Each service gets its own kernel-chosen port on 127.0.0.1 and its own freshly generated P-256 key (the mock's
// own mockFulcio() shares one key between the CA and the CT log; separate keys make a trusted root that mixes
// them up fail). Once listening, one JSON line goes to stdout with the URLs and the public trust material a
// verifier needs (DER, base64); then the process serves until it is terminated.
//
// The handler factories are the package's own (fulcioHandler, rekorHandler, tsaHandler): this file only adapts
// their `fn(body) -> {statusCode, response, contentType}` shape to node:http.

import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const prefix = process.argv[2];
if (!prefix) {
  process.stderr.write('usage: node sigstore_mock_server.mjs <npm prefix>\n');
  process.exit(2);
}
// The packages live outside the repository: resolve them from the install prefix, not from this file.
const requireFromPrefix = createRequire(join(resolve(prefix), 'package.json'));
const mock = requireFromPrefix('@sigstore/mock');

const MAX_BODY_BYTES = 1024 * 1024;
const HOST = '127.0.0.1';

function newKeyPair() {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

function spkiDer(keyObject) {
  return keyObject.export({ format: 'der', type: 'spki' });
}

// One node:http server answering POST <handler.path> with the mock handler; everything else is a 404.
function serve(name, handler) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', async () => {
      const path = (req.url || '').split('?')[0];
      requests.push(`${req.method} ${path}`);
      process.stderr.write(`${name}: ${req.method} ${path}\n`);
      if (req.method !== 'POST' || path !== handler.path) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`no ${req.method} ${path} on the mock ${name}\n`);
        return;
      }
      try {
        const { statusCode, response, contentType } = await handler.fn(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(statusCode, { 'Content-Type': contentType || 'text/plain' }).end(response);
      } catch (err) {
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(err && err.stack ? err.stack : err));
      }
    });
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      resolvePromise({ server, url: `http://${HOST}:${port}`, requests });
    });
  });
}

async function main() {
  // Fulcio: a CT log (its own key) and a CA (its own key) whose certificates embed the CT log's SCT.
  const ctKeys = newKeyPair();
  const caKeys = newKeyPair();
  const ctlog = await mock.initializeCTLog(ctKeys);
  const ca = await mock.initializeCA(caKeys, ctlog);
  const fulcio = await serve('fulcio', mock.fulcioHandler(ca, { strict: true }));

  // Rekor: the log is named after its URL's host (checkpoint origin), so the port must be known first.
  const rekorKeys = newKeyPair();
  let tlogHandler = null;
  const rekor = await serve('rekor', {
    path: '/api/v1/log/entries',
    fn: (body) => tlogHandler.fn(body),
  });
  const tlog = await mock.initializeTLog(rekor.url, rekorKeys);
  tlogHandler = mock.rekorHandler(tlog, { strict: true });

  const tsaKeys = newKeyPair();
  const tsaImpl = await mock.initializeTSA(tsaKeys);
  const tsa = await serve('tsa', mock.tsaHandler(tsaImpl, { strict: true }));

  const info = {
    fulcioUrl: fulcio.url,
    rekorUrl: rekor.url,
    tsaUrl: tsa.url,
    fulcioRoot: Buffer.from(ca.rootCertificate).toString('base64'),
    ctlogPublicKey: Buffer.from(ctlog.publicKey).toString('base64'),
    ctlogId: Buffer.from(ctlog.logID).toString('base64'),
    rekorPublicKey: spkiDer(rekorKeys.publicKey).toString('base64'),
    tsaChain: [tsaImpl.intCertificate, tsaImpl.rootCertificate].map((der) => Buffer.from(der).toString('base64')),
    pid: process.pid,
  };
  process.stdout.write(`${JSON.stringify(info)}\n`);

  const stop = () => {
    for (const s of [fulcio, rekor, tsa]) s.server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`mock Sigstore services failed to start: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
