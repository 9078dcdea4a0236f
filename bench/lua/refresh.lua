-- S6: POST /v1/auth/refresh. Each refresh revokes the token it used, so tokens
-- form a queue: a request takes the oldest, its response returns the new one.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local queue, first, last = {}, 1, 0

function init(args)
  for _, token in ipairs(common.lines(os.getenv("BENCH_DIR") .. "/refresh_tokens.txt")) do
    last = last + 1
    queue[last] = token
  end
end

function request()
  local token = queue[first]
  queue[first] = nil
  first = first + 1
  return wrk.format("POST", "/v1/auth/refresh", { ["Authorization"] = "Bearer " .. (token or "exhausted") })
end

function response(status, headers, body)
  local token = body:match('"access_token"%s*:%s*"([^"]+)"')
  if token then
    last = last + 1
    queue[last] = token
  end
end

done = common.done
