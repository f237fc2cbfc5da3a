// The page's ES modules without a browser (seconds; part of scripts/test-fast.sh): every module reachable from
// the page, the search worker, the embedding worker and the service worker links (files exist, every imported
// name is exported), and protocol.js's tables are consistent. The browser tests (tests/e2e) check the behaviour.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { fileURLToPath, pathToFileURL } from 'node:url';

const STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../static');
const ENTRIES = ['app.js', 'worker/search-worker.js', 'worker/embed-worker.js', 'sw.js'];

test('every page and worker module links: files exist and every imported name is exported', { skip:
  !vm.SourceTextModule && 'needs node --experimental-vm-modules (scripts/test-fast.sh passes it)' }, async () => {
  const modules = new Map();
  const load = (file) => {
    if (!modules.has(file)) {
      modules.set(file, new vm.SourceTextModule(readFileSync(file, 'utf8'), { identifier: file }));
    }
    return modules.get(file);
  };
  // The wasm package is built, not committed: stand in for its exports (wasm-model/README.md, "wasm API").
  const pkg = () => new vm.SyntheticModule(['default', 'Engine', 'ImageEmbedder'], () => {}, { identifier: 'pkg' });
  for (const entry of ENTRIES) {
    // link() throws "does not provide an export named …" or ENOENT for a bad import.
    await load(path.join(STATIC, entry)).link((specifier, from) => {
      assert.ok(specifier.startsWith('.'), `${from.identifier}: imports ${specifier}; the page loads only its own files`);
      return specifier.endsWith('/pkg/wasm_model.js') ? pkg() : load(path.resolve(path.dirname(from.identifier), specifier));
    });
  }
  const names = [...modules.keys()].map((f) => path.relative(STATIC, f)).sort();
  assert.ok(names.includes('protocol.js') && names.length >= 10, names.join(', '));
});

test('protocol.js: each message is named once, its wire name is its key, and checkHandlers enforces the tables', async () => {
  const protocol = await import(pathToFileURL(path.join(STATIC, 'protocol.js')).href);
  const { Request, Event, EmbedRequest, EmbedEvent, checkHandlers } = protocol;
  for (const table of [Request, Event, EmbedRequest, EmbedEvent]) {
    assert.ok(Object.isFrozen(table));
    for (const [key, wire] of Object.entries(table)) assert.equal(wire, key);
  }
  assert.equal(Object.keys(Request).length, 16);
  assert.equal(Object.keys(Event).length, 8);
  const all = (table) => Object.fromEntries(Object.values(table).map((n) => [n, () => {}]));
  assert.equal(typeof checkHandlers(Event, all(Event), 'test')[Event.ready], 'function');
  const { [Event.fatal]: _, ...missing } = all(Event);
  assert.throws(() => checkHandlers(Event, missing, 'page'), /page: no handler for fatal/);
  assert.throws(() => checkHandlers(Event, { ...all(Event), fatl: () => {} }, 'page'), /unknown messages fatl/);
});
