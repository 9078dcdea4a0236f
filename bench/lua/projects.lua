-- S5: GET /v1/database/projects with X-API-Key, round-robin over the seeded keys.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local requests, next_request = {}, 0

function init(args)
  for _, key in ipairs(common.lines(os.getenv("BENCH_DIR") .. "/keys.txt")) do
    requests[#requests + 1] = wrk.format("GET", "/v1/database/projects", { ["X-API-Key"] = key })
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

done = common.done
