-- wrk: every request is a new person joining the line as the waiting page
-- joins, with a visitor id of its own (the line looks each one up and claims it).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- Ids no earlier run on the same event used.
math.randomseed(os.time())
local run = math.random(1, 2147483647)
local joined = 0

request = function()
  joined = joined + 1
  return wrk.format(nil, nil, nil, string.format('{"visitor":"bench-%d-%d"}', run, joined))
end
