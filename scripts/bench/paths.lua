-- wrk: GET requests spread over the paths listed in the file named by the PATHS environment
-- variable (one path per line), so that reads hit many resources, not one cached row.
local paths = {}
local counter = 0

function init(args)
  for line in io.lines(os.getenv("PATHS")) do
    paths[#paths + 1] = line
  end
  -- Each thread starts at a different place.
  counter = math.random(#paths)
end

function request()
  counter = counter % #paths + 1
  return wrk.format("GET", paths[counter])
end
