-- wrk -t2 -c64 -d10s --latency -s bench/wrk/distkit_get.lua http://LEADER_HTTP
-- Linearizable reads (GET /kv/<key>) of random keys among 10,000; load them
-- first with distkit_put.lua (a missing key is answered 404, which wrk does
-- not count as an error but the `done` line below does).
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local c = require("common")

math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))

request = function()
  return wrk.format("GET", "/kv/" .. c.key(math.random(0, c.KEYS - 1)))
end

done = function(summary, latency, requests)
  io.write(string.format("unexpected answers: %d\n", summary.errors.status))
end
