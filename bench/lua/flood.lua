-- F: POST /v1/auth/login-json from a new client address every request, as a
-- trusted proxy would forward it: IPv4 and IPv6 (each its own /64) in turn.
-- The body is incomplete, so each request is answered 422 at once: all it
-- costs the server is its per-address limit key. Addresses count up from
-- BENCH_FLOOD_START, so consecutive runs never repeat one.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local n = tonumber(os.getenv("BENCH_FLOOD_START") or "0")
local body = '{"username": "flood@example.com"}'

-- wrk runs LuaJIT (Lua 5.1): plain arithmetic, no integer operators.
local function address(i)
  local k = math.floor(i / 2)
  if i % 2 == 0 then
    -- From 100.64.0.0 up: 2^30 distinct IPv4 addresses before a repeat.
    local v = 1681915904 + k % 1073741823
    return string.format("%d.%d.%d.%d", math.floor(v / 16777216) % 256, math.floor(v / 65536) % 256,
      math.floor(v / 256) % 256, v % 256)
  end
  return string.format("2001:db8:%x:%x::1", math.floor(k / 65536) % 65536, k % 65536)
end

-- wrk shares the two cores with the server, so whatever it spends making a
-- request is taken from the server, and the comparison with /me (me.lua sends
-- requests formatted in advance) would measure wrk. So the first
-- BENCH_FLOOD_POOL requests are formatted before the run, like me.lua's; past
-- them, each is the template around its address.
local head, tail
local pool, first = {}, n

function init(args)
  local marker = "ADDRESS-GOES-HERE"
  local headers = { ["Content-Type"] = "application/json", ["X-Forwarded-For"] = marker }
  local template = wrk.format("POST", "/v1/auth/login-json", headers, body)
  local at = string.find(template, marker, 1, true)
  head, tail = string.sub(template, 1, at - 1), string.sub(template, at + #marker)
  for i = 1, tonumber(os.getenv("BENCH_FLOOD_POOL") or "0") do
    pool[i] = head .. address(first + i) .. tail
  end
end

function request()
  n = n + 1
  return pool[n - first] or (head .. address(n) .. tail)
end

done = common.done
