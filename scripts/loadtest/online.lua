-- wrk script for scripts/loadtest.sh: POST /get-online-features for 20
-- stored movies x 3 features, counting the answers by status.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"entities":{"movie_id":[552524,1233413,950387,1257960,1197306,574475,757725,575265,1411773,1232546,' ..
  '1241436,1284120,822119,11544,568770,447273,1417059,1397832,977294,986056]},' ..
  '"features":["movie_basic:popularity","movie_text:title_length","movie_temporal:release_year"]}'

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, string.format("%d=%d", k, v)) end
  table.sort(parts)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f statuses=%s\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, table.concat(parts, ",")))
end
