// The WorkOS Node SDK's portal.generateLink against a running `trail serve`
// (TRAIL_URL, TRAIL_API_KEY from sdk_test.go): the link it returns opens the
// Admin Portal once, and bad requests get WorkOS-shaped errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkOS, GeneratePortalLinkIntent, NotFoundException, UnprocessableEntityException } from '@workos-inc/node';

const url = new URL(process.env.TRAIL_URL ?? 'http://127.0.0.1:8080');
const key = process.env.TRAIL_API_KEY;
assert.ok(key, 'TRAIL_API_KEY must be set');
const workos = new WorkOS(key, { apiHostname: url.hostname, port: Number(url.port), https: false });

async function rejection(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected the call to be rejected');
}

// openLink opens a portal link as a person does: the GET shows a page with
// one button and spends nothing; pressing the button POSTs its form.
async function openLink(link) {
  const page = await fetch(link, { redirect: 'manual' });
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('set-cookie'), null);
  const html = await page.text();
  const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]+)"`))[1];
  return fetch(new URL('/portal/launch', url), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: url.origin },
    body: new URLSearchParams({ secret: field('secret'), csrf: field('csrf') }),
  });
}

test('portal.generateLink returns a single-use link into the organization', async () => {
  const org = await workos.organizations.createOrganization({ name: 'Portal SDK test' });
  const { link } = await workos.portal.generateLink({
    organization: org.id,
    intent: GeneratePortalLinkIntent.AuditLogs,
    returnUrl: 'https://app.example.com/settings',
  });
  assert.match(link, new RegExp(`^${url.origin}/portal/launch\\?secret=ptl_[A-Za-z0-9_-]{43}$`));

  // Fetching it (as a link scanner would) shows a page naming the
  // organization and spends nothing.
  for (let i = 0; i < 2; i++) {
    const scan = await fetch(link, { redirect: 'manual' });
    assert.equal(scan.status, 200);
    assert.match(await scan.text(), /Portal SDK test/);
  }
  // Pressing its button starts a session and moves to a URL without the secret.
  const first = await openLink(link);
  assert.equal(first.status, 303);
  assert.equal(first.headers.get('location'), '/portal/events');
  const cookie = first.headers.get('set-cookie');
  assert.match(cookie, /^trail_portal=[^;]+; Path=\/portal; Max-Age=43200; HttpOnly; SameSite=Lax$/);
  const page = await fetch(new URL('/portal/events', url), { headers: { cookie: cookie.split(';')[0] } });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /Portal SDK test/);

  // Once only.
  const again = await fetch(link, { redirect: 'manual' });
  assert.equal(again.status, 410);
  assert.equal(again.headers.get('set-cookie'), null);
  assert.match(await again.text(), /This link was already used/);
});

test('portal.generateLink opens the log streams pages for intent log_streams', async () => {
  const org = await workos.organizations.createOrganization({ name: 'Portal SDK streams' });
  const { link } = await workos.portal.generateLink({ organization: org.id, intent: GeneratePortalLinkIntent.LogStreams });
  const first = await openLink(link);
  assert.equal(first.status, 303);
  assert.equal(first.headers.get('location'), '/portal/streams');
  const cookie = first.headers.get('set-cookie').split(';')[0];
  const page = await fetch(new URL('/portal/streams', url), { headers: { cookie } });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /Add a log stream/);
  // The audit logs pages are not part of a log streams session.
  const events = await fetch(new URL('/portal/events', url), { headers: { cookie } });
  assert.equal(events.status, 403);
});

test('portal.generateLink errors are WorkOS-shaped', async () => {
  const org = await workos.organizations.createOrganization({ name: 'Portal SDK errors' });
  const unknown = await rejection(workos.portal.generateLink({ organization: 'org_01JUNKNOWN000000000000000', intent: 'audit_logs' }));
  assert.ok(unknown instanceof NotFoundException, String(unknown));

  // WorkOS's intents for products Trail lacks: a message naming the
  // product, which the SDK shows as the exception's message.
  for (const [intent, product] of [['sso', 'Single Sign-On'], ['dsync', 'Directory Sync']]) {
    const err = await rejection(workos.portal.generateLink({ organization: org.id, intent }));
    assert.ok(err instanceof UnprocessableEntityException, `${intent}: ${err}`);
    assert.match(err.message, new RegExp(`intent ${intent} is for WorkOS ${product}`));
  }
  for (const [body, field] of [
    [{ organization: org.id, intent: 'audit_logs', returnUrl: 'javascript:alert(1)' }, 'return_url'],
    [{ organization: org.id, intent: 'audit_logs', successUrl: '//evil.example' }, 'success_url'],
  ]) {
    const err = await rejection(workos.portal.generateLink(body));
    assert.ok(err instanceof UnprocessableEntityException, `${JSON.stringify(body)}: ${err}`);
    // The SDK keeps only the codes; the field is in the body, as WorkOS sends it.
    const res = await fetch(new URL('/portal/generate_link', url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ organization: body.organization, intent: body.intent, return_url: body.returnUrl, success_url: body.successUrl }),
    });
    assert.equal(res.status, 422);
    const json = await res.json();
    assert.ok(json.errors.some((e) => e.field === field), JSON.stringify(json));
  }
});
