-- S6: POST /v1/auth/refresh. Each refresh revokes the token it used, so tokens
-- form a queue: a request takes the oldest, its response returns the new one.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local queue

function init(args)
  queue = common.queue("refresh_tokens.txt")
end

function request()
  return wrk.format("POST", "/v1/auth/refresh", { ["Authorization"] = "Bearer " .. queue.take() })
end

function response(status, headers, body)
  local token = body:match('"access_token"%s*:%s*"([^"]+)"')
  if token then queue.give(token) end
end

done = common.done
