// docs/WORKOS.md, tried end to end with the WorkOS Node SDK 12: sdk_test.go
// imported WorkOS's list of organizations with `trail org import` and the
// organization's history with `trail import` (WorkOS's audit-log CSV
// export) before starting the server (TRAIL_IMPORTED_ORG is the id it
// holds), and the application's code, unchanged but for the host, goes on
// with the ids its database already has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkOS } from '@workos-inc/node';

const url = new URL(process.env.TRAIL_URL ?? 'http://127.0.0.1:8080');
const key = process.env.TRAIL_API_KEY;
const orgId = process.env.TRAIL_IMPORTED_ORG;
assert.ok(key && orgId, 'TRAIL_API_KEY and TRAIL_IMPORTED_ORG must be set');
// The one line that changes when switching: the host.
const workos = new WorkOS(key, { apiHostname: url.hostname, port: Number(url.port), https: false });

test('after trail org import, the application works with its WorkOS organization ids', async () => {
  const org = await workos.organizations.getOrganization(orgId);
  assert.equal(org.id, orgId);
  assert.equal(org.name, 'Foo Corp');
  assert.equal(org.externalId, '2fe01467-f7ea-4dd2-8b79-c2b4f56d0191');
  assert.equal(new Date(org.createdAt).toISOString(), '2021-06-25T19:07:33.155Z');
  assert.equal((await workos.organizations.getOrganizationByExternalId('2fe01467-f7ea-4dd2-8b79-c2b4f56d0191')).id, orgId);

  await workos.auditLogs.createEvent(orgId, {
    action: 'user.signed_in',
    occurredAt: new Date(),
    actor: { type: 'user', id: 'user_01GBNJC3MX9ZZJW1FSTF4C5938', name: 'Jon Smith' },
    targets: [{ type: 'team', id: 'team_01GBNJD4MKHVKJGEWK42JNMBGS' }],
    context: { location: '123.123.123.123', userAgent: 'Chrome/104.0.0.0' },
  });
  const { link } = await workos.adminPortal.generateLink({ organization: orgId, externalUserId: 'user_01GBNJC3MX9ZZJW1FSTF4C5938' });
  assert.match(link, /\/portal\/launch\?secret=ptl_/);

  // The organization's log: its import, the history imported from WorkOS's
  // CSV export (`trail import`, before the server started), the import's
  // own audit event, and what the application sent after the switch.
  const deadline = Date.now() + 30_000;
  let data;
  for (;;) {
    const res = await fetch(new URL(`/v1/events?organization_id=${orgId}&order=asc&limit=100`, url), { headers: { Authorization: `Bearer ${key}` } });
    data = (await res.json()).data;
    if (data.length >= 7 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const bySeq = [...data].sort((a, b) => a.seq - b.seq);
  assert.deepEqual(bySeq.map((e) => e.action), [
    'trail.organization.imported',
    'user.signed_in', 'document.updated', 'user.role_changed', // the imported history
    'trail.events.imported',
    'user.signed_in', 'trail.portal_link.generated',
  ]);
  // The history keeps its WorkOS ids and times, and says it was imported.
  const imported = bySeq.slice(1, 4);
  assert.deepEqual(imported.map((e) => e.imported), [
    { source: 'workos', id: 'audit_log_event_01GBZK5MP7TD1YCFQHFR22180V' },
    { source: 'workos', id: 'audit_log_event_01GBZK6Q2T4HJ3KXNYF5Y1QW9R' },
    { source: 'workos', id: 'audit_log_event_01GC0A1B2C3D4E5F6G7H8J9K0M' },
  ]);
  assert.equal(imported[0].occurred_at, '2022-09-02T17:14:57.094Z');
  assert.equal(imported[1].targets[0].name, 'Q3 plan, draft');
  assert.equal(bySeq[4].metadata.events, 3);
  // Events sent after the switch carry no import mark.
  assert.equal(bySeq[5].imported, undefined);
  // Searching by the old actor finds old and new events alike.
  const res = await fetch(new URL(`/v1/events?organization_id=${orgId}&actor_id=user_01GBNJC3MX9ZZJW1FSTF4C5938&limit=100`, url), { headers: { Authorization: `Bearer ${key}` } });
  assert.equal((await res.json()).data.length, 3);
});
