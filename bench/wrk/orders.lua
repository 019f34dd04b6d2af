-- POST /api/v1/orders as one of several buyers (bearer tokens): 1 to 5 lines of different products of one
-- village's service point, each 1 to 3 units — what a staff member's basket looks like.
-- products.txt: one line per village, its products' ids separated by spaces.
-- wrk -s orders.lua URL -- tokens.txt products.txt
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  tokens, products = {}, {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  for line in io.lines(args[2]) do
    local group = {}
    for product in line:gmatch("%d+") do group[#group + 1] = product end
    if #group > 0 then products[#products + 1] = group end
  end
  math.randomseed(os.time() + (id or 0) * 7919)
end

function request()
  counter = counter + 1
  local token = tokens[((counter * 2 + (id or 0)) % #tokens) + 1]
  local lines, seen = {}, {}
  local group = products[math.random(#products)]
  for _ = 1, math.random(5) do
    local product = group[math.random(#group)]
    if not seen[product] then
      seen[product] = true
      lines[#lines + 1] = '{"product_id": ' .. product .. ', "quantity": ' .. math.random(3) .. '}'
    end
  end
  local body = '{"lines": [' .. table.concat(lines, ", ") .. '], "payment_method": "offline"}'
  return wrk.format("POST", "/api/v1/orders",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
