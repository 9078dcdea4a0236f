-- S2: GET /v1/auth/me with a bearer JWT, round-robin over the seeded tokens.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local requests, next_request = {}, 0

function init(args)
  for _, token in ipairs(common.lines(os.getenv("BENCH_DIR") .. "/tokens.txt")) do
    requests[#requests + 1] = wrk.format("GET", "/v1/auth/me", { ["Authorization"] = "Bearer " .. token })
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

done = common.done
