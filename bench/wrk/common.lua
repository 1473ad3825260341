-- Shared by the wrk scripts: 16-byte keys over a 10,000-key space, 64-byte
-- values, and a base64 encoder for etcd's JSON gateway. Each wrk thread
-- loads this file with its own random seed.
local M = {}

M.KEYS = 10000
M.VALUE = string.rep("v", 64)

-- "key-" and 12 digits: 16 bytes.
function M.key(i)
  return string.format("key-%012d", i)
end

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = alphabet:sub(c1 + 1, c1 + 1) .. alphabet:sub(c2 + 1, c2 + 1) ..
      (b and alphabet:sub(c3 + 1, c3 + 1) or "=") .. (c and alphabet:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

return M
