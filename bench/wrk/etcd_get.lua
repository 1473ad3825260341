-- wrk -t2 -c64 -d10s --latency -s bench/wrk/etcd_get.lua http://LEADER_CLIENT_URL
-- Linearizable reads (etcd's default) through the gateway: POST /v3/kv/range.
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local c = require("common")

math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
local bodies = {}
for i = 0, c.KEYS - 1 do
  bodies[i] = '{"key":"' .. c.base64(c.key(i)) .. '"}'
end

request = function()
  local body = bodies[math.random(0, c.KEYS - 1)]
  return wrk.format("POST", "/v3/kv/range", { ["Content-Type"] = "application/json" }, body)
end

done = function(summary, latency, requests)
  io.write(string.format("unexpected answers: %d\n", summary.errors.status))
end
