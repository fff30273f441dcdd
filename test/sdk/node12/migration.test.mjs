// docs/WORKOS.md, tried end to end with the WorkOS Node SDK 12: sdk_test.go
// imported WorkOS's list of organizations with `trail org import` before
// starting the server (TRAIL_IMPORTED_ORG is the id it holds), and the
// application's code, unchanged but for the host, goes on with the ids its
// database already has.
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

  // The import and the event are in the organization's log.
  const deadline = Date.now() + 30_000;
  let actions;
  for (;;) {
    const res = await fetch(new URL(`/v1/events?organization_id=${orgId}&order=asc`, url), { headers: { Authorization: `Bearer ${key}` } });
    actions = (await res.json()).data.map((e) => e.action);
    if (actions.length >= 3 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(actions, ['trail.organization.imported', 'user.signed_in', 'trail.portal_link.generated']);
});
