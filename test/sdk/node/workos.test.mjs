// The official WorkOS Node SDK against a running `trail serve`, unchanged but
// for its API hostname and port. Started by sdk_test.go, which passes:
//
//   TRAIL_URL, TRAIL_API_KEY                  a server and its admin key
//   TRAIL_LIMITED_URL, TRAIL_LIMITED_API_KEY  a server started with
//                                             --rate-limit 1 --rate-burst 3
//
// The SDK is the client under test; what it stored is checked with Trail's
// own API (/v1/events), never with the SDK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  WorkOS,
  GenericServerException,
  NotFoundException,
  RateLimitExceededException,
  UnauthorizedException,
  UnprocessableEntityException,
} from '@workos-inc/node';

const main = { url: new URL(process.env.TRAIL_URL ?? 'http://127.0.0.1:8080'), key: process.env.TRAIL_API_KEY };
assert.ok(main.key, 'TRAIL_API_KEY must be set');
const limited = process.env.TRAIL_LIMITED_URL
  ? { url: new URL(process.env.TRAIL_LIMITED_URL), key: process.env.TRAIL_LIMITED_API_KEY }
  : null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const isoMillis = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const eventID = /^evt_[0-9A-HJKMNP-TV-Z]{26}$/;

// A WorkOS client for server (default: the main one). fetchFn, when given,
// is the fetch the SDK uses: tests pass recorders and fault injectors.
function client(key = main.key, { server = main, fetchFn } = {}) {
  return new WorkOS(key, { apiHostname: server.url.hostname, port: Number(server.url.port), https: false, fetchFn });
}

// recorder returns a fetch that records each request the SDK sends (method,
// path, headers, body) and a copy of each response.
function recorder() {
  const calls = [];
  const fetchFn = async (url, init) => {
    const res = await fetch(url, init);
    calls.push({
      method: init.method,
      path: new URL(url).pathname,
      headers: new Headers(init.headers),
      body: init.body,
      status: res.status,
      response: res.clone(),
    });
    return res;
  };
  return { calls, fetchFn };
}

// trail calls Trail's own API directly, waiting out 429s (the rate-limited
// server limits these requests too).
async function trail(path, { method = 'GET', body, key, server = main } = {}) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(new URL(path, server.url), {
      method,
      headers: { Authorization: `Bearer ${key ?? server.key}`, ...(body && { 'Content-Type': 'application/json' }) },
      body: body && JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status === 429 && attempt < 30) {
      await sleep(Number(res.headers.get('Retry-After') ?? 1) * 1000);
      continue;
    }
    return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
  }
}

// search returns every event of the organization matching params, following
// the list cursors (as currently indexed: search may lag acceptance).
async function search(orgId, params = {}, server = main) {
  const out = [];
  let after;
  for (;;) {
    const q = new URLSearchParams({ organization_id: orgId, limit: '100', ...params, ...(after && { after }) });
    const res = await trail(`/v1/events?${q}`, { server });
    assert.equal(res.status, 200, res.text);
    out.push(...res.json.data);
    after = res.json.list_metadata.after;
    if (!after) return out;
  }
}

// storedLog returns an organization's whole log, in seq order, once every
// event accepted so far is searchable. It appends a marker event through
// Trail's batch API, whose answer gives the marker's seq N: the log is
// contiguous, so it then holds exactly the events 0..N, and the ones before
// the marker are returned.
async function storedLog(orgId, server = main) {
  const marker = await trail('/v1/events/batch', {
    method: 'POST',
    server,
    body: {
      events: [{
        organization_id: orgId,
        event: {
          action: 'sdk_test.marker',
          occurred_at: new Date().toISOString(),
          actor: { type: 'test', id: 'sdk_test' },
          targets: [],
          context: { location: '127.0.0.1' },
        },
      }],
    },
  });
  assert.equal(marker.status, 201, marker.text);
  const { id, seq } = marker.json.data[0];
  const deadline = Date.now() + 15_000;
  for (;;) {
    const all = await search(orgId, {}, server);
    if ((all.length >= seq + 1 && all.some((e) => e.id === id)) || Date.now() > deadline) {
      all.sort((a, b) => a.seq - b.seq);
      assert.deepEqual(all.map((e) => e.seq), [...Array(seq + 1).keys()], `the log of ${orgId} must be seq 0..${seq}`);
      assert.equal(all[seq].id, id);
      for (const e of all) assert.equal(e.organization_id, orgId);
      return all.slice(0, seq);
    }
    await sleep(100);
  }
}

// rejection returns what promise was rejected with (failing if it resolved).
async function rejection(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected the call to be rejected');
}

async function newOrg(name, server = main) {
  return client(server.key, { server }).organizations.createOrganization({ name });
}

// Trail's own audit event for an organization it created (always seq 0).
function assertOrgCreated(e, org, externalId) {
  assert.equal(e.seq, 0);
  assert.equal(e.action, 'trail.organization.created');
  assert.equal(e.actor.type, 'api_key');
  assert.match(e.actor.id, /^key_/);
  assert.deepEqual(e.targets, [{ id: org.id, type: 'organization', name: org.name }]);
  assert.match(e.context.user_agent, /^workos-node\/8\.9\.0\b/);
  assert.equal(typeof e.metadata.request_id, 'string');
  assert.equal(e.metadata.external_id, externalId);
}

const fullEvent = {
  action: 'user.signed_in',
  occurredAt: new Date('2024-05-17T08:30:00.123Z'),
  actor: {
    type: 'user',
    id: 'user_01GBNJC3MX9ZZJW1FSTF4C5938',
    name: 'Zoë Ångström <admin> & "friends"',
    metadata: { role: 'admin', level: 7 },
  },
  targets: [
    { type: 'team', id: 'team_01GBNJD4MKHVKJGEWK42JNMBGS', metadata: { owner: 'user_01GBTCQ2' } },
    { type: 'document', id: 'doc_42', name: 'Q3 plan\u2028draft 😀' },
  ],
  context: { location: '203.0.113.7', userAgent: 'Mozilla/5.0 Chrome/104.0.0.0' },
  metadata: { environment: 'staging', attempts: 3, mfa: true, ratio: 0.25, big: 1e21, path: 'C:\\tmp\\"x"' },
};

test('organizations: create, read, list and page through them', async () => {
  const workos = client();
  const externalId = `ext-${randomUUID()}`;
  const org = await workos.organizations.createOrganization({ name: 'Acme Corp', externalId });
  assert.match(org.id, /^org_[0-9A-Z]{26}$/);
  assert.equal(org.object, 'organization');
  assert.equal(org.name, 'Acme Corp');
  assert.equal(org.externalId, externalId);
  assert.deepEqual(org.domains, []);
  assert.equal(org.allowProfilesOutsideOrganization, false);
  assert.deepEqual(org.metadata, {});
  assert.match(org.createdAt, isoMillis);
  assert.equal(org.updatedAt, org.createdAt);

  const plain = await workos.organizations.createOrganization({ name: 'No External Id' });
  assert.equal(plain.externalId, null);

  assert.deepEqual(await workos.organizations.getOrganization(org.id), org);
  assert.deepEqual(await workos.organizations.getOrganizationByExternalId(externalId), org);

  // Pages of 2, newest first (the SDK sends order=desc), then oldest first.
  const ours = new Set([org.id, plain.id]);
  for (let i = 0; i < 3; i++) ours.add((await workos.organizations.createOrganization({ name: `Paged ${i}` })).id);
  for (const order of ['desc', 'asc']) {
    const seen = [];
    let page = await workos.organizations.listOrganizations({ limit: 2, order });
    for (let n = 0; ; n++) {
      assert.ok(page.data.length <= 2);
      seen.push(...page.data);
      if (!page.listMetadata.after) break;
      assert.ok(n < 1000, 'pagination must end');
      page = await workos.organizations.listOrganizations({ limit: 2, order, after: page.listMetadata.after });
    }
    const ids = seen.map((o) => o.id);
    assert.equal(new Set(ids).size, ids.length, `no organization twice (${order})`);
    for (const id of ours) assert.ok(ids.includes(id), `${id} listed (${order})`);
    for (let i = 1; i < seen.length; i++) {
      const cmp = seen[i - 1].createdAt.localeCompare(seen[i].createdAt);
      assert.ok(order === 'desc' ? cmp >= 0 : cmp <= 0, `${order} order by creation`);
    }
  }
  const all = await (await workos.organizations.listOrganizations()).autoPagination();
  for (const id of ours) assert.ok(all.some((o) => o.id === id));
  // Trail organizations have no domains: a domain filter matches none.
  assert.deepEqual((await workos.organizations.listOrganizations({ domains: ['example.com'] })).data, []);

  // Errors.
  const nf = await rejection(workos.organizations.getOrganization('org_01NOPE00000000000000000000'));
  assert.ok(nf instanceof NotFoundException, `got ${nf}`);
  assert.equal(nf.status, 404);
  assert.equal(nf.code, 'entity_not_found');
  assert.equal(nf.message, "Organization 'org_01NOPE00000000000000000000' not found.");
  await assert.rejects(workos.organizations.getOrganizationByExternalId(`ext-${randomUUID()}`), NotFoundException);

  const dup = await rejection(workos.organizations.createOrganization({ name: 'Again', externalId }));
  assert.equal(dup.name, 'ConflictException'); // not exported by the SDK
  assert.equal(dup.status, 409);
  assert.ok(dup.message.includes(externalId), dup.message);

  const noName = await rejection(workos.organizations.createOrganization({ name: '' }));
  assert.ok(noName instanceof UnprocessableEntityException, `got ${noName}`);
  assert.equal(noName.code, 'invalid_request_parameters');
  assert.equal(noName.message, 'The following requirement must be met:\n\trequired\n');

  // Fields Trail does not store are refused, not silently dropped.
  const domains = await rejection(workos.organizations.createOrganization({
    name: 'With Domains',
    domainData: [{ domain: 'example.com', state: 'verified' }],
  }));
  assert.ok(domains instanceof UnprocessableEntityException, `got ${domains}`);
  assert.equal(domains.message, 'The following requirement must be met:\n\tunsupported\n');

  // Trail audited the creation in the organization's own log: seq 0.
  const log = await storedLog(org.id);
  assert.equal(log.length, 1);
  assertOrgCreated(log[0], org, externalId);
  const plainLog = await storedLog(plain.id);
  assert.equal(plainLog.length, 1);
  assertOrgCreated(plainLog[0], plain, undefined);
});

test('createEvent: every field lands in the canonical record', async () => {
  const org = await newOrg('Events Inc');
  const rec = recorder();
  await client(main.key, { fetchFn: rec.fetchFn }).auditLogs.createEvent(org.id, fullEvent);

  // What the SDK sent: one POST, with a key it made up itself.
  assert.equal(rec.calls.length, 1);
  const call = rec.calls[0];
  assert.equal(call.method, 'POST');
  assert.equal(call.path, '/audit_logs/events');
  assert.match(call.headers.get('Idempotency-Key'), /^workos-node-[0-9a-f-]{36}$/);
  assert.equal(call.status, 201);
  assert.deepEqual(await call.response.json(), { success: true });

  const log = await storedLog(org.id);
  assert.equal(log.length, 2, 'the organization-created event and this one');
  assertOrgCreated(log[0], org, undefined);
  const e = log[1];
  assert.equal(e.seq, 1);
  assert.match(e.id, eventID);
  assert.match(e.received_at, isoMillis);
  assert.ok(Math.abs(Date.parse(e.received_at) - Date.now()) < 60_000, `received_at ${e.received_at} is now`);

  // The stored bytes: fixed key order, metadata keys sorted, numbers as
  // sent, strings escaped only where JSON requires (and U+2028).
  const want =
    `{"id":"${e.id}","organization_id":"${org.id}","seq":1,"received_at":"${e.received_at}",` +
    `"action":"user.signed_in","occurred_at":"2024-05-17T08:30:00.123Z",` +
    `"actor":{"id":"user_01GBNJC3MX9ZZJW1FSTF4C5938","type":"user","name":"Zoë Ångström <admin> & \\"friends\\"","metadata":{"level":7,"role":"admin"}},` +
    `"targets":[{"id":"team_01GBNJD4MKHVKJGEWK42JNMBGS","type":"team","metadata":{"owner":"user_01GBTCQ2"}},` +
    `{"id":"doc_42","type":"document","name":"Q3 plan\\u2028draft 😀"}],` +
    `"context":{"location":"203.0.113.7","user_agent":"Mozilla/5.0 Chrome/104.0.0.0"},` +
    `"metadata":{"attempts":3,"big":1e+21,"environment":"staging","mfa":true,"path":"C:\\\\tmp\\\\\\"x\\"","ratio":0.25}}`;
  const got = await trail(`/v1/events/${e.id}`);
  assert.equal(got.status, 200, got.text);
  assert.equal(got.text, want);
  assert.deepEqual(e, JSON.parse(want), 'search returns the same record');

  // And the values round-trip exactly.
  assert.equal(e.actor.name, fullEvent.actor.name);
  assert.equal(e.targets[1].name, fullEvent.targets[1].name);
  assert.equal(e.metadata.path, fullEvent.metadata.path);
  assert.equal(e.metadata.big, 1e21);
});

test('createEvent: optional fields left out stay out', async () => {
  const org = await newOrg('Minimal Ltd');
  await client().auditLogs.createEvent(org.id, {
    action: 'report.generated',
    occurredAt: new Date('2024-01-02T03:04:05.006Z'),
    actor: { type: 'system', id: 'cron' },
    targets: [],
    context: { location: '198.51.100.1' },
  });
  const log = await storedLog(org.id);
  assert.equal(log.length, 2);
  const e = log[1];
  const got = await trail(`/v1/events/${e.id}`);
  assert.equal(got.text,
    `{"id":"${e.id}","organization_id":"${org.id}","seq":1,"received_at":"${e.received_at}",` +
    `"action":"report.generated","occurred_at":"2024-01-02T03:04:05.006Z","actor":{"id":"cron","type":"system"},` +
    `"targets":[],"context":{"location":"198.51.100.1"}}`);
});

test('idempotency as WorkOS defines it: the key alone decides; a reuse with another body is answered like the first', async () => {
  const workos = client();
  const org = await newOrg('Idempotent LLC');
  const paid = { ...fullEvent, action: 'invoice.paid', occurredAt: new Date() };
  const idempotencyKey = randomUUID();
  await workos.auditLogs.createEvent(org.id, paid, { idempotencyKey });
  await workos.auditLogs.createEvent(org.id, paid, { idempotencyKey });
  // Rebuilt on retry (a new occurredAt) or another event: the same key
  // is answered like the first request, and nothing more is stored.
  await workos.auditLogs.createEvent(org.id, { ...paid, occurredAt: new Date(paid.occurredAt.getTime() + 1000) }, { idempotencyKey });
  await workos.auditLogs.createEvent(org.id, { ...paid, action: 'invoice.refunded' }, { idempotencyKey });
  // No key given: the SDK makes a new one per call, so these are two events.
  const sent = { ...paid, action: 'invoice.sent' };
  await workos.auditLogs.createEvent(org.id, sent);
  await workos.auditLogs.createEvent(org.id, sent);
  // Concurrent duplicates with one key: still one event.
  const voidedKey = randomUUID();
  await Promise.all(Array.from({ length: 5 }, () =>
    workos.auditLogs.createEvent(org.id, { ...paid, action: 'invoice.voided' }, { idempotencyKey: voidedKey })));

  const log = await storedLog(org.id);
  const invoices = await search(org.id, { action: 'invoice.*' });
  assert.deepEqual(invoices.map((e) => e.action).sort(),
    ['invoice.paid', 'invoice.sent', 'invoice.sent', 'invoice.voided']);
  assert.deepEqual(log.map((e) => e.action).sort(),
    ['invoice.paid', 'invoice.sent', 'invoice.sent', 'invoice.voided', 'trail.organization.created']);
  assert.deepEqual(new Set(invoices.map((e) => e.id)), new Set(log.filter((e) => e.action.startsWith('invoice.')).map((e) => e.id)));
  // The reuses with another body are counted on /metrics.
  const metrics = await (await fetch(new URL('/metrics', process.env.TRAIL_METRICS_URL ?? 'http://127.0.0.1:9464'))).text();
  const reused = Number(/^trail_idempotency_key_reused_total (\d+)/m.exec(metrics)?.[1]);
  assert.ok(reused >= 2, `trail_idempotency_key_reused_total ${reused}, want at least 2`);
});

test('a lost response: the SDK retries with the same Idempotency-Key and one event is stored', async () => {
  const org = await newOrg('Flaky Network GmbH');
  const sent = [];
  let dropped = false;
  // Deliver the first request, then lose its answer as a broken connection
  // would: the SDK retries such failures on /audit_logs/events.
  const fetchFn = async (url, init) => {
    sent.push(new Headers(init.headers).get('Idempotency-Key'));
    const res = await fetch(url, init);
    if (!dropped) {
      dropped = true;
      assert.equal(res.status, 201);
      throw new TypeError('fetch failed');
    }
    return res;
  };
  await client(main.key, { fetchFn }).auditLogs.createEvent(org.id, { ...fullEvent, action: 'payment.captured' });
  assert.equal(sent.length, 2, 'the SDK retried once');
  assert.equal(sent[0], sent[1], 'with the same key');
  const log = await storedLog(org.id);
  assert.deepEqual(log.map((e) => e.action), ['trail.organization.created', 'payment.captured']);
});

test('validation errors: UnprocessableEntityException, and nothing stored', async () => {
  const org = await newOrg('Invalid Co');
  const rec = recorder();
  const workos = client(main.key, { fetchFn: rec.fetchFn });
  const ev = (over) => ({ ...fullEvent, occurredAt: new Date(), ...over });

  const err = await rejection(workos.auditLogs.createEvent(org.id, ev({ action: '', context: { location: '' } })));
  assert.ok(err instanceof UnprocessableEntityException, `got ${err}`);
  assert.equal(err.status, 422);
  assert.equal(err.message, 'The following requirements must be met:\n\trequired\n\trequired\n');
  // The SDK keeps only the codes; the body is WorkOS's shape.
  const body = await rec.calls.at(-1).response.json();
  assert.equal(body.message, 'Validation failed.');
  assert.deepEqual(body.errors.map(({ code, field }) => ({ code, field })), [
    { code: 'required', field: 'event.action' },
    { code: 'required', field: 'event.context.location' },
  ]);
  for (const e of body.errors) assert.ok(e.message, 'each error says what to fix');

  const cases = [
    ['too_many', 'event.metadata', { metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) }],
    ['invalid_format', 'event.metadata."bad key"', { metadata: { 'bad key': 1 } }],
    ['invalid_type', 'event.metadata.nested', { metadata: { nested: { a: 1 } } }],
    ['too_long', 'event.metadata.long', { metadata: { long: 'x'.repeat(501) } }],
    ['too_many', 'event.targets', { targets: Array.from({ length: 101 }, (_, i) => ({ type: 'user', id: `u${i}` })) }],
    ['out_of_range', 'event.occurred_at', { occurredAt: new Date(Date.now() + 2 * 24 * 3600 * 1000) }],
    ['required', 'event.targets', { targets: undefined }],
    ['required', 'event.actor.id', { actor: { type: 'user' } }],
  ];
  for (const [code, field, over] of cases) {
    const e = await rejection(workos.auditLogs.createEvent(org.id, ev(over)));
    assert.ok(e instanceof UnprocessableEntityException, `${field}: got ${e}`);
    assert.equal(e.message, `The following requirement must be met:\n\t${code}\n`, field);
    const b = await rec.calls.at(-1).response.json();
    assert.deepEqual(b.errors.map(({ code, field }) => ({ code, field })), [{ code, field }]);
  }
  // 422s are not retried.
  assert.equal(rec.calls.length, 1 + cases.length);

  const log = await storedLog(org.id);
  assert.deepEqual(log.map((e) => e.action), ['trail.organization.created']);
});

test('other errors map to the SDK exceptions', async () => {
  const workos = client();
  const org = await newOrg('Errors AG');

  const nf = await rejection(workos.auditLogs.createEvent('org_01NOPE00000000000000000000', fullEvent));
  assert.ok(nf instanceof NotFoundException, `got ${nf}`);
  assert.equal(nf.code, 'entity_not_found');
  assert.equal(nf.message, "Organization 'org_01NOPE00000000000000000000' not found.");

  // Trail's own log is written by Trail only.
  const sys = await rejection(workos.auditLogs.createEvent('org_system', fullEvent));
  assert.ok(sys instanceof GenericServerException, `got ${sys}`);
  assert.equal(sys.status, 403);

  // Over the 1 MiB body limit.
  const wide = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v'.repeat(300)]));
  const big = await rejection(workos.auditLogs.createEvent(org.id, {
    ...fullEvent,
    targets: Array.from({ length: 100 }, (_, i) => ({ type: 'user', id: `u${i}`, metadata: wide })),
  }));
  assert.ok(big instanceof GenericServerException, `got ${big}`);
  assert.equal(big.status, 413);
  assert.equal(big.message, 'Request body exceeds 1048576 bytes.');

  const longKey = await rejection(workos.auditLogs.createEvent(org.id, fullEvent, { idempotencyKey: 'k'.repeat(256) }));
  assert.ok(longKey instanceof GenericServerException, `got ${longKey}`);
  assert.equal(longKey.status, 400);
  assert.match(longKey.message, /Idempotency-Key/);

  // Just under the limits is accepted: 100 targets.
  await workos.auditLogs.createEvent(org.id, {
    ...fullEvent,
    action: 'team.members_added',
    targets: Array.from({ length: 100 }, (_, i) => ({ type: 'user', id: `u${i}`, metadata: { i } })),
  });
  const log = await storedLog(org.id);
  assert.deepEqual(log.map((e) => e.action), ['trail.organization.created', 'team.members_added']);
  assert.equal(log[1].targets.length, 100);
  assert.deepEqual(log[1].targets[99], { id: 'u99', type: 'user', metadata: { i: 99 } });
});

test('API keys: bad, unknown, revoked, under-scoped and restricted keys', async () => {
  const a = await newOrg('Tenant A');
  const b = await newOrg('Tenant B');

  for (const key of ['sk_not_a_real_key', `sk_${randomUUID().replaceAll('-', '')}`]) {
    const w = client(key);
    const e1 = await rejection(w.organizations.listOrganizations());
    assert.ok(e1 instanceof UnauthorizedException, `got ${e1}`);
    assert.equal(e1.status, 401);
    await assert.rejects(w.auditLogs.createEvent(a.id, fullEvent), UnauthorizedException);
  }

  // A key that may only write events.
  const writer = await trail('/v1/api_keys', { method: 'POST', body: { name: 'writer', scopes: ['events:write'] } });
  assert.equal(writer.status, 201, writer.text);
  const w = client(writer.json.secret);
  await w.auditLogs.createEvent(a.id, { ...fullEvent, action: 'writer.wrote' });
  const forbidden = await rejection(w.organizations.listOrganizations());
  assert.ok(forbidden instanceof GenericServerException, `got ${forbidden}`);
  assert.equal(forbidden.status, 403);
  // Revoked: unauthorized from the next request on.
  const revoked = await trail(`/v1/api_keys/${writer.json.id}`, { method: 'DELETE' });
  assert.ok(revoked.status === 200 || revoked.status === 204, revoked.text);
  await assert.rejects(w.auditLogs.createEvent(a.id, { ...fullEvent, action: 'writer.revoked' }), UnauthorizedException);

  // A key restricted to tenant A sees nothing else.
  const restricted = await trail('/v1/api_keys', {
    method: 'POST',
    body: { name: 'tenant a admin', scopes: ['admin', 'events:write'], organization_id: a.id },
  });
  assert.equal(restricted.status, 201, restricted.text);
  const r = client(restricted.json.secret);
  await r.auditLogs.createEvent(a.id, { ...fullEvent, action: 'restricted.wrote' });
  await assert.rejects(r.auditLogs.createEvent(b.id, fullEvent), NotFoundException);
  await assert.rejects(r.organizations.getOrganization(b.id), NotFoundException);
  assert.equal((await r.organizations.getOrganization(a.id)).id, a.id);
  assert.deepEqual((await r.organizations.listOrganizations()).data.map((o) => o.id), [a.id]);
  const create = await rejection(r.organizations.createOrganization({ name: 'Escape' }));
  assert.ok(create instanceof GenericServerException, `got ${create}`);
  assert.equal(create.status, 403);

  const logA = await storedLog(a.id);
  assert.deepEqual(logA.map((e) => e.action),
    ['trail.organization.created', 'writer.wrote', 'trail.api_key.created', 'restricted.wrote']);
  const logB = await storedLog(b.id);
  assert.deepEqual(logB.map((e) => e.action), ['trail.organization.created']);
});

test('rate limit: RateLimitExceededException with Retry-After, and the refused event not stored',
  { skip: !limited && 'TRAIL_LIMITED_URL is not set' }, async () => {
    const workos = client(limited.key, { server: limited });
    const org = await newOrg('Busy Corp', limited);
    // One request a second, bursts of three: a quick run of requests must
    // meet a 429 within a few.
    const accepted = [];
    let refused;
    for (let i = 0; i < 10 && !refused; i++) {
      try {
        await workos.auditLogs.createEvent(org.id, { ...fullEvent, action: `burst.e${i}` });
        accepted.push(`burst.e${i}`);
      } catch (err) {
        refused = err;
      }
    }
    assert.ok(refused instanceof RateLimitExceededException, `got ${refused}`);
    assert.equal(refused.status, 429);
    assert.equal(refused.message, 'Too many requests.');
    assert.ok(Number.isInteger(refused.retryAfter) && refused.retryAfter >= 1, `retryAfter ${refused.retryAfter}`);
    assert.ok(accepted.length <= 3, `accepted ${accepted.length} in a burst of 3`);

    await sleep(refused.retryAfter * 1000);
    const log = await storedLog(org.id, limited);
    assert.deepEqual(log.map((e) => e.action), ['trail.organization.created', ...accepted]);
  });
