-- wrk: every request is a new person joining the line as the waiting page
-- joins, with a visitor id of its own (the line looks each one up and claims it).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- Each wrk thread has a Lua state of its own: its number keeps the ids of
-- different threads apart.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

local joined = 0
function request()
  joined = joined + 1
  return wrk.format(nil, nil, nil, string.format('{"visitor":"bench-%d-%d"}', thread_number, joined))
end
