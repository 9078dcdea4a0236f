-- S1: POST /v1/auth/login-json, round-robin over the seeded users (all correct).
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local users, next_user = nil, 0

function init(args)
  users = common.lines(os.getenv("BENCH_DIR") .. "/users.txt")
end

function request()
  next_user = next_user % #users + 1
  local body = string.format('{"username": "%s", "password": "%s"}', users[next_user], os.getenv("BENCH_PASSWORD"))
  return wrk.format("POST", "/v1/auth/login-json", { ["Content-Type"] = "application/json" }, body)
end

done = common.done
