// An independent tus server for cloudsync's interop test (tests/interop_tus_node.rs):
// tus-node-server (@tus/server + @tus/file-store) behind Node's own HTTPS server.
//
// Usage:
//   node server.mjs --key KEY.pem --cert CERT.pem --dir UPLOAD_DIR [--host 127.0.0.6] [--port 0]
// Each flag may also come from the environment: TUS_KEY, TUS_CERT, TUS_DIR, TUS_HOST, TUS_PORT.
//
// When listening it prints one JSON line on stdout: {"port": N}. Uploads land in
// UPLOAD_DIR/<id> with the upload's info (size, offset, metadata) in UPLOAD_DIR/<id>.json.
// It exits when its stdin closes, so a test that dies without cleaning up leaves no server behind.

import fs from 'node:fs';
import https from 'node:https';
import process from 'node:process';

import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

const PATH = '/files';

function parseArgs(argv) {
  const opts = {
    key: process.env.TUS_KEY,
    cert: process.env.TUS_CERT,
    dir: process.env.TUS_DIR,
    host: process.env.TUS_HOST ?? '127.0.0.6',
    port: process.env.TUS_PORT ?? '0',
  };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(key|cert|dir|host|port)(?:=(.*))?$/.exec(argv[i]);
    if (!m) {
      throw new Error(`unknown argument: ${argv[i]}`);
    }
    opts[m[1]] = m[2] ?? argv[++i];
  }
  for (const k of ['key', 'cert', 'dir']) {
    if (!opts[k]) {
      throw new Error(`missing --${k}`);
    }
  }
  const port = Number.parseInt(opts.port, 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`bad --port: ${opts.port}`);
  }
  return { ...opts, port };
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`server.mjs: ${e.message}\n`);
  process.exit(2);
}

fs.mkdirSync(opts.dir, { recursive: true });

const tus = new Server({
  path: PATH,
  datastore: new FileStore({ directory: opts.dir }),
  // Locations are answered as `/files/<id>`: the client must resolve them itself.
  relativeLocation: true,
});

const server = https.createServer(
  { key: fs.readFileSync(opts.key), cert: fs.readFileSync(opts.cert) },
  (req, res) => {
    // Only the tus endpoint and its uploads; anything else is a client bug worth seeing.
    const path = (req.url ?? '').split('?')[0];
    if (path !== PATH && path !== `${PATH}/` && !path.startsWith(`${PATH}/`)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not a tus path\n');
      return;
    }
    tus.handle(req, res).catch((e) => {
      process.stderr.write(`server.mjs: handler error: ${e?.stack ?? e}\n`);
      if (!res.headersSent) {
        res.writeHead(500);
      }
      res.end();
    });
  },
);

server.on('error', (e) => {
  process.stderr.write(`server.mjs: ${e.message}\n`);
  process.exit(1);
});

server.listen(opts.port, opts.host, () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});

const stop = () => {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
};
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
