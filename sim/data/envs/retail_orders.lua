-- retail_orders: an online shop's customer-service desk. State: customers (addresses, payment
-- methods), products (variants with price and stock), orders (pending / shipped / delivered /
-- cancelled / return requested). Contract: docs/environments.md.

---------------------------------------------------------------- helpers
local function ok(data) return {success = true, data = data} end
local function fail(msg) return {success = false, error = msg} end
local function money(c) return string.format("$%d.%02d", c // 100, c % 100) end
local function persona_wrap(aspects, text)
  local p = aspects.persona or 0
  if p == 0 then return text end
  if p == 1 then return "Hi, " .. (text:match("^I[ ']") and text or text:sub(1, 1):lower() .. text:sub(2)) .. " Thanks!" end
  return "hello, sorry, not great with these websites... " .. text .. " thank you so much"
end
local function stated(aspects, label, value)
  local p = aspects.persona or 0
  if p == 0 then return label:sub(1, 1):upper() .. label:sub(2) .. ": " .. value .. "." end
  if p == 1 then return "My " .. label .. " is " .. value .. "." end
  return "oh and my " .. label .. " is " .. value .. " i think."
end
-- keys of `cands` (a priority list) to leave out of the query
local function omitted_set(aspects, cands)
  local n = math.min(aspects.omit or 0, #cands)
  local s = {}
  for i = 1, n do s[cands[i]] = true end
  return s
end
local function addr_text(a) return string.format("%s, %s, %s %s", a.street, a.city, a.state, a.zip) end

---------------------------------------------------------------- world data
local FIRST = {"Maya", "Tobias", "Priya", "Desmond", "Ines", "Kenji", "Lucia", "Omar", "Freya",
  "Rafael", "Yuki", "Gideon", "Amara", "Soren", "Talia", "Matteo", "Noor", "Elliot", "Zara", "Hugo"}
local LAST = {"Okafor", "Lindqvist", "Ramanathan", "Castillo", "Weber", "Nakamura", "Ferreira",
  "Haddad", "Sorensen", "Alvarez", "Brennan", "Kowalski", "Mbeki", "Duarte", "Whitlock", "Oyelaran"}
local STREETS = {"Maple Ave", "Cedar Lane", "Harbor Rd", "Willow Ct", "Summit St", "Birch Way",
  "Juniper Dr", "Orchard Blvd", "Lakeview Ter", "Foundry St"}
local CITIES = {{"Riverton", "OR", "97"}, {"Ashford", "CT", "06"}, {"Bellmont", "TX", "75"},
  {"Cold Spring", "MN", "56"}, {"Dunmore", "PA", "18"}, {"Fairhaven", "WA", "98"},
  {"Glenwood", "CO", "81"}, {"Marlow", "OK", "73"}}
local PRODUCTS = {
  {name = "Trail Running Shoes", axis = "size", opts = {"8", "9", "10", "11", "12"}, base = 8900},
  {name = "Merino Crew Sweater", axis = "size", opts = {"S", "M", "L", "XL"}, base = 7400},
  {name = "Ceramic Pour-Over Set", axis = "color", opts = {"white", "sage", "charcoal"}, base = 3800},
  {name = "Noise-Cancelling Headphones", axis = "color", opts = {"black", "silver", "navy"}, base = 19900},
  {name = "Insulated Water Bottle", axis = "capacity", opts = {"500 ml", "750 ml", "1 l"}, base = 2600},
  {name = "Canvas Weekender Bag", axis = "color", opts = {"olive", "tan", "black"}, base = 11500},
  {name = "LED Desk Lamp", axis = "finish", opts = {"matte black", "brushed brass", "white"}, base = 5400},
  {name = "Cast Iron Skillet", axis = "size", opts = {"8 inch", "10 inch", "12 inch"}, base = 4200},
  {name = "Wool Hiking Socks", axis = "size", opts = {"S", "M", "L"}, base = 1800},
  {name = "Bamboo Cutting Board", axis = "size", opts = {"small", "medium", "large"}, base = 3100},
}
local REASONS = {"no longer needed", "ordered by mistake", "found a better price", "shipping too slow"}
local CARRIERS = {"UPS", "FedEx", "USPS", "DHL"}

local function new_address(rng)
  local c = rng:choice(CITIES)
  return {street = string.format("%d %s", rng:int(11, 9899), rng:choice(STREETS)), city = c[1],
          state = c[2], zip = string.format("%s%03d", c[3], rng:int(0, 999))}
end

local function gen_world(rng)
  local st = {customers = {}, products = {}, orders = {}, next_return = 1}
  local used = {}
  local function uid(prefix, digits)
    while true do
      local id = prefix .. string.format("%0" .. digits .. "d", rng:int(0, math.tointeger(10 ^ digits) - 1))
      if not used[id] then used[id] = true; return id end
    end
  end
  -- products: 6 of the catalog, each variant its own sku
  local plist = {}
  for _, p in ipairs(rng:sample(PRODUCTS, 6)) do
    local pid = uid("P", 5)
    local base = p.base + 100 * rng:int(-8, 8) + (rng:int(0, 1) == 1 and 99 - 100 or 0)
    local variants = {}
    for i, o in ipairs(p.opts) do
      variants[#variants + 1] = {sku = uid("S", 6), option = o, price = base + (i - 1) * 100 * rng:int(0, 3),
                                 stock = rng:int(0, 1) == 0 and rng:int(3, 40) or rng:int(1, 12)}
    end
    st.products[pid] = {id = pid, name = p.name, axis = p.axis, variants = variants}
    plist[#plist + 1] = pid
  end
  -- customers with 2..4 orders each
  local clist = {}
  local firsts = rng:sample(FIRST, 4)
  for ci = 1, 4 do
    local cid = uid("C", 6)
    local first, last = firsts[ci], rng:choice(LAST)
    local addr = new_address(rng)
    local pms = {{id = "card_" .. string.format("%04d", rng:int(0, 9999)), kind = "credit_card"}}
    if rng:int(0, 1) == 1 then pms[#pms + 1] = {id = uid("gift_", 6), kind = "gift_card", balance = rng:int(0, 150) * 100} end
    if rng:int(0, 2) == 0 then pms[#pms + 1] = {id = uid("paypal_", 5), kind = "paypal"} end
    st.customers[cid] = {id = cid, first_name = first, last_name = last,
      email = string.format("%s.%s%d@%s", first:lower(), last:lower(), rng:int(1, 99), rng:choice({"mailbox.net", "postly.com", "inkwell.org"})),
      address = addr, payment_methods = pms, orders = {}}
    clist[#clist + 1] = cid
    local statuses = {"pending", "delivered", "shipped"}
    if rng:int(0, 1) == 1 then statuses[4] = rng:choice({"pending", "delivered"}) end
    rng:shuffle(statuses)
    for oi = 1, #statuses do
      local oid = uid("W", 7)
      local items, total = {}, 0
      for _, pid in ipairs(rng:sample(plist, rng:int(1, 3))) do
        local p = st.products[pid]
        local v = rng:choice(p.variants)
        items[#items + 1] = {sku = v.sku, product_id = pid, name = p.name, option = v.option, price = v.price}
        total = total + v.price
      end
      local status = statuses[oi]
      local o = {id = oid, customer_id = cid, status = status, items = items, total = total,
                 payment_method_id = rng:choice(pms).id, address = deep_copy(addr)}
      if status ~= "pending" then
        o.tracking = {carrier = rng:choice(CARRIERS), number = string.format("1Z%08d", rng:int(0, 99999999))}
      end
      st.orders[oid] = o
      table.insert(st.customers[cid].orders, oid)
    end
  end
  return st, clist
end

local function orders_of(st, cid, status)
  local r = {}
  for _, oid in ipairs(st.customers[cid].orders) do
    if status == nil or st.orders[oid].status == status then r[#r + 1] = oid end
  end
  return r
end
local function find_pm(c, id)
  for _, pm in ipairs(c.payment_methods) do if pm.id == id then return pm end end
end

---------------------------------------------------------------- tools
local ADDR_PROPS = {
  street = {type = "string", description = "Street line, e.g. '12 Oak St'"},
  city = {type = "string", description = "City"},
  state = {type = "string", description = "Two-letter US state code"},
  zip = {type = "string", description = "Five-digit ZIP code"},
}
local function addr_props(extra)
  local p = deep_copy(ADDR_PROPS)
  for k, v in pairs(extra) do p[k] = v end
  return p
end
local function check_addr(a)
  if not a.state:match("^%u%u$") then return "state must be a two-letter code such as 'OR'" end
  if not a.zip:match("^%d%d%d%d%d$") then return "zip must be five digits" end
  if #a.street < 3 or #a.city < 2 then return "street and city must not be empty" end
end

local tools = {
  {name = "find_customer_by_email", description = "Look up a customer account by its email address.",
   parameters = {type = "object", properties = {email = {type = "string", description = "The customer's email address"}},
                 required = {"email"}},
   run = function(st, a)
     for _, c in spairs(st.customers) do
       if c.email == a.email:lower() then return ok({customer_id = c.id, name = c.first_name .. " " .. c.last_name}) end
     end
     return fail("no customer with email '" .. a.email .. "'")
   end},
  {name = "find_customer_by_name_zip", description = "Look up a customer account by first name, last name and ZIP code.",
   parameters = {type = "object", properties = {
     first_name = {type = "string", description = "First name"}, last_name = {type = "string", description = "Last name"},
     zip = {type = "string", description = "Five-digit ZIP code of the default address"}},
     required = {"first_name", "last_name", "zip"}},
   run = function(st, a)
     for _, c in spairs(st.customers) do
       if c.first_name:lower() == a.first_name:lower() and c.last_name:lower() == a.last_name:lower() and c.address.zip == a.zip then
         return ok({customer_id = c.id, name = c.first_name .. " " .. c.last_name})
       end
     end
     return fail("no customer matches that name and ZIP code")
   end},
  {name = "get_customer", description = "Get a customer's profile: name, email, default address, payment methods and order ids.",
   parameters = {type = "object", properties = {customer_id = {type = "string", description = "Customer id, e.g. C123456"}},
                 required = {"customer_id"}},
   run = function(st, a)
     local c = st.customers[a.customer_id]
     if not c then return fail("unknown customer id '" .. a.customer_id .. "'") end
     return ok(c)
   end},
  {name = "get_order", description = "Get an order's status, items (sku, product, option, price), total, payment method, shipping address and tracking.",
   parameters = {type = "object", properties = {order_id = {type = "string", description = "Order id, e.g. W1234567"}},
                 required = {"order_id"}},
   run = function(st, a)
     local o = st.orders[a.order_id:gsub("^#", "")]
     if not o then return fail("unknown order id '" .. a.order_id .. "'") end
     return ok(o)
   end},
  {name = "get_product", description = "Get a product's variants with sku, option, price (cents) and stock.",
   parameters = {type = "object", properties = {product_id = {type = "string", description = "Product id, e.g. P12345"}},
                 required = {"product_id"}},
   run = function(st, a)
     local p = st.products[a.product_id]
     if not p then return fail("unknown product id '" .. a.product_id .. "'") end
     return ok(p)
   end},
  {name = "cancel_order", description = "Cancel a pending order; the total is refunded to the order's payment method.",
   parameters = {type = "object", properties = {
     order_id = {type = "string", description = "Order id"},
     reason = {type = "string", description = "Why the customer cancels", enum = REASONS}},
     required = {"order_id", "reason"}},
   run = function(st, a)
     local o = st.orders[a.order_id]
     if not o then return fail("unknown order id '" .. a.order_id .. "'") end
     if o.status ~= "pending" then return fail("order " .. o.id .. " is " .. o.status .. "; only pending orders can be cancelled") end
     o.status = "cancelled"
     o.cancel_reason = a.reason
     o.refund = {amount = o.total, method = o.payment_method_id}
     local pm = find_pm(st.customers[o.customer_id], o.payment_method_id)
     if pm and pm.kind == "gift_card" then pm.balance = pm.balance + o.total end
     return ok({order_id = o.id, status = o.status, refunded = money(o.total), refund_method = o.payment_method_id})
   end},
  {name = "update_order_address", description = "Change the shipping address of a pending order.",
   parameters = {type = "object", properties = addr_props({order_id = {type = "string", description = "Order id"}}),
                 required = {"order_id", "street", "city", "state", "zip"}},
   run = function(st, a)
     local o = st.orders[a.order_id]
     if not o then return fail("unknown order id '" .. a.order_id .. "'") end
     if o.status ~= "pending" then return fail("order " .. o.id .. " is " .. o.status .. "; the address can only change while pending") end
     local e = check_addr(a)
     if e then return fail(e) end
     o.address = {street = a.street, city = a.city, state = a.state, zip = a.zip}
     return ok({order_id = o.id, address = o.address})
   end},
  {name = "change_item_option", description = "Swap an item of a pending order for another variant (size, color...) of the same product; the order total is updated.",
   parameters = {type = "object", properties = {
     order_id = {type = "string", description = "Order id"},
     item_sku = {type = "string", description = "Sku of the item currently in the order"},
     new_sku = {type = "string", description = "Sku of the wanted variant of the same product"}},
     required = {"order_id", "item_sku", "new_sku"}},
   run = function(st, a)
     local o = st.orders[a.order_id]
     if not o then return fail("unknown order id '" .. a.order_id .. "'") end
     if o.status ~= "pending" then return fail("order " .. o.id .. " is " .. o.status .. "; items can only change while pending") end
     local item
     for _, it in ipairs(o.items) do if it.sku == a.item_sku then item = it end end
     if not item then return fail("order " .. o.id .. " has no item with sku '" .. a.item_sku .. "'") end
     local p = st.products[item.product_id]
     local nv, ov
     for _, v in ipairs(p.variants) do
       if v.sku == a.new_sku then nv = v end
       if v.sku == a.item_sku then ov = v end
     end
     if not nv then return fail("sku '" .. a.new_sku .. "' is not a variant of " .. p.name) end
     if nv.sku == item.sku then return fail("the item already is that variant") end
     if nv.stock < 1 then return fail("variant " .. nv.option .. " is out of stock") end
     nv.stock = nv.stock - 1
     if ov then ov.stock = ov.stock + 1 end
     o.total = o.total - item.price + nv.price
     item.sku, item.option, item.price = nv.sku, nv.option, nv.price
     return ok({order_id = o.id, item = item, new_total = money(o.total)})
   end},
  {name = "return_items", description = "Start a return of some items of a delivered order; the refund goes to the given payment method (the original one or a gift card of the customer).",
   parameters = {type = "object", properties = {
     order_id = {type = "string", description = "Order id"},
     item_skus = {type = "array", items = {type = "string", description = "Item sku"}, description = "Skus of the items to return"},
     refund_method_id = {type = "string", description = "Payment method id for the refund"}},
     required = {"order_id", "item_skus", "refund_method_id"}},
   run = function(st, a)
     local o = st.orders[a.order_id]
     if not o then return fail("unknown order id '" .. a.order_id .. "'") end
     if o.status ~= "delivered" then return fail("order " .. o.id .. " is " .. o.status .. "; only delivered orders can be returned") end
     if #a.item_skus == 0 then return fail("item_skus is empty") end
     local c = st.customers[o.customer_id]
     local pm = find_pm(c, a.refund_method_id)
     if not pm then return fail("payment method '" .. a.refund_method_id .. "' does not belong to this customer") end
     if pm.id ~= o.payment_method_id and pm.kind ~= "gift_card" then
       return fail("refunds go to the original payment method or a gift card")
     end
     local amount, seen = 0, {}
     for _, sku in ipairs(a.item_skus) do
       local found
       for _, it in ipairs(o.items) do if it.sku == sku then found = it end end
       if not found then return fail("order " .. o.id .. " has no item with sku '" .. sku .. "'") end
       if seen[sku] then return fail("sku '" .. sku .. "' listed twice") end
       seen[sku] = true
       amount = amount + found.price
     end
     local skus = deep_copy(a.item_skus)
     table.sort(skus)
     o.status = "return requested"
     o["return"] = {item_skus = skus, refund_method_id = pm.id, amount = amount}
     return ok({order_id = o.id, status = o.status, refund = money(amount), refund_method = pm.id})
   end},
  {name = "update_customer_address", description = "Change a customer's default address (existing orders keep theirs).",
   parameters = {type = "object", properties = addr_props({customer_id = {type = "string", description = "Customer id"}}),
                 required = {"customer_id", "street", "city", "state", "zip"}},
   run = function(st, a)
     local c = st.customers[a.customer_id]
     if not c then return fail("unknown customer id '" .. a.customer_id .. "'") end
     local e = check_addr(a)
     if e then return fail(e) end
     c.address = {street = a.street, city = a.city, state = a.state, zip = a.zip}
     return ok({customer_id = c.id, address = c.address})
   end},
}

---------------------------------------------------------------- checks
local WRITE_TOOLS = {cancel_order = true, update_order_address = true, change_item_option = true,
                     return_items = true, update_customer_address = true}
local COLLS = {"customers", "products", "orders"}
local checks = {
  -- the listed entries changed (at least one) and nothing else in the state did
  only_changed = function(state, a, ctx)
    local allow = {}
    for _, k in ipairs(a.allow) do allow[k] = true end
    local init, progressed = ctx.task.state, false
    for _, coll in ipairs(COLLS) do
      local i0, f = init[coll] or {}, state[coll] or {}
      for id, v in pairs(f) do
        if not deep_equal(v, i0[id]) then
          if not allow[coll .. "/" .. id] then return false end
          progressed = true
        end
      end
      for id in pairs(i0) do if f[id] == nil then return false end end
    end
    return progressed
  end,
  -- the final text contains every text of a.texts and no write tool succeeded
  said_clean = function(state, a, ctx)
    for _, c in ipairs(ctx.calls) do if c.success and WRITE_TOOLS[c.name] then return false end end
    local t = ctx.final_text:lower()
    for _, x in ipairs(a.texts) do if not t:find(x:lower(), 1, true) then return false end end
    return true
  end,
}

---------------------------------------------------------------- tasks
local SYSTEM = {
  "You are a customer-service agent of an online shop. Policy: identify the customer (email, or name + ZIP) " ..
  "before acting on their account when no order id is given; only pending orders can be cancelled, re-addressed " ..
  "or have items swapped; only delivered orders can be returned, with refunds to the original payment method or " ..
  "a gift card; confirm the details you need with the customer instead of guessing; never change anything the " ..
  "customer did not ask for.",
  "You are a customer-service agent of an online shop. Look things up before changing them and ask the customer " ..
  "for missing details.",
  "You are a helpful assistant with access to tools.",
}

local families = {
  {name = "cancel_order", description = "cancel a pending order with the customer's reason", calls = 2},
  {name = "change_shipping_address", description = "re-address a pending order (optionally the default address too)", calls = 3},
  {name = "return_items", description = "return items of a delivered order to the original method or a gift card", calls = 3},
  {name = "change_item_option", description = "swap an item of a pending order for another size / color", calls = 3},
  {name = "update_default_address", description = "identify the customer by email and change the default address", calls = 2},
  {name = "order_status", description = "find the customer's order by product and report its tracking (read only)", calls = 3},
}

local fact_phrases = {
  email = {"email"},
  order_id = {"order id", "order number"},
  reason = {"reason", "why"},
  new_address = {"new address", "shipping address", "where"},
  refund_method = {"refund method", "refund"},
  which_items = {"which item", "what item"},
  new_option = {"new option", "which option", "which variant"},
  which_product = {"which product", "what product"},
}

local function pick_customer(rng, st, clist, status, need)
  local cands = {}
  for _, cid in ipairs(clist) do
    for _, oid in ipairs(orders_of(st, cid, status)) do
      if not need or need(st.orders[oid]) then cands[#cands + 1] = {cid, oid} end
    end
  end
  return cands
end

local builders = {}

builders.cancel_order = function(rng, aspects, st, clist)
  local cands = pick_customer(rng, st, clist, "pending")
  local pick = rng:choice(cands)
  local cid, oid = pick[1], pick[2]
  local c, o = st.customers[cid], st.orders[oid]
  local reason = rng:choice(REASONS)
  local by_email = (aspects.expected_calls or 1) >= 2
  local prod = o.items[1].name
  local cand = by_email and {"reason", "email", "which_product"} or {"reason", "order_id"}
  local om = omitted_set(aspects, cand)
  local facts, parts = {}, {}
  local amb = aspects.ambiguity or 0
  if by_email then
    parts[1] = om.which_product and "I need to cancel one of my orders." or ("I need to cancel my order with the " .. prod .. (amb > 0 and " in it." or ", it's still pending."))
    if om.email then facts.email = c.email else parts[#parts + 1] = stated(aspects, "email", c.email) end
    if om.which_product then facts.which_product = prod end
  else
    parts[1] = om.order_id and (amb > 1 and "Something I bought needs to be cancelled." or "I want to cancel an order that hasn't shipped yet.") or ("Please cancel order " .. oid .. ".")
    if om.order_id then facts.order_id = oid end
  end
  if om.reason then facts.reason = reason else parts[#parts + 1] = stated(aspects, "reason", reason) end
  local checks = {
    {name = "order " .. oid .. " was looked up", fn = "called", args = {name = "get_order", with = {order_id = oid}}},
    {name = "order " .. oid .. " is cancelled", fn = "equals", args = {path = {"orders", oid, "status"}, value = "cancelled"}},
    {name = "cancel reason is '" .. reason .. "'", fn = "equals", args = {path = {"orders", oid, "cancel_reason"}, value = reason}},
    {name = "only order " .. oid .. " (and its refund) changed", fn = "only_changed", args = {allow = {"orders/" .. oid, "customers/" .. cid}}},
  }
  if by_email then checks[#checks + 1] = {name = "customer identified by email", fn = "called", args = {name = "find_customer_by_email", with = {email = c.email}}} end
  local tl = by_email and {"find_customer_by_email", "get_customer", "get_order", "cancel_order"} or {"get_order", "cancel_order"}
  return {query = table.concat(parts, " "), facts = facts, checks = checks, tools = tl,
          solution = {cid = cid, oid = oid, reason = reason, by_email = by_email}}
end

builders.change_shipping_address = function(rng, aspects, st, clist)
  local pick = rng:choice(pick_customer(rng, st, clist, "pending"))
  local cid, oid = pick[1], pick[2]
  local addr = new_address(rng)
  local also_default = (aspects.expected_calls or 1) >= 3
  local om = omitted_set(aspects, {"new_address", "order_id"})
  local facts, parts = {}, {}
  if om.order_id then
    facts.order_id = oid
    parts[1] = (aspects.ambiguity or 0) > 1 and "My package needs to go somewhere else." or "I need to change where my pending order ships."
  else
    parts[1] = "Please change the shipping address of order " .. oid .. "."
  end
  if also_default then parts[#parts + 1] = "Make it my default address on the account as well." end
  if om.new_address then facts.new_address = addr_text(addr) else parts[#parts + 1] = stated(aspects, "new address", addr_text(addr)) end
  local allow = {"orders/" .. oid}
  local checks = {
    {name = "order " .. oid .. " was looked up", fn = "called", args = {name = "get_order", with = {order_id = oid}}},
    {name = "order " .. oid .. " ships to " .. addr_text(addr), fn = "equals", args = {path = {"orders", oid, "address"}, value = addr}},
  }
  if also_default then
    allow[2] = "customers/" .. cid
    checks[#checks + 1] = {name = "default address of " .. cid .. " updated", fn = "equals", args = {path = {"customers", cid, "address"}, value = addr}}
  end
  checks[#checks + 1] = {name = "nothing else changed", fn = "only_changed", args = {allow = allow}}
  local tl = {"get_order", "update_order_address"}
  if also_default then tl[3] = "update_customer_address" end
  return {query = table.concat(parts, " "), facts = facts, checks = checks, tools = tl,
          solution = {cid = cid, oid = oid, addr = addr, also_default = also_default}}
end

builders.return_items = function(rng, aspects, st, clist)
  local cands = pick_customer(rng, st, clist, "delivered")
  local pick = rng:choice(cands)
  local cid, oid = pick[1], pick[2]
  local c, o = st.customers[cid], st.orders[oid]
  local n = #o.items > 1 and rng:int(1, #o.items - 1) or 1
  local items = rng:sample(o.items, n)
  local gift
  for _, pm in ipairs(c.payment_methods) do if pm.kind == "gift_card" then gift = pm end end
  local to_gift = gift ~= nil and rng:int(0, 1) == 1
  local method = to_gift and gift.id or o.payment_method_id
  local method_text = to_gift and "my gift card" or "the original payment method"
  local names = {}
  for _, it in ipairs(items) do names[#names + 1] = "the " .. it.name .. " (" .. it.option .. ")" end
  local items_text = table.concat(names, " and ")
  local om = omitted_set(aspects, {"refund_method", "order_id", "which_items"})
  local facts, parts = {}, {}
  local what = om.which_items and "some items" or items_text
  if om.which_items then facts.which_items = items_text end
  if om.order_id then
    facts.order_id = oid
    parts[1] = "I'd like to return " .. what .. " from a delivered order."
  else
    parts[1] = "I'd like to return " .. what .. " from order " .. oid .. "."
  end
  if om.refund_method then facts.refund_method = method_text else parts[#parts + 1] = "Refund to " .. method_text .. ", please." end
  local skus = {}
  for _, it in ipairs(items) do skus[#skus + 1] = it.sku end
  table.sort(skus)
  local checks = {
    {name = "order " .. oid .. " was looked up", fn = "called", args = {name = "get_order", with = {order_id = oid}}},
    {name = "order " .. oid .. " has a return requested", fn = "equals", args = {path = {"orders", oid, "status"}, value = "return requested"}},
    {name = "the right items are returned", fn = "equals", args = {path = {"orders", oid, "return", "item_skus"}, value = skus}},
    {name = "refund goes to " .. method, fn = "equals", args = {path = {"orders", oid, "return", "refund_method_id"}, value = method}},
    {name = "nothing else changed", fn = "only_changed", args = {allow = {"orders/" .. oid}}},
  }
  return {query = table.concat(parts, " "), facts = facts, checks = checks,
          tools = {"get_order", "get_customer", "return_items"},
          solution = {cid = cid, oid = oid, skus = skus, method = method}}
end

builders.change_item_option = function(rng, aspects, st, clist)
  local cands = pick_customer(rng, st, clist, "pending", function(o)
    for _, it in ipairs(o.items) do
      for _, v in ipairs(st.products[it.product_id].variants) do if v.sku ~= it.sku and v.stock > 0 then return true end end
    end
    return false
  end)
  local pick = rng:choice(cands)
  local cid, oid = pick[1], pick[2]
  local o = st.orders[oid]
  local opts = {}
  for _, it in ipairs(o.items) do
    local p = st.products[it.product_id]
    for _, v in ipairs(p.variants) do if v.sku ~= it.sku and v.stock > 0 then opts[#opts + 1] = {it, p, v} end end
  end
  local ch = rng:choice(opts)
  local item, p, v = ch[1], ch[2], ch[3]
  local om = omitted_set(aspects, {"new_option", "order_id"})
  local facts, parts = {}, {}
  local want = p.axis .. " " .. v.option
  parts[1] = "In " .. (om.order_id and "my pending order" or ("order " .. oid)) .. " I'd like the " .. p.name ..
             (om.new_option and " in a different " .. p.axis .. "." or (" in " .. want .. " instead of " .. item.option .. "."))
  if om.order_id then facts.order_id = oid end
  local fp
  if om.new_option then facts.new_option = want; fp = {new_option = {"new " .. p.axis, "which " .. p.axis, "new option"}} end
  local new_total = o.total - item.price + v.price
  local idx
  for i, it in ipairs(o.items) do if it.sku == item.sku then idx = i end end
  local checks = {
    {name = "product " .. p.id .. " was looked up", fn = "called", args = {name = "get_product", with = {product_id = p.id}}},
    {name = "the " .. p.name .. " is now " .. v.option, fn = "called", args = {name = "change_item_option", with = {order_id = oid, item_sku = item.sku, new_sku = v.sku}}},
    {name = "the order lists sku " .. v.sku, fn = "equals", args = {path = {"orders", oid, "items", idx, "sku"}, value = v.sku}},
    {name = "nothing else changed", fn = "only_changed", args = {allow = {"orders/" .. oid, "products/" .. p.id}}},
  }
  if new_total ~= o.total then
    table.insert(checks, 3, {name = "order total is " .. money(new_total), fn = "equals", args = {path = {"orders", oid, "total"}, value = new_total}})
  end
  return {query = table.concat(parts, " "), facts = facts, fact_phrases = fp, checks = checks,
          tools = {"get_order", "get_product", "change_item_option"},
          solution = {oid = oid, pid = p.id, sku = item.sku, new_sku = v.sku}}
end

builders.update_default_address = function(rng, aspects, st, clist)
  local cid = rng:choice(clist)
  local c = st.customers[cid]
  local addr = new_address(rng)
  local with_order = (aspects.expected_calls or 1) >= 3 and #orders_of(st, cid, "pending") > 0
  local oid = with_order and orders_of(st, cid, "pending")[1] or nil
  local om = omitted_set(aspects, {"new_address", "email"})
  local facts, parts = {}, {}
  parts[1] = "I moved, please update the address on my account."
  if with_order then parts[#parts + 1] = "My order " .. oid .. " that hasn't shipped should go to the new place too." end
  if om.email then facts.email = c.email else parts[#parts + 1] = stated(aspects, "email", c.email) end
  if om.new_address then facts.new_address = addr_text(addr) else parts[#parts + 1] = stated(aspects, "new address", addr_text(addr)) end
  local allow = {"customers/" .. cid}
  local checks = {
    {name = "customer identified by email", fn = "called", args = {name = "find_customer_by_email", with = {email = c.email}}},
    {name = "default address is " .. addr_text(addr), fn = "equals", args = {path = {"customers", cid, "address"}, value = addr}},
  }
  if with_order then
    allow[2] = "orders/" .. oid
    checks[#checks + 1] = {name = "order " .. oid .. " re-addressed", fn = "equals", args = {path = {"orders", oid, "address"}, value = addr}}
  end
  checks[#checks + 1] = {name = "nothing else changed", fn = "only_changed", args = {allow = allow}}
  local tl = {"find_customer_by_email", "update_customer_address"}
  if with_order then tl[3] = "update_order_address" end
  return {query = table.concat(parts, " "), facts = facts, checks = checks, tools = tl,
          solution = {cid = cid, email = c.email, addr = addr, oid = oid}}
end

builders.order_status = function(rng, aspects, st, clist)
  local cands = pick_customer(rng, st, clist, "shipped")
  if #cands == 0 then cands = pick_customer(rng, st, clist, "delivered") end
  local pick = rng:choice(cands)
  local cid, oid = pick[1], pick[2]
  local c, o = st.customers[cid], st.orders[oid]
  local prod = o.items[1].name
  local om = omitted_set(aspects, {"email", "which_product"})
  local facts, parts = {}, {}
  parts[1] = om.which_product and "Where is my package? I need the tracking number." or ("Where is my order with the " .. prod .. "? I need the tracking number.")
  if om.which_product then facts.which_product = prod end
  if om.email then facts.email = c.email else parts[#parts + 1] = stated(aspects, "email", c.email) end
  local checks = {
    {name = "customer identified by email", fn = "called", args = {name = "find_customer_by_email", with = {email = c.email}}},
    {name = "order " .. oid .. " was looked up", fn = "called", args = {name = "get_order", with = {order_id = oid}}},
    {name = "tracking " .. o.tracking.number .. " reported, nothing changed", fn = "said_clean", args = {texts = {o.tracking.number}}},
  }
  return {query = table.concat(parts, " "), facts = facts, checks = checks,
          tools = {"find_customer_by_email", "get_customer", "get_order"},
          solution = {cid = cid, oid = oid, email = c.email}}
end

local function sample_task(rng, aspects, family)
  return family_task(rng, aspects, family, {families = families, builders = builders, gen_world = gen_world,
                                            persona_wrap = persona_wrap, system = SYSTEM,
                                            fact_check = "asked the customer for the "})
end

---------------------------------------------------------------- oracle
local function addr_args(a, extra)
  local r = {street = a.street, city = a.city, state = a.state, zip = a.zip}
  for k, v in pairs(extra) do r[k] = v end
  return r
end

local oracles = {}
oracles.cancel_order = function(task, s, steps)
  if s.by_email then
    steps[#steps + 1] = {call = "find_customer_by_email", args = {email = task.state.customers[s.cid].email}}
    steps[#steps + 1] = {call = "get_customer", args = {customer_id = s.cid}}
  end
  steps[#steps + 1] = {call = "get_order", args = {order_id = s.oid}}
  steps[#steps + 1] = {call = "cancel_order", args = {order_id = s.oid, reason = s.reason}}
  steps[#steps + 1] = {say = "Order " .. s.oid .. " is cancelled and " .. money(task.state.orders[s.oid].total) .. " goes back to the original payment method."}
end
oracles.change_shipping_address = function(task, s, steps)
  steps[#steps + 1] = {call = "get_order", args = {order_id = s.oid}}
  steps[#steps + 1] = {call = "update_order_address", args = addr_args(s.addr, {order_id = s.oid})}
  if s.also_default then steps[#steps + 1] = {call = "update_customer_address", args = addr_args(s.addr, {customer_id = s.cid})} end
  steps[#steps + 1] = {say = "Done: order " .. s.oid .. " will ship to " .. addr_text(s.addr) .. "."}
end
oracles.return_items = function(task, s, steps)
  steps[#steps + 1] = {call = "get_order", args = {order_id = s.oid}}
  steps[#steps + 1] = {call = "get_customer", args = {customer_id = s.cid}}
  steps[#steps + 1] = {call = "return_items", args = {order_id = s.oid, item_skus = s.skus, refund_method_id = s.method}}
  steps[#steps + 1] = {say = "The return for order " .. s.oid .. " is started; the money goes to " .. s.method .. " once the items arrive."}
end
oracles.change_item_option = function(task, s, steps)
  steps[#steps + 1] = {call = "get_order", args = {order_id = s.oid}}
  steps[#steps + 1] = {call = "get_product", args = {product_id = s.pid}}
  steps[#steps + 1] = {call = "change_item_option", args = {order_id = s.oid, item_sku = s.sku, new_sku = s.new_sku}}
  steps[#steps + 1] = {say = "Done, order " .. s.oid .. " now has the variant you wanted."}
end
oracles.update_default_address = function(task, s, steps)
  steps[#steps + 1] = {call = "find_customer_by_email", args = {email = s.email}}
  steps[#steps + 1] = {call = "update_customer_address", args = addr_args(s.addr, {customer_id = s.cid})}
  if s.oid then steps[#steps + 1] = {call = "update_order_address", args = addr_args(s.addr, {order_id = s.oid})} end
  steps[#steps + 1] = {say = "Your account now lists " .. addr_text(s.addr) .. "."}
end
oracles.order_status = function(task, s, steps)
  local o = task.state.orders[s.oid]
  steps[#steps + 1] = {call = "find_customer_by_email", args = {email = s.email}}
  steps[#steps + 1] = {call = "get_customer", args = {customer_id = s.cid}}
  steps[#steps + 1] = {call = "get_order", args = {order_id = s.oid}}
  steps[#steps + 1] = {say = "Order " .. s.oid .. " is " .. o.status .. " with " .. o.tracking.carrier .. ", tracking number " .. o.tracking.number .. "."}
end

local function oracle(task) return family_oracle(oracles, task) end

return {
  name = "retail_orders",
  description = "Online shop customer service: look up customers and orders, cancel, re-address, swap variants, return items, report tracking.",
  tools = tools,
  families = families,
  checks = checks,
  fact_phrases = fact_phrases,
  sample_task = sample_task,
  oracle = oracle,
}
