-- S4: POST /v1/auth/register with a fresh email each time.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local counter, run = 0, os.getenv("BENCH_RUN")

function request()
  counter = counter + 1
  local body = string.format('{"email": "s4-%s-%d@example.com", "password": "%s"}', run, counter, os.getenv("BENCH_PASSWORD"))
  return wrk.format("POST", "/v1/auth/register", { ["Content-Type"] = "application/json" }, body)
end

done = common.done
