// The official WorkOS Node SDK against a running `trail serve`, unchanged but
// for its API hostname and port. Started by sdk_test.go, which passes the
// server's address and an admin key in TRAIL_URL and TRAIL_API_KEY.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  WorkOS,
  NotFoundException,
  UnauthorizedException,
  UnprocessableEntityException,
} from '@workos-inc/node';

const url = new URL(process.env.TRAIL_URL ?? 'http://127.0.0.1:8080');
const apiKey = process.env.TRAIL_API_KEY;
assert.ok(apiKey, 'TRAIL_API_KEY must be set');

function client(key = apiKey) {
  return new WorkOS(key, { apiHostname: url.hostname, port: Number(url.port), https: false });
}

// Trail's own query API, to check what the SDK calls stored.
async function events(orgId, params = {}) {
  const q = new URLSearchParams({ organization_id: orgId, limit: '100', ...params });
  // Search is fresh within about a second of acknowledgement.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await fetch(`${url.origin}/v1/events?${q}`, {
      headers: { Authorization: `Bearer ${apiKey}` },
    });
    assert.equal(res.status, 200, await res.clone().text());
    const body = await res.json();
    if (body.data.length >= (params.expect ?? 0) || Date.now() > deadline) return body.data;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function sampleEvent(overrides = {}) {
  return {
    action: 'user.signed_in',
    occurredAt: new Date(),
    version: undefined,
    actor: { type: 'user', id: 'user_01GBNJC3MX9ZZJW1FSTF4C5938', name: 'Jon Smith', metadata: { role: 'admin' } },
    targets: [{ type: 'team', id: 'team_01GBNJD4MKHVKJGEWK42JNMBGS', metadata: { owner: 'user_01GBTCQ2' } }],
    context: { location: '203.0.113.7', userAgent: 'Chrome/104.0.0.0' },
    metadata: { environment: 'staging', attempts: 3, mfa: true },
    ...overrides,
  };
}

test('organizations: create, get, list', async () => {
  const workos = client();
  const externalId = `ext-${randomUUID()}`;
  const org = await workos.organizations.createOrganization({ name: 'Acme Corp', externalId });
  assert.match(org.id, /^org_/);
  assert.equal(org.name, 'Acme Corp');
  assert.equal(org.externalId, externalId);
  assert.deepEqual(org.domains, []);

  const got = await workos.organizations.getOrganization(org.id);
  assert.equal(got.id, org.id);

  const byExt = await workos.organizations.getOrganizationByExternalId(externalId);
  assert.equal(byExt.id, org.id);

  const list = await workos.organizations.listOrganizations({ limit: 100 });
  assert.ok(list.data.some((o) => o.id === org.id));

  await assert.rejects(workos.organizations.getOrganization('org_01NOPE00000000000000000000'), NotFoundException);
});

test('audit log events: create, stored canonically, found by query', async () => {
  const workos = client();
  const org = await workos.organizations.createOrganization({ name: 'Events Inc' });
  const occurredAt = new Date('2026-11-25T18:43:09.709Z');
  await workos.auditLogs.createEvent(org.id, sampleEvent({ occurredAt }));

  const stored = await events(org.id, { action: 'user.signed_in', expect: 1 });
  assert.equal(stored.length, 1);
  const e = stored[0];
  assert.match(e.id, /^evt_/);
  assert.equal(e.organization_id, org.id);
  assert.equal(e.seq, 0);
  assert.equal(e.action, 'user.signed_in');
  assert.equal(e.occurred_at, '2026-11-25T18:43:09.709Z');
  assert.deepEqual(e.actor, { id: 'user_01GBNJC3MX9ZZJW1FSTF4C5938', type: 'user', name: 'Jon Smith', metadata: { role: 'admin' } });
  assert.deepEqual(e.context, { location: '203.0.113.7', user_agent: 'Chrome/104.0.0.0' });
  assert.deepEqual(e.metadata, { attempts: 3, environment: 'staging', mfa: true });
});

test('idempotency: a retried request with the same key stores one event', async () => {
  const workos = client();
  const org = await workos.organizations.createOrganization({ name: 'Idempotent LLC' });
  const event = sampleEvent({ action: 'invoice.paid', occurredAt: new Date() });
  const idempotencyKey = randomUUID();
  await workos.auditLogs.createEvent(org.id, event, { idempotencyKey });
  await workos.auditLogs.createEvent(org.id, event, { idempotencyKey });
  // Same key, different body: an audit log never drops an event.
  await workos.auditLogs.createEvent(org.id, { ...event, action: 'invoice.refunded' }, { idempotencyKey });

  const stored = await events(org.id, { expect: 2 });
  assert.deepEqual(stored.map((e) => e.action).sort(), ['invoice.paid', 'invoice.refunded']);
});

test('validation errors come back as the SDK expects', async () => {
  const workos = client();
  const org = await workos.organizations.createOrganization({ name: 'Invalid Co' });
  const err = await workos.auditLogs
    .createEvent(org.id, sampleEvent({ action: '', context: { location: '' } }))
    .then(() => null, (e) => e);
  assert.ok(err instanceof UnprocessableEntityException, `got ${err}`);
  assert.equal(err.status, 422);
  assert.match(err.message, /required/);

  const tooMany = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
  await assert.rejects(workos.auditLogs.createEvent(org.id, sampleEvent({ metadata: tooMany })), UnprocessableEntityException);

  await assert.rejects(
    workos.auditLogs.createEvent('org_01NOPE00000000000000000000', sampleEvent()),
    NotFoundException,
  );
});

test('a bad API key is unauthorized', async () => {
  const workos = client('sk_not_a_real_key_000000000000000000');
  await assert.rejects(workos.organizations.listOrganizations(), UnauthorizedException);
  await assert.rejects(workos.auditLogs.createEvent('org_x', sampleEvent()), UnauthorizedException);
});
