-- POST /stripe/webhook: signed checkout.session.completed events, each sent once (threads take turns).
-- wrk -s webhooks.lua URL -- payloads.txt THREADS   (each line: signature<TAB>body)
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  payloads = {}
  local stride = tonumber(args[2])
  local n = 0
  for line in io.lines(args[1]) do
    if n % stride == (id or 0) then
      local tab = string.find(line, "\t", 1, true)
      payloads[#payloads + 1] = {string.sub(line, 1, tab - 1), string.sub(line, tab + 1)}
    end
    n = n + 1
  end
  next_one = 0
end

function request()
  next_one = next_one + 1
  local p = payloads[((next_one - 1) % #payloads) + 1]
  return wrk.format("POST", "/stripe/webhook",
    {["Stripe-Signature"] = p[1], ["Content-Type"] = "application/json"}, p[2])
end
