// Versioned action schemas through the official WorkOS Node SDK, against a
// running `trail serve` (started by sdk_test.go with TRAIL_URL and
// TRAIL_API_KEY). createSchema and createEvent are the SDK's own methods;
// the SDK (8.9.0) has no listActions/listSchemas yet, so the lists are read
// through the SDK's HTTP client (workos.get), which parses and raises
// errors as for every other call. What was stored is checked with Trail's
// own API (/v1/events).
//
// Schemas are deployment-wide and the other *.test.mjs files share this
// server, so every action here has a name of its own, and the deployment's
// actor schema (which would apply to their events too) is left alone: the
// Go tests of internal/api cover it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WorkOS, BadRequestException, NotFoundException } from '@workos-inc/node';

const url = new URL(process.env.TRAIL_URL ?? 'http://127.0.0.1:8080');
const key = process.env.TRAIL_API_KEY;
// The operator listener (trail serve --metrics-listen), where /metrics is.
const metricsURL = new URL(process.env.TRAIL_METRICS_URL ?? 'http://127.0.0.1:9464');
assert.ok(key, 'TRAIL_API_KEY must be set');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const isoMillis = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const workos = new WorkOS(key, { apiHostname: url.hostname, port: Number(url.port), https: false });

// A fresh action name, so that runs and other test files never collide.
const actionName = (verb) => `sdk_schema_${randomUUID().replaceAll('-', '')}.${verb}`;

async function trail(path) {
  const res = await fetch(new URL(path, url), { headers: { Authorization: `Bearer ${key}` } });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

// waitSearch polls Trail's search until it lists want events (search lags
// acceptance by up to about a second).
async function waitSearch(params, want) {
  const q = new URLSearchParams({ limit: '100', order: 'asc', ...params });
  const deadline = Date.now() + 15_000;
  for (;;) {
    const res = await trail(`/v1/events?${q}`);
    assert.equal(res.status, 200, res.text);
    if (res.json.data.length >= want || Date.now() > deadline) {
      assert.equal(res.json.data.length, want, res.text);
      return res;
    }
    await sleep(100);
  }
}

const invoiceSchema = (action) => ({
  action,
  actor: { metadata: { role: 'string' } },
  targets: [{ type: 'invoice', metadata: { cost: 'number', paid: 'boolean' } }, { type: 'user' }],
  metadata: { transactionId: 'string' },
});

const invoiceEvent = (action, { version, targetType = 'invoice', transactionId = 'tx_1' } = {}) => ({
  action,
  version,
  occurredAt: new Date(),
  actor: { type: 'user', id: 'user_1', metadata: { role: 'admin' } },
  targets: [{ type: targetType, id: 'inv_1', metadata: { cost: 12.5, paid: true } }],
  context: { location: '203.0.113.7', userAgent: 'sdk-test' },
  metadata: { transactionId },
});

test('schemas: createSchema makes immutable versions 1, 2, … with WorkOS bodies', async () => {
  const action = actionName('paid');
  const v1 = await workos.auditLogs.createSchema(invoiceSchema(action));
  assert.equal(v1.object, 'audit_log_schema');
  assert.equal(v1.version, 1);
  assert.deepEqual(v1.targets, [
    { type: 'invoice', metadata: { cost: 'number', paid: 'boolean' } },
    { type: 'user', metadata: undefined },
  ]);
  assert.deepEqual(v1.actor, { metadata: { role: 'string' } });
  assert.deepEqual(v1.metadata, { transactionId: 'string' });
  assert.match(v1.createdAt, isoMillis);

  const v2 = await workos.auditLogs.createSchema({ action, targets: [{ type: 'team' }] });
  assert.equal(v2.version, 2);
  assert.deepEqual(v2.actor, { metadata: {} });
  assert.equal(v2.metadata, undefined);

  // Idempotency keys, as the SDK sends them, are accepted.
  const v3 = await workos.auditLogs.createSchema({ action, targets: [{ type: 'team' }] }, { idempotencyKey: randomUUID() });
  assert.equal(v3.version, 3);
});

test('schemas: list the actions and an action’s versions, with cursors', async () => {
  const names = [actionName('a'), actionName('b')].sort();
  for (const n of names) {
    await workos.auditLogs.createSchema({ action: n, targets: [{ type: 'user' }] });
  }
  await workos.auditLogs.createSchema({ action: names[1], targets: [{ type: 'team' }], metadata: { reason: 'string' } });

  // Page through every action, 2 at a time, oldest name first.
  const seen = [];
  let after;
  for (let n = 0; n < 1000; n++) {
    const { data: page } = await workos.get('/audit_logs/actions', { query: { limit: 2, order: 'asc', ...(after && { after }) } });
    assert.equal(page.object, 'list');
    assert.ok(page.data.length <= 2);
    seen.push(...page.data);
    after = page.list_metadata.after;
    if (!after) break;
  }
  const ours = seen.filter((a) => names.includes(a.name));
  assert.deepEqual(ours.map((a) => a.name), names);
  const b = ours[1];
  assert.equal(b.object, 'audit_log_action');
  assert.equal(b.schema.object, 'audit_log_schema');
  assert.equal(b.schema.version, 2);
  assert.deepEqual(b.schema.targets, [{ type: 'team' }]);
  assert.deepEqual(b.schema.metadata, { type: 'object', properties: { reason: { type: 'string' } } });
  assert.match(b.created_at, isoMillis);
  assert.equal(b.updated_at, b.schema.created_at);

  // The versions of one action, newest first, one per page.
  const first = (await workos.get(`/audit_logs/actions/${names[1]}/schemas`, { query: { limit: 1 } })).data;
  assert.deepEqual(first.data.map((s) => s.version), [2]);
  assert.equal(first.list_metadata.before, null);
  assert.ok(first.list_metadata.after);
  const second = (await workos.get(`/audit_logs/actions/${names[1]}/schemas`, { query: { limit: 1, after: first.list_metadata.after } })).data;
  assert.deepEqual(second.data.map((s) => s.version), [1]);
  assert.deepEqual(second.data[0].targets, [{ type: 'user' }]);
  assert.equal(second.list_metadata.after, null);

  const missing = await workos.get(`/audit_logs/actions/${actionName('none')}/schemas`).catch((e) => e);
  assert.ok(missing instanceof NotFoundException, String(missing));
});

test('schemas: an event naming its version is validated against it', async () => {
  const org = await workos.organizations.createOrganization({ name: 'Schema Co' });
  const action = actionName('paid');
  await workos.auditLogs.createSchema(invoiceSchema(action));

  await workos.auditLogs.createEvent(org.id, invoiceEvent(action, { version: 1 }));

  const err = await workos.auditLogs.createEvent(org.id, invoiceEvent(action, { version: 1, targetType: 'team' })).catch((e) => e);
  assert.ok(err instanceof BadRequestException, String(err));
  assert.equal(err.status, 400);
  assert.equal(err.code, 'invalid_audit_log_event');
  assert.equal(err.message, 'Invalid Audit Log event.');
  assert.deepEqual(err.errors, [{
    code: 'invalid_value',
    field: 'event.targets[0].type',
    message: 'target type "team" is not declared by the schema; declared: invoice, user',
  }]);

  const unknown = await workos.auditLogs.createEvent(org.id, invoiceEvent(action, { version: 7 })).catch((e) => e);
  assert.ok(unknown instanceof BadRequestException, String(unknown));
  assert.equal(unknown.errors[0].field, 'event.version');
  assert.match(unknown.errors[0].message, /schema version 7 does not exist/);

  // Only the valid event was stored.
  const res = await waitSearch({ organization_id: org.id, action }, 1);
  assert.equal(res.json.data[0].version, 1);
  assert.equal(res.json.data[0].schema_mismatch, undefined);
});

test('schemas: an event without a version is accepted and a mismatch recorded', async () => {
  const org = await workos.organizations.createOrganization({ name: 'Mismatch Co' });
  const action = actionName('paid');
  await workos.auditLogs.createSchema(invoiceSchema(action));

  await workos.auditLogs.createEvent(org.id, invoiceEvent(action));
  await workos.auditLogs.createEvent(org.id, invoiceEvent(action, { targetType: 'team' }));

  const all = await waitSearch({ organization_id: org.id, action }, 2);
  assert.deepEqual(all.json.data.map((e) => e.schema_mismatch), [undefined, true]);
  const mismatches = await waitSearch({ organization_id: org.id, schema_mismatch: 'true' }, 1);
  const e = mismatches.json.data[0];
  assert.equal(e.targets[0].type, 'team');
  const one = await trail(`/v1/events/${e.id}`);
  assert.equal(one.status, 200);
  assert.equal(one.json.schema_mismatch, true);

  const metrics = await (await fetch(new URL('/metrics', metricsURL))).text();
  assert.match(metrics, new RegExp(`trail_schema_mismatch_total\\{action="${action}"\\} 1\\b`));
});
