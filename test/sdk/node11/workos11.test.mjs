// The official WorkOS Node SDK 11.0.0 against a running `trail serve`,
// unchanged but for its API hostname and port (TRAIL_URL, TRAIL_API_KEY from
// sdk_test.go): every audit-log and Admin Portal method SDK 11 has (it has no
// revokeLink, itContactEmails or externalUserId; test/sdk/node12 covers
// those), and the WorkOS behaviours a customer switching over relies on. What the SDK
// stored is checked with Trail's own API (/v1/events), never with the SDK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  WorkOS,
  ConflictException,
  GenerateLinkIntent,
  GenericServerException,
  BadRequestException,
  NotFoundException,
  UnprocessableEntityException,
} from '@workos-inc/node';

const url = new URL(process.env.TRAIL_URL ?? 'http://127.0.0.1:8080');
const key = process.env.TRAIL_API_KEY;
assert.ok(key, 'TRAIL_API_KEY must be set');
const workos = new WorkOS(key, { apiHostname: url.hostname, port: Number(url.port), https: false });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function rejection(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected the call to be rejected');
}

// trail calls Trail's own API.
async function trail(path) {
  const res = await fetch(new URL(path, url), { headers: { Authorization: `Bearer ${key}` } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

// events polls Trail's search for exactly want events of the organization
// (search may lag acceptance by about a second).
async function events(orgId, query, want) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { json } = await trail(`/v1/events?organization_id=${orgId}&${query}&limit=100`);
    if (json.data.length === want || Date.now() > deadline) {
      assert.equal(json.data.length, want, `events of ${orgId} matching ${query}: ${JSON.stringify(json.data)}`);
      return json.data;
    }
    await sleep(50);
  }
}

// newULID is a fresh WorkOS-style organization id suffix (Crockford base32).
function newOrgID() {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let time = Date.now();
  let s = '';
  for (let i = 0; i < 10; i++) {
    s = alphabet[time % 32] + s;
    time = Math.floor(time / 32);
  }
  for (let i = 0; i < 16; i++) {
    s += alphabet[Math.floor(Math.random() * 32)];
  }
  return `org_${s}`;
}

const event = (action, occurredAt = new Date()) => ({
  action,
  occurredAt,
  actor: { type: 'user', id: 'user_1', name: 'Jon Smith' },
  targets: [{ type: 'team', id: 'team_1', name: 'Blue' }],
  context: { location: '203.0.113.7', userAgent: 'sdk11-test' },
});

test('adminPortal.generateLink: intent optional (audit_logs), adminEmails as SDK 11 sends them', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 11 portal' });
  // SDK 11 made intent optional; it sends no intent key at all.
  const { link } = await workos.adminPortal.generateLink({ organization: org.id });
  assert.match(link, new RegExp(`^${url.origin}/portal/launch\\?secret=ptl_[A-Za-z0-9_-]{43}$`));
  const named = await workos.adminPortal.generateLink({
    organization: org.id,
    intent: GenerateLinkIntent.AuditLogs,
    returnUrl: 'https://app.example.com/settings',
    successUrl: 'https://app.example.com/done',
    adminEmails: ['it@example.com'],
  });
  assert.match(named.link, /\/portal\/launch\?secret=ptl_/);
  const generated = await events(org.id, 'action=trail.portal_link.generated&order=asc', 2);
  assert.equal(generated[0].metadata.intent, 'audit_logs');
  assert.equal(generated[1].metadata.intent, 'audit_logs');
  // SDK 11 has no revokeLink; the portal sessions of an organization end
  // with Trail's own endpoint (docs/WORKOS.md).
  const { status } = await fetch(new URL(`/v1/organizations/${org.id}/portal_sessions`, url), { method: 'DELETE', headers: { Authorization: `Bearer ${key}` } });
  assert.ok(status === 200 || status === 204, `DELETE portal_sessions: ${status}`);
});

test('adminPortal.generateLink: the intents of WorkOS products Trail lacks are 422 naming the product', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 11 intents' });
  for (const [intent, product] of [
    [GenerateLinkIntent.SSO, 'Single Sign-On'],
    [GenerateLinkIntent.DSync, 'Directory Sync'],
    [GenerateLinkIntent.DomainVerification, 'Domain Verification'],
    [GenerateLinkIntent.CertificateRenewal, 'SAML certificate renewal'],
    [GenerateLinkIntent.BringYourOwnKey, 'Bring Your Own Key'],
  ]) {
    const err = await rejection(workos.adminPortal.generateLink({ organization: org.id, intent }));
    assert.ok(err instanceof UnprocessableEntityException, `${intent}: ${err}`);
    assert.match(err.message, new RegExp(product), intent);
  }
  const unknown = await rejection(workos.adminPortal.generateLink({ organization: 'org_01JUNKNOWN000000000000000', intent: GenerateLinkIntent.AuditLogs }));
  assert.ok(unknown instanceof NotFoundException, String(unknown));
});

test('createExport: WorkOS\'s deprecated actors filter, as the Go, Python and Ruby SDKs send it', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 11 actors' });
  await workos.auditLogs.createEvent(org.id, event('user.signed_in'));
  await workos.auditLogs.createEvent(org.id, { ...event('user.signed_in'), actor: { type: 'user', id: 'user_2', name: 'Ada Lovelace' } });
  const range = { range_start: new Date(Date.now() - 3_600_000).toISOString(), range_end: new Date(Date.now() + 60_000).toISOString() };
  // The Node SDK sends actor_names; the body other SDKs send is posted
  // through the SDK's own client.
  const { data } = await workos.post('/audit_logs/exports', { organization_id: org.id, ...range, actors: ['Ada Lovelace'] });
  assert.equal(data.object, 'audit_log_export');
  let exp;
  for (const deadline = Date.now() + 30_000; ; await sleep(50)) {
    exp = await workos.auditLogs.getExport(data.id);
    if (exp.state !== 'pending' || Date.now() > deadline) break;
  }
  assert.equal(exp.state, 'ready');
  const csv = await (await fetch(exp.url)).text();
  assert.match(csv, /Ada Lovelace/);
  assert.doesNotMatch(csv, /Jon Smith/);
});

test('createExport with rangeEnd before rangeStart: WorkOS\'s body, and its exception class', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 11 range' });
  const now = new Date();
  const err = await rejection(workos.auditLogs.createExport({ organizationId: org.id, rangeStart: now, rangeEnd: new Date(now.getTime() - 1000) }));
  assert.ok(err instanceof GenericServerException, String(err));
  assert.ok(!(err instanceof BadRequestException), String(err));
  assert.equal(err.status, 400);
  assert.equal(err.message, 'Invalid date range');
  assert.deepEqual(err.rawData, { message: 'Invalid date range', code: 'invalid_audit_log_export_range_date' });
});

test('createEvent: the Idempotency-Key alone decides, as WorkOS defines it', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 11 idempotency' });
  const idempotencyKey = randomUUID();
  const first = event('invoice.paid');
  await workos.auditLogs.createEvent(org.id, first, { idempotencyKey });
  // Rebuilt on retry: a new occurredAt, the same key. One event.
  await workos.auditLogs.createEvent(org.id, event('invoice.paid', new Date(first.occurredAt.getTime() + 1500)), { idempotencyKey });
  // Another event under a used key: answered like the first, not stored.
  await workos.auditLogs.createEvent(org.id, event('invoice.refunded'), { idempotencyKey });
  // No key given: the SDK makes one per call.
  await workos.auditLogs.createEvent(org.id, event('invoice.sent'));
  await workos.auditLogs.createEvent(org.id, event('invoice.sent'));
  const stored = await events(org.id, 'action=invoice.*&order=asc', 3);
  assert.deepEqual(stored.map((e) => e.action), ['invoice.paid', 'invoice.sent', 'invoice.sent']);
  assert.equal(stored[0].occurred_at, first.occurredAt.toISOString());
});

test('unknown paths under every API prefix are JSON errors the SDK understands', async () => {
  for (const path of ['/audit_logs/nope', '/audit_logs/exports/x/y', '/organizations/org_x/nope', '/v1/nope', '/portal/nope']) {
    const get = await rejection(workos.get(path));
    assert.ok(get instanceof NotFoundException, `GET ${path}: ${get}`);
    const post = await rejection(workos.post(path, {}));
    assert.ok(post instanceof NotFoundException || post instanceof GenericServerException, `POST ${path}: ${post}`);
    assert.ok(post.status === 404 || post.status === 405, `POST ${path}: ${post.status}`);
  }
  // An API endpoint under /portal/ with the wrong method: 405, in JSON.
  const wrong = await rejection(workos.get('/portal/revoke_link'));
  assert.ok(wrong instanceof GenericServerException, String(wrong));
  assert.equal(wrong.status, 405);
});

test('organizations keep their WorkOS ids: POST /organizations with an id, 409 when taken', async () => {
  const id = newOrgID();
  const { data } = await workos.post('/organizations', { id, name: 'Switched Corp', external_id: `ext-${id}` });
  assert.equal(data.id, id);
  const org = await workos.organizations.getOrganization(id);
  assert.equal(org.name, 'Switched Corp');
  assert.equal((await workos.organizations.getOrganizationByExternalId(`ext-${id}`)).id, id);
  // The application's createEvent calls work with the id it always had.
  await workos.auditLogs.createEvent(id, event('user.signed_in'));
  await events(id, 'action=user.signed_in', 1);
  const taken = await rejection(workos.post('/organizations', { id, name: 'Other' }));
  assert.ok(taken instanceof ConflictException, String(taken));
  assert.match(taken.message, new RegExp(`id '${id}' already exists`));
  const bad = await rejection(workos.post('/organizations', { id: 'org_not-a-ulid', name: 'Bad' }));
  assert.ok(bad instanceof UnprocessableEntityException, String(bad));
});

test('the basics on SDK 11: createEvent, listOrganizations, createExport and getExport', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 11 basics', externalId: `basics-${randomUUID()}` });
  await workos.auditLogs.createEvent(org.id, event('user.signed_in'));
  const list = await workos.organizations.listOrganizations({ limit: 100 });
  assert.ok(Array.isArray(list.data));
  const exp = await workos.auditLogs.createExport({
    organizationId: org.id, rangeStart: new Date(Date.now() - 3_600_000), rangeEnd: new Date(Date.now() + 60_000), actorNames: ['Jon Smith'],
  });
  assert.equal(exp.object, 'audit_log_export');
  assert.equal((await workos.auditLogs.getExport(exp.id)).id, exp.id);
});
