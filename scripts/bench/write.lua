-- wrk: a POST or PUT (METHOD, POST by default) of the JSON body in the file named by BODY, to
-- PATH_TO, or in turn to each path listed in the file named by PATHS (one writer per resource,
-- as users change their own profiles). "{n}" in the body is replaced by a per-thread counter,
-- so bodies differ.
local body_template
local method
local paths = {}
local counter = 0
local n = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
end

function init(args)
  local file = io.open(os.getenv("BODY"), "r")
  body_template = file:read("*a")
  file:close()
  method = os.getenv("METHOD") or "POST"
  if os.getenv("PATHS") then
    for line in io.lines(os.getenv("PATHS")) do
      paths[#paths + 1] = line
    end
  else
    paths[1] = os.getenv("PATH_TO")
  end
  counter = math.random(#paths)
end

function request()
  n = n + 1
  counter = counter % #paths + 1
  local body = body_template:gsub("{n}", tostring(id) .. "-" .. tostring(n))
  return wrk.format(method, paths[counter], {["Content-Type"] = "application/json"}, body)
end
