-- wrk script: single events (POST /audit_logs/events, the WorkOS call), the
-- body of `trail bench ingest`, spread over organizations. Usage:
--   TRAIL_API_KEY=sk_… TRAIL_ORGS=org_a,org_b wrk -t2 -c64 -d10s --latency \
--     -s bench/wrk/single.lua http://127.0.0.1:8080
-- docs/PERFORMANCE.md ("CPU per event") uses it against trail serve and
-- against the no-storage ceiling (go run ./bench/compare -serve-ceiling ADDR)
-- and the naive app over HTTP (go run ./bench/compare -serve-naive ADDR
-- -naive-database FILE_OR_URL: one INSERT per request).
local orgs = {}
for org in string.gmatch(os.getenv("TRAIL_ORGS") or "org_ceiling", "[^,]+") do
  orgs[#orgs + 1] = org
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TRAIL_API_KEY") or "")
request = function()
  n = n + 1
  local body = '{"organization_id":"' .. orgs[(n % #orgs) + 1] .. '","event":{"action":"user.signed_in","occurred_at":"' ..
    os.date("!%Y-%m-%dT%H:%M:%S.000Z") .. '","actor":{"type":"user","id":"user_' .. (n % 1000) ..
    '","name":"Jon Smith","metadata":{"role":"admin","team":"platform"}},"targets":[{"type":"team","id":"team_' .. (n % 50) ..
    '","name":"Platform"},{"type":"document","id":"doc_' .. n .. '","metadata":{"size":1024}}],"context":{"location":"203.0.113.7",' ..
    '"user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},' ..
    '"metadata":{"request_id":"req_' .. n .. '","mfa":true,"attempts":1,"region":"eu-west-1","plan":"enterprise"}}}'
  return wrk.format(nil, "/audit_logs/events", nil, body)
end
