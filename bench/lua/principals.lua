-- P: GET /v1/auth/me with an API key never used before, from a client
-- address never seen before: each request is a new principal in the
-- per-principal limiter and a new entry in the API-key cache. Keys are the
-- lines of BENCH_DIR/principals.txt from BENCH_KEYS_START (0-based), at most
-- BENCH_KEYS_POOL of them, formatted before the run (as flood.lua's, so that
-- wrk's own work is not taken from the server). Past the pool the keys
-- repeat, so the caller sizes the pool to outlast the run.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local requests, sent = {}, 0

local function address(i)
  -- From 10.0.0.0 up: 2^24 addresses, one per key.
  return string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
end

function init(args)
  local start = tonumber(os.getenv("BENCH_KEYS_START") or "0")
  local pool = tonumber(os.getenv("BENCH_KEYS_POOL") or "0")
  local file = assert(io.open(os.getenv("BENCH_DIR") .. "/principals.txt", "r"))
  local line = 0
  for key in file:lines() do
    if line >= start + pool then break end
    if line >= start then
      requests[#requests + 1] = wrk.format("GET", "/v1/auth/me",
        { ["X-API-Key"] = key, ["X-Forwarded-For"] = address(line) })
    end
    line = line + 1
  end
  file:close()
end

function request()
  sent = sent + 1
  return requests[(sent - 1) % #requests + 1]
end

done = common.done
