// The official WorkOS Node SDK 12 (the newest) against a running `trail
// serve`, unchanged but for its API hostname and port (TRAIL_URL,
// TRAIL_API_KEY from sdk_test.go): what WorkOS added in SDKs 11 and 12, and
// the WorkOS behaviours a customer switching over relies on. What the SDK
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
  context: { location: '203.0.113.7', userAgent: 'sdk12-test' },
});

test('adminPortal.generateLink: intent optional (audit_logs), itContactEmails and externalUserId accepted', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 12 portal' });
  const { link } = await workos.adminPortal.generateLink({ organization: org.id });
  assert.match(link, new RegExp(`^${url.origin}/portal/launch\\?secret=ptl_[A-Za-z0-9_-]{43}$`));
  const named = await workos.adminPortal.generateLink({
    organization: org.id,
    intent: GenerateLinkIntent.AuditLogs,
    returnUrl: 'https://app.example.com/settings',
    itContactEmails: ['it@example.com', 'security@example.com'],
    externalUserId: 'user_42',
  });
  assert.match(named.link, /\/portal\/launch\?secret=ptl_/);
  const generated = await events(org.id, 'action=trail.portal_link.generated&order=asc', 2);
  assert.equal(generated[0].metadata.intent, 'audit_logs');
  assert.equal(generated[1].metadata.external_user_id, 'user_42');
  assert.equal(generated[1].metadata.admin_emails, 'it@example.com,security@example.com');
});

test('adminPortal.generateLink: the intents of WorkOS products Trail lacks are 422 naming the product', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 12 intents' });
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
  const unknown = await rejection(workos.adminPortal.generateLink({ organization: 'org_01JUNKNOWN000000000000000', intent: 'audit_logs' }));
  assert.ok(unknown instanceof NotFoundException, String(unknown));
});

test('adminPortal.revokeLink ends that admin\'s links and sessions, and no one else\'s', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 12 revoke' });
  const alice = await workos.adminPortal.generateLink({ organization: org.id, externalUserId: 'user_alice' });
  const alicePending = await workos.adminPortal.generateLink({ organization: org.id, externalUserId: 'user_alice' });
  const bob = await workos.adminPortal.generateLink({ organization: org.id, externalUserId: 'user_bob' });

  // Alice and Bob each open a session.
  // As a person opens a link: the GET shows a page with one button and
  // spends nothing; pressing the button POSTs its form.
  const open = async (link) => {
    const shown = await fetch(link, { redirect: 'manual' });
    assert.equal(shown.status, 200, `showing ${link}`);
    const html = await shown.text();
    const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]+)"`))[1];
    const res = await fetch(new URL('/portal/launch', url), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(url).origin },
      body: new URLSearchParams({ secret: field('secret'), csrf: field('csrf') }),
    });
    assert.equal(res.status, 303, `opening ${link}`);
    return res.headers.get('set-cookie').split(';')[0];
  };
  const aliceCookie = await open(alice.link);
  const bobCookie = await open(bob.link);
  const page = (cookie) => fetch(new URL('/portal/events', url), { headers: { cookie }, redirect: 'manual' });
  assert.equal((await page(aliceCookie)).status, 200);

  assert.equal(await workos.adminPortal.revokeLink({ organization: org.id, externalUserId: 'user_alice' }), undefined);

  assert.equal((await page(aliceCookie)).status, 401, "alice's session after the revocation");
  assert.equal((await page(bobCookie)).status, 200, "bob's session after alice's revocation");
  // Alice's unopened link opens no session any more.
  const late = await fetch(alicePending.link, { redirect: 'manual' });
  assert.notEqual(late.status, 303);
  assert.equal(late.headers.get('set-cookie'), null);
  assert.match(await late.text(), /revoked/i);

  const [revoked] = await events(org.id, 'action=trail.portal_link.revoked', 1);
  assert.deepEqual(revoked.targets, [{ id: 'user_alice', type: 'portal_admin', name: 'user_alice' }]);
  assert.equal(revoked.metadata.ended, '2');
  // Alice's actions in the portal carried her external_user_id as the actor id.
  const [started] = await events(org.id, 'action=trail.portal_session.started&actor_id=user_alice', 1);
  assert.equal(started.actor.type, 'portal_admin');

  // Bad input: WorkOS's exceptions.
  const missing = await rejection(workos.adminPortal.revokeLink({ organization: org.id }));
  assert.ok(missing instanceof UnprocessableEntityException, String(missing));
  const unknown = await rejection(workos.adminPortal.revokeLink({ organization: 'org_01JUNKNOWN000000000000000', externalUserId: 'u' }));
  assert.ok(unknown instanceof NotFoundException, String(unknown));
});

test('createExport: WorkOS\'s deprecated actors filter, as the Go, Python and Ruby SDKs send it', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 12 actors' });
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
  const org = await workos.organizations.createOrganization({ name: 'SDK 12 range' });
  const now = new Date();
  const err = await rejection(workos.auditLogs.createExport({ organizationId: org.id, rangeStart: now, rangeEnd: new Date(now.getTime() - 1000) }));
  assert.ok(err instanceof GenericServerException, String(err));
  assert.ok(!(err instanceof BadRequestException), String(err));
  assert.equal(err.status, 400);
  assert.equal(err.message, 'Invalid date range');
  assert.deepEqual(err.rawData, { message: 'Invalid date range', code: 'invalid_audit_log_export_range_date' });
});

test('createEvent: the Idempotency-Key alone decides, as WorkOS defines it', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 12 idempotency' });
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

test('the basics on SDK 12: createEvent, listOrganizations, createExport and getExport', async () => {
  const org = await workos.organizations.createOrganization({ name: 'SDK 12 basics', externalId: `basics-${randomUUID()}` });
  await workos.auditLogs.createEvent(org.id, event('user.signed_in'));
  const list = await workos.organizations.listOrganizations({ limit: 100 });
  assert.ok(Array.isArray(list.data));
  const exp = await workos.auditLogs.createExport({
    organizationId: org.id, rangeStart: new Date(Date.now() - 3_600_000), rangeEnd: new Date(Date.now() + 60_000), actorNames: ['Jon Smith'],
  });
  assert.equal(exp.object, 'audit_log_export');
  assert.equal((await workos.auditLogs.getExport(exp.id)).id, exp.id);
});
