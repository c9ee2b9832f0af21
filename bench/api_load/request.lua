-- wrk script of bench/api_load: one operation, configured through the environment by the harness.
--   BENCH_METHOD   GET or POST
--   BENCH_PATH     path; "{V}" becomes a random version number 1..BENCH_VERSIONS
--   BENCH_BODY     body; "{SHA}" becomes a 64-hex artifact hash unique to this request (run nonce, thread, counter)
--   BENCH_HEADERS  "Name: value" pairs separated by "|"
--   BENCH_NONCE    16 hex digits, unique per wrk run
-- Counts answers outside 2xx per thread (wrk itself only counts >= 400) and prints one JSON line when done.

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body_template = os.getenv("BENCH_BODY") or ""
local versions = tonumber(os.getenv("BENCH_VERSIONS") or "1")
local nonce = os.getenv("BENCH_NONCE") or "0000000000000000"
local headers = {}
for pair in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
  local name, value = string.match(pair, "^%s*([^:]+):%s*(.*)$")
  if name then headers[name] = value end
end

local threads = {}
-- Globals, not locals: setup() sets thread_id in each thread's own Lua state, done() reads the counters from there.
counter = 0
non2xx = 0
bad_status, bad_body = 0, ""
thread_id = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  math.randomseed(os.time() + thread_id * 7919)
end

function request()
  counter = counter + 1
  local p = path
  if string.find(p, "{V}", 1, true) then
    p = string.gsub(p, "{V}", tostring(math.random(1, versions)))
  end
  local b = nil
  if body_template ~= "" then
    local half = nonce .. string.format("%08x%08x", thread_id, counter)
    b = string.gsub(body_template, "{SHA}", half .. half)
  end
  return wrk.format(method, p, headers, b)
end

function response(status, hdrs, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    bad_status = status
    bad_body = string.sub(body or "", 1, 200)
  end
end

local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local bad, last_status, last_body = 0, 0, ""
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    local s = thread:get("bad_status") or 0
    if s ~= 0 then
      last_status = s
      last_body = thread:get("bad_body") or ""
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "non2xx": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "mean_us": %.1f, "last_bad_status": %d, "last_bad_body": %s}\n',
    summary.requests, summary.duration, summary.bytes, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    last_status, json_string(last_body)))
end
