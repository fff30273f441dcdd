// Read-your-writes through the official WorkOS Node SDK against a running
// `trail serve` whose search indexer is held back (TRAIL_UNINDEXED_URL,
// TRAIL_UNINDEXED_API_KEY from sdk_test.go; TRAIL_URL and TRAIL_API_KEY
// otherwise): an event is in every search, page and export from the moment
// createEvent resolves, whatever the indexer has reached. No search here
// waits or retries: each reads at once after the write, as a user's own
// integration test would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WorkOS } from '@workos-inc/node';

const url = new URL(process.env.TRAIL_UNINDEXED_URL ?? process.env.TRAIL_URL ?? 'http://127.0.0.1:8080');
const key = process.env.TRAIL_UNINDEXED_URL ? process.env.TRAIL_UNINDEXED_API_KEY : process.env.TRAIL_API_KEY;
assert.ok(key, 'TRAIL_API_KEY must be set');
const workos = new WorkOS(key, { apiHostname: url.hostname, port: Number(url.port), https: false });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function trail(path) {
  const res = await fetch(new URL(path, url), { headers: { Authorization: `Bearer ${key}` } });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

// list returns every event of a search, following the after cursors.
async function list(params) {
  const out = [];
  let after;
  for (;;) {
    const q = new URLSearchParams({ ...params, ...(after && { after }) });
    const res = await trail(`/v1/events?${q}`);
    assert.equal(res.status, 200, res.text);
    out.push(...res.json.data);
    after = res.json.list_metadata.after;
    if (!after) return out;
  }
}

test('an organization lists its own creation event at once', async () => {
  for (let round = 0; round < 5; round++) {
    const org = await workos.organizations.createOrganization({ name: `ryw ${randomUUID()}` });
    const res = await trail(`/v1/events?organization_id=${org.id}`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.data.map((e) => e.action), ['trail.organization.created'], res.text);
  }
});

test('createEvent, then every filter at once finds the event', async () => {
  const org = await workos.organizations.createOrganization({ name: `ryw filters ${randomUUID()}` });
  const word = `w${randomUUID().replaceAll('-', '')}`;
  const action = `ryw_${word}.happened`;
  // A schema the event does not match, so that it is recorded with a
  // schema mismatch.
  await workos.auditLogs.createSchema({ action, targets: [{ type: 'invoice' }] });
  for (let round = 0; round < 5; round++) {
    const at = new Date();
    const actorId = `user_${word}_${round}`;
    const actorName = `Rae ${word} ${round}`;
    const targetId = `doc_${word}_${round}`;
    await workos.auditLogs.createEvent(org.id, {
      action,
      occurredAt: at,
      actor: { type: 'user', id: actorId, name: actorName },
      targets: [{ type: 'document', id: targetId }],
      context: { location: '203.0.113.7', userAgent: 'ryw-test' },
      metadata: { note: `${word} round${round}` },
    });
    const base = { organization_id: org.id, limit: '100' };
    const filters = {
      none: {},
      action: { action },
      'action prefix': { action: `ryw_${word}.*` },
      actor_id: { actor_id: actorId },
      actor_name: { actor_name: actorName },
      target_type: { target_type: 'document' },
      target: { target_type: 'document', target_id: targetId },
      q: { q: `${word} round${round}` },
      'q prefix': { q: `round${round}*` },
      range: { range_start: new Date(at.getTime() - 1000).toISOString(), range_end: new Date(at.getTime() + 1000).toISOString() },
      schema_mismatch: { schema_mismatch: 'true' },
      'ascending, small pages': { order: 'asc', limit: '1' },
    };
    for (const [name, params] of Object.entries(filters)) {
      const found = await list({ ...base, ...params });
      const hit = found.filter((e) => e.actor.id === actorId);
      assert.equal(hit.length, 1, `round ${round}, filter ${name}: ${JSON.stringify(found.map((e) => e.actor.id))}`);
      if (name === 'none' || name.startsWith('ascending')) {
        // Every event of the organization so far: its creation and the
        // rounds, each exactly once.
        assert.equal(found.length, round + 2, `round ${round}, filter ${name}`);
        assert.equal(new Set(found.map((e) => e.id)).size, found.length);
      }
      if (name === 'none') {
        const one = await trail(`/v1/events/${hit[0].id}`);
        assert.equal(one.status, 200, one.text);
        assert.equal(one.json.actor.id, actorId);
      }
    }
  }
});

test('an export created right after createEvent holds the event', async () => {
  const org = await workos.organizations.createOrganization({ name: `ryw export ${randomUUID()}` });
  const rangeStart = new Date(Date.now() - 60_000);
  const actorId = `user_${randomUUID().replaceAll('-', '')}`;
  await workos.auditLogs.createEvent(org.id, {
    action: 'ryw.exported',
    occurredAt: new Date(),
    actor: { type: 'user', id: actorId },
    targets: [{ type: 'document', id: 'doc_1' }],
    context: { location: '203.0.113.7' },
  });
  const created = await workos.auditLogs.createExport({ organizationId: org.id, rangeStart, rangeEnd: new Date(Date.now() + 60_000) });
  const deadline = Date.now() + 60_000;
  let e = created;
  while (e.state === 'pending' && Date.now() < deadline) {
    await sleep(100); // the export job runs in the background
    e = await workos.auditLogs.getExport(created.id);
  }
  assert.equal(e.state, 'ready');
  const csv = await (await fetch(e.url)).text();
  assert.match(csv, new RegExp(actorId));
});
