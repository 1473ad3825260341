-- wrk -t2 -c64 -d10s --latency -s bench/wrk/distkit_put.lua http://LEADER_HTTP
-- Puts of 64-byte values under random 16-byte keys to distkit's HTTP API
-- (PUT /kv/<key>, answered 204). Point it at the leader: a follower answers
-- 307, which wrk does not follow, and the run reports those as unexpected.
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local c = require("common")

math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))

request = function()
  local key = c.key(math.random(0, c.KEYS - 1))
  return wrk.format("PUT", "/kv/" .. key, { ["Content-Type"] = "text/plain" }, c.VALUE)
end

done = function(summary, latency, requests)
  io.write(string.format("unexpected answers: %d\n", summary.errors.status))
end
