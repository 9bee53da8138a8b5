-- wrk script of scripts/perf.sh: sends random requests of a pool file
-- written by tools/perfdata (METHOD<tab>/path<tab>body per line), so every
-- request reads random entities while the ceiling server knows every answer.
--   wrk -t2 -c16 -d10s -s scripts/perf/pool.lua http://127.0.0.1:8001 -- one5.requests
-- Prints one line: RESULT rps=... p50_ms=... p99_ms=... errors=... requests=...
-- (errors: non-2xx/3xx answers plus socket errors; a run with errors is not
-- a measurement).
local threads, counter = {}, 0
local pool = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
  local f = assert(io.open(args[1], "r"), "cannot open " .. tostring(args[1]))
  for line in f:lines() do
    local method, path, body = line:match("^(%u+)\t([^\t]+)\t(.*)$")
    assert(method, "bad request line: " .. line:sub(1, 80))
    local headers = {}
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = "application/json"
    end
    table.insert(pool, wrk.format(method, path, headers, body))
  end
  f:close()
  assert(#pool > 0, "no requests in " .. args[1])
end

function request()
  return pool[math.random(#pool)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.status + e.connect + e.read + e.write + e.timeout, summary.requests))
end
