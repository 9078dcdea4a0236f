-- S7: POST /v1/auth/refresh with {"refresh_token"}: refresh-token rotation.
-- Each exchange spends the token it used and returns the session's next one,
-- so every token is presented once (a second use would end its session).
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local queue

function init(args)
  queue = common.queue("rotation_tokens.txt")
end

function request()
  return wrk.format("POST", "/v1/auth/refresh", { ["Content-Type"] = "application/json" },
    '{"refresh_token":"' .. queue.take() .. '"}')
end

function response(status, headers, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then queue.give(token) end
end

done = common.done
