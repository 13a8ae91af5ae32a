-- wrk: POST or PUT of the JSON body in the file named by BODY to PATH (METHOD, POST by
-- default). "{n}" in the body is replaced by a per-thread counter, so bodies differ.
local body_template
local method
local path
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
  path = os.getenv("PATH_TO")
end

function request()
  n = n + 1
  local body = body_template:gsub("{n}", tostring(id) .. "-" .. tostring(n))
  return wrk.format(method, path, {["Content-Type"] = "application/json"}, body)
end
