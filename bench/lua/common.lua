-- Shared by every scenario: reading seeded credentials, and one JSON line
-- with the run's figures when wrk finishes (parsed by bench/report.py).

local common = {}

function common.lines(path)
  local out = {}
  local file = assert(io.open(path, "r"), "cannot read " .. path)
  for line in file:lines() do
    if line ~= "" then out[#out + 1] = line end
  end
  file:close()
  return out
end

-- A queue of single-use credentials read from `file` (one per line): `take`
-- gives the oldest, `give` adds one at the end (a response's replacement).
function common.queue(file)
  local items, first, last = {}, 1, 0
  for _, item in ipairs(common.lines(os.getenv("BENCH_DIR") .. "/" .. file)) do
    last = last + 1
    items[last] = item
  end
  return {
    take = function()
      local item = items[first]
      items[first] = nil
      first = first + 1
      return item or "exhausted"
    end,
    give = function(item)
      last = last + 1
      items[last] = item
    end,
  }
end

function common.done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_JSON {"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f, "errors_status": %d, "errors_connect": %d, ' ..
    '"errors_read": %d, "errors_write": %d, "errors_timeout": %d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    e.status, e.connect, e.read, e.write, e.timeout))
end

return common
