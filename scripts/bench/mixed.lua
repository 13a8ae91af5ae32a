-- wrk: a journaling day's mix, 90% reads (an entry by id, a page of the writer's entries,
-- the week's analytics) and 10% writes (a new entry). PATHS lists the read paths, BODY the
-- entry to write, PATH_TO where.
local paths = {}
local body
local counter = 0

function init(args)
  for line in io.lines(os.getenv("PATHS")) do
    paths[#paths + 1] = line
  end
  local file = io.open(os.getenv("BODY"), "r")
  body = file:read("*a")
  file:close()
  counter = math.random(#paths)
end

function request()
  counter = counter + 1
  if counter % 10 == 0 then
    return wrk.format("POST", os.getenv("PATH_TO"), {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", paths[counter % #paths + 1])
end
