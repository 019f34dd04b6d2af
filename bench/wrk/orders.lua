-- POST /api/v1/orders as one of several buyers (bearer tokens), one unit of a random product.
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
  for line in io.lines(args[2]) do products[#products + 1] = line end
  math.randomseed(os.time() + (id or 0) * 7919)
end

function request()
  counter = counter + 1
  local token = tokens[((counter * 2 + (id or 0)) % #tokens) + 1]
  local product = products[math.random(#products)]
  local body = '{"lines": [{"product_id": ' .. product .. ', "quantity": 1}], "payment_method": "offline"}'
  return wrk.format("POST", "/api/v1/orders",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
