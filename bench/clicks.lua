-- wrk script for bench/twoway_clicks.py: every path of a file opened once, shared among wrk's
-- threads, each thread stopping once all of its paths are answered.
--
--   wrk -t T -c C -d LIMIT -s bench/clicks.lua http://127.0.0.1:PORT -- PATHS_FILE T
--
-- Each thread writes "finished" when all of its paths are answered.
-- A connection that finds its thread's paths used up asks for "/" instead (cheap, records
-- nothing); a click is counted when its page says the read is recorded (「確認しました（時刻）」).
-- done() prints one JSON line: clicks answered 200, other statuses, seconds, latency in ms.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  local path_file, step = args[1], tonumber(args[2])
  paths, next_path, clicks, failed = {}, 1, 0, 0
  local n = 0
  for line in io.lines(path_file) do
    if n % step == id then
      paths[#paths + 1] = line
    end
    n = n + 1
  end
end

function request()
  if id == 0 and not verified then
    -- wrk calls request() once on its first thread before sending anything, to count the
    -- requests a script pipelines: that call must not use up a path.
    verified = true
    return wrk.format("GET", "/")
  end
  local path = paths[next_path]
  if path == nil then
    return wrk.format("GET", "/")
  end
  next_path = next_path + 1
  return wrk.format("GET", path)
end

function response(status, headers, body)
  if status ~= 200 then
    failed = failed + 1
  elseif string.find(body, '<p class="ok">確認しました（', 1, true) then
    clicks = clicks + 1
  end
  if clicks + failed >= #paths and not finished then
    -- wrk itself runs for its whole duration: the caller times the run by these lines and
    -- then interrupts it (done() still runs).
    finished = true
    io.write("finished\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local clicks, failed = 0, 0
  for _, thread in ipairs(threads) do
    clicks = clicks + thread:get("clicks")
    failed = failed + thread:get("failed")
  end
  local e = summary.errors
  io.write(string.format(
    '{"clicks": %d, "failed": %d, "seconds": %.3f, "p50_ms": %.2f, "p99_ms": %.2f, ' ..
    '"socket_errors": %d}\n',
    clicks, failed, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.connect + e.read + e.write + e.timeout))
end
