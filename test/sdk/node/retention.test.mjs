// Audit log retention (GET/PUT /organizations/{id}/audit_logs_retention)
// through the official WorkOS Node SDK, against a running `trail serve`
// started by sdk_test.go with TRAIL_URL and TRAIL_API_KEY.
//
// @workos-inc/node 8.9.0 has no retention method, so these tests call the
// endpoints through the SDK's own generic HTTP client (workos.get and
// workos.put: the same transport, authentication, JSON handling and error
// mapping as its named methods). What was stored is checked with Trail's own
// API (/v1/events).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  WorkOS,
  GenericServerException,
  NotFoundException,
  UnprocessableEntityException,
} from '@workos-inc/node';

const main = { url: new URL(process.env.TRAIL_URL ?? 'http://127.0.0.1:8080'), key: process.env.TRAIL_API_KEY };
assert.ok(main.key, 'TRAIL_API_KEY must be set');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// client is a WorkOS SDK client for key; fetchFn, when given, is the fetch
// it uses (a recorder).
function client(key = main.key, fetchFn) {
  return new WorkOS(key, { apiHostname: main.url.hostname, port: Number(main.url.port), https: false, fetchFn });
}

// recorder returns a fetch that keeps a copy of each response.
function recorder() {
  const calls = [];
  const fetchFn = async (url, init) => {
    const res = await fetch(url, init);
    calls.push({ method: init.method, path: new URL(url).pathname, body: init.body, status: res.status, response: res.clone() });
    return res;
  };
  return { calls, fetchFn };
}

// trail calls Trail's own API directly.
async function trail(path, { method = 'GET', body, key = main.key } = {}) {
  const res = await fetch(new URL(path, main.url), {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body && { 'Content-Type': 'application/json' }) },
    body: body && JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

async function rejection(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected the call to be rejected');
}

const retentionPath = (orgId) => `/organizations/${orgId}/audit_logs_retention`;

// auditEvents waits until the organization's log shows n retention changes
// (search lags acceptance by up to about a second) and returns them, oldest
// first.
async function auditEvents(orgId, n) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const q = new URLSearchParams({ organization_id: orgId, action: 'trail.retention.updated', order: 'asc', limit: '100' });
    const res = await trail(`/v1/events?${q}`);
    assert.equal(res.status, 200, res.text);
    if (res.json.data.length >= n || Date.now() > deadline) return res.json.data;
    await sleep(100);
  }
}

async function apiKey(name, scopes, organizationId) {
  const res = await trail('/v1/api_keys', { method: 'POST', body: { name, scopes, organization_id: organizationId } });
  assert.equal(res.status, 201, res.text);
  return res.json.secret;
}

test('retention: the deployment default, then both forms of PUT', async () => {
  const workos = client();
  const org = await workos.organizations.createOrganization({ name: 'Retention Corp' });

  assert.deepEqual((await workos.get(retentionPath(org.id))).data, { retention_period_in_days: 30 });

  // The older SDKs' form, then the newer SDKs' named periods.
  const cases = [
    [{ retention_period_in_days: 90 }, 90],
    [{ retention_period_in_days: 3650 }, 3650],
    [{ retention_period: '1_MONTH' }, 30],
    [{ retention_period: '11_MONTHS' }, 330],
    [{ retention_period: '1_YEAR' }, 365],
    [{ retention_period: '7_YEARS' }, 2555],
    [{ retention_period: '2_YEARS', retention_period_in_days: 730 }, 730],
  ];
  for (const [body, days] of cases) {
    const rec = recorder();
    const { data } = await client(main.key, rec.fetchFn).put(retentionPath(org.id), body);
    assert.deepEqual(data, { retention_period_in_days: days }, JSON.stringify(body));
    assert.equal(rec.calls[0].method, 'PUT');
    assert.equal(rec.calls[0].path, retentionPath(org.id));
    assert.deepEqual(JSON.parse(rec.calls[0].body), body, 'the SDK sends the body as given');
    assert.deepEqual((await workos.get(retentionPath(org.id))).data, { retention_period_in_days: days });
  }

  // Each change is an audit event in the organization's own log.
  const events = await auditEvents(org.id, cases.length);
  assert.equal(events.length, cases.length);
  let previous = 30;
  for (const [i, e] of events.entries()) {
    const days = cases[i][1];
    assert.equal(e.actor.type, 'api_key');
    assert.match(e.actor.id, /^key_/);
    assert.deepEqual(e.targets, [{ id: org.id, type: 'organization', name: 'Retention Corp' }]);
    assert.equal(e.metadata.retention_period_in_days, String(days));
    assert.equal(e.metadata.previous_retention_period_in_days, String(previous));
    assert.match(e.context.user_agent, /^workos-node\/8\.9\.0\b/);
    previous = days;
  }
});

test('retention: invalid periods are 422 Validation failed., and nothing changes', async () => {
  const org = await client().organizations.createOrganization({ name: 'Strict Retention' });
  const rec = recorder();
  const workos = client(main.key, rec.fetchFn);
  await workos.put(retentionPath(org.id), { retention_period_in_days: 60 });
  const cases = [
    [{ retention_period_in_days: 45 }, 'invalid', 'retention_period_in_days'],
    [{ retention_period_in_days: 360 }, 'invalid', 'retention_period_in_days'],
    [{ retention_period_in_days: 0 }, 'invalid', 'retention_period_in_days'],
    [{ retention_period_in_days: 4015 }, 'invalid', 'retention_period_in_days'],
    [{ retention_period_in_days: '30' }, 'invalid_type', 'retention_period_in_days'],
    [{ retention_period: '12_MONTHS' }, 'invalid', 'retention_period'],
    [{ retention_period: '1_MONTHS' }, 'invalid', 'retention_period'],
    [{ retention_period: 'FOREVER' }, 'invalid', 'retention_period'],
    [{ retention_period: '1_YEAR', retention_period_in_days: 30 }, 'invalid', 'retention_period'],
    [{}, 'required', 'retention_period_in_days'],
  ];
  for (const [body, code, field] of cases) {
    const err = await rejection(workos.put(retentionPath(org.id), body));
    assert.ok(err instanceof UnprocessableEntityException, `${JSON.stringify(body)}: got ${err}`);
    assert.equal(err.status, 422);
    assert.equal(err.message, `The following requirement must be met:\n\t${code}\n`, JSON.stringify(body));
    const res = await rec.calls.at(-1).response.json();
    assert.equal(res.message, 'Validation failed.');
    assert.deepEqual(res.errors.map(({ code, field }) => ({ code, field })), [{ code, field }], JSON.stringify(body));
    assert.ok(res.errors[0].message, 'the error says what to fix');
  }
  assert.deepEqual((await workos.get(retentionPath(org.id))).data, { retention_period_in_days: 60 });
  assert.equal((await auditEvents(org.id, 1)).length, 1, 'only the valid change was audited');
});

test('retention: who may read and change it', async () => {
  const workos = client();
  const mine = await workos.organizations.createOrganization({ name: 'Mine' });
  const theirs = await workos.organizations.createOrganization({ name: 'Theirs' });
  const reader = client(await apiKey('retention reader', ['events:read'], mine.id));
  const orgAdmin = client(await apiKey('retention admin', ['admin'], mine.id));
  const globalReader = client(await apiKey('global reader', ['events:read']));

  // A key restricted to the organization reads it; changing it needs admin.
  assert.deepEqual((await reader.get(retentionPath(mine.id))).data, { retention_period_in_days: 30 });
  const forbidden = await rejection(reader.put(retentionPath(mine.id), { retention_period: '3_MONTHS' }));
  assert.ok(forbidden instanceof GenericServerException, `got ${forbidden}`);
  assert.equal(forbidden.status, 403);
  assert.deepEqual((await orgAdmin.put(retentionPath(mine.id), { retention_period: '3_MONTHS' })).data, { retention_period_in_days: 90 });

  // Another organization does not exist for a restricted key.
  for (const c of [reader, orgAdmin]) {
    const nf = await rejection(c.get(retentionPath(theirs.id)));
    assert.ok(nf instanceof NotFoundException, `got ${nf}`);
    assert.equal(nf.message, `Organization '${theirs.id}' not found.`);
    await assert.rejects(c.put(retentionPath(theirs.id), { retention_period_in_days: 30 }), NotFoundException);
  }
  // An unrestricted key without admin may not read it.
  const denied = await rejection(globalReader.get(retentionPath(mine.id)));
  assert.equal(denied.status, 403);
  const unknown = await rejection(workos.get(retentionPath('org_01NOPE00000000000000000000')));
  assert.ok(unknown instanceof NotFoundException, `got ${unknown}`);
  assert.deepEqual((await workos.get(retentionPath(theirs.id))).data, { retention_period_in_days: 30 });
});
