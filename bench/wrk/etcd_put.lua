-- wrk -t2 -c64 -d10s --latency -s bench/wrk/etcd_put.lua http://LEADER_CLIENT_URL
-- The same puts to etcd's gRPC-JSON gateway (POST /v3/kv/put, answered 200).
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local c = require("common")

math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
local value = c.base64(c.VALUE)
local bodies = {}
for i = 0, c.KEYS - 1 do
  bodies[i] = '{"key":"' .. c.base64(c.key(i)) .. '","value":"' .. value .. '"}'
end

request = function()
  local body = bodies[math.random(0, c.KEYS - 1)]
  return wrk.format("POST", "/v3/kv/put", { ["Content-Type"] = "application/json" }, body)
end

done = function(summary, latency, requests)
  io.write(string.format("unexpected answers: %d\n", summary.errors.status))
end
