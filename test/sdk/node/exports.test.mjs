// Exports through the official WorkOS Node SDK (auditLogs.createExport and
// getExport) against a running `trail serve`: filters, the wait for ready,
// the signed download url, and WorkOS's error for a bad range. Started by
// sdk_test.go with TRAIL_URL and TRAIL_API_KEY.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WorkOS, BadRequestException, GenericServerException, NotFoundException } from '@workos-inc/node';

const main = { url: new URL(process.env.TRAIL_URL ?? 'http://127.0.0.1:8080'), key: process.env.TRAIL_API_KEY };
assert.ok(main.key, 'TRAIL_API_KEY must be set');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const isoMillis = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function client(key = main.key) {
  return new WorkOS(key, { apiHostname: main.url.hostname, port: Number(main.url.port), https: false });
}

// An organization with 12 events: actions a.0/a.1/a.2 in turn, actors
// user_0…user_3 ("User 0"…), one target of type doc or team, occurred one
// minute apart from base; event 5's actor name is a formula.
async function seeded() {
  const workos = client();
  const org = await workos.organizations.createOrganization({ name: `exports ${randomUUID()}` });
  const base = new Date(Date.now() - 60 * 60 * 1000);
  for (let i = 0; i < 12; i++) {
    await workos.auditLogs.createEvent(org.id, {
      action: `a.${i % 3}`,
      occurredAt: new Date(base.getTime() + i * 60_000),
      actor: { type: 'user', id: `user_${i % 4}`, name: i === 5 ? '=HYPERLINK("http://evil.example")' : `User ${i % 4}` },
      targets: [{ type: i % 2 ? 'doc' : 'team', id: `t_${i}` }],
      context: { location: '203.0.113.7', userAgent: 'sdk-test' },
      metadata: { i: String(i) },
    });
  }
  return { org, base };
}

async function untilReady(workos, id) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const e = await workos.auditLogs.getExport(id);
    if (e.state !== 'pending' || Date.now() > deadline) return e;
    await sleep(100);
  }
}

// parseCSV reads RFC 4180 text (quoted fields, doubled quotes, CRLF).
function parseCSV(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\r' && text[i + 1] === '\n') { row.push(field); rows.push(row); row = []; field = ''; i++; }
    else field += c;
  }
  return rows;
}

test('createExport with filters, getExport until ready, download the url', async () => {
  const workos = client();
  const { org, base } = await seeded();
  const created = await workos.auditLogs.createExport({
    organizationId: org.id,
    rangeStart: new Date(base.getTime() - 1),
    rangeEnd: new Date(base.getTime() + 10 * 60_000), // events 0…9
    actions: ['a.0', 'a.2'],
    actorIds: ['user_0', 'user_1', 'user_2'],
    targets: ['team', 'doc'],
  });
  assert.equal(created.object, 'audit_log_export');
  assert.match(created.id, /^audit_log_export_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(created.state, 'pending');
  assert.equal(created.url, undefined);
  assert.match(created.createdAt, isoMillis);
  assert.match(created.updatedAt, isoMillis);

  const ready = await untilReady(workos, created.id);
  assert.equal(ready.state, 'ready');
  assert.equal(ready.id, created.id);
  assert.ok(ready.url, 'a ready export has a url');

  // The signed url needs no API key.
  const res = await fetch(ready.url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/csv/);
  const rows = parseCSV(await res.text());
  assert.deepEqual(rows[0], ['id', 'occurred_at', 'action', 'actor_id', 'actor_type', 'actor_name', 'targets',
    'location', 'user_agent', 'metadata', 'version', 'seq', 'received_at']);
  // Events 0…9 with action a.0 or a.2 and actor user_0…user_2: 0, 2, 5, 6, 8, 9 minus actor user_3 (i % 4 = 3: 3, 7…)
  const expected = [0, 2, 5, 6, 8, 9].filter((i) => i % 4 !== 3);
  assert.deepEqual(rows.slice(1).map((r) => r[9]), expected.map((i) => `{"i":"${i}"}`));
  const five = rows.slice(1).find((r) => r[9] === '{"i":"5"}');
  assert.equal(five[5], `'=HYPERLINK("http://evil.example")`, 'the formula is neutralised');

  // Each getExport signs a fresh url; the url is bound to its export.
  await sleep(1100);
  const again = await workos.auditLogs.getExport(created.id);
  assert.notEqual(again.url, ready.url);
  const forged = new URL(ready.url);
  forged.searchParams.set('signature', 'A'.repeat(43));
  assert.equal((await fetch(forged)).status, 403);
});

test('an export with no filter holds every event of the range', async () => {
  const workos = client();
  const { org, base } = await seeded();
  const created = await workos.auditLogs.createExport({
    organizationId: org.id, rangeStart: base, rangeEnd: new Date(Date.now() + 60_000),
  });
  const ready = await untilReady(workos, created.id);
  assert.equal(ready.state, 'ready');
  const rows = parseCSV(await (await fetch(ready.url)).text()).slice(1);
  // The 12 events, and Trail's own record of the organization's creation.
  assert.equal(rows.filter((r) => r[2].startsWith('a.')).length, 12);
  assert.deepEqual(rows.filter((r) => !r[2].startsWith('a.')).map((r) => r[2]), ['trail.organization.created']);
});

// WorkOS documents {"message":"Invalid date range","code":"invalid_audit_log_export_range_date"}
// with status 400: no "errors", so the SDK throws GenericServerException, as against WorkOS.
test('a bad range is 400 invalid_audit_log_export_range_date, as WorkOS answers it', async () => {
  const workos = client();
  const { org, base } = await seeded();
  let err;
  try {
    await workos.auditLogs.createExport({ organizationId: org.id, rangeStart: base, rangeEnd: new Date(base.getTime() - 1000) });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof GenericServerException, `got ${err}`);
  assert.ok(!(err instanceof BadRequestException), `got ${err}`);
  assert.equal(err.status, 400);
  assert.equal(err.message, 'Invalid date range');
  assert.deepEqual(err.rawData, { message: 'Invalid date range', code: 'invalid_audit_log_export_range_date' });
});

test('getExport of an unknown export is 404', async () => {
  await assert.rejects(client().auditLogs.getExport('audit_log_export_01JDUNKNOWN000000000000000'), NotFoundException);
});
