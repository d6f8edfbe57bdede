-- banking: a retail bank's assistant for one signed-in customer. State: accounts (checking,
-- savings, credit; balances in integer cents), payees, payments, cards, posted transactions,
-- transfers (done and scheduled). Tools take amounts in dollars (at most 2 decimals).
-- Contract: docs/environments.md.

---------------------------------------------------------------- helpers
local function ok(data) return {success = true, data = data} end
local function fail(msg) return {success = false, error = msg} end
local function money(c)
  local sign = c < 0 and "-" or ""
  c = math.abs(c)
  return string.format("%s$%d.%02d", sign, c // 100, c % 100)
end
local function dollars(c) return c / 100 end
local function to_cents(x)
  local c = x * 100
  local r = math.floor(c + 0.5)
  if math.abs(c - r) > 1e-6 then return nil end
  return math.tointeger(r)
end
local function persona_wrap(aspects, text)
  local p = aspects.persona or 0
  if p == 0 then return text end
  if p == 1 then return "Hello, " .. (text:match("^I[ ']") and text or text:sub(1, 1):lower() .. text:sub(2)) .. " Thanks." end
  return "hi... i don't really use online banking much, my grandson set it up. " .. text .. " is that possible?"
end
local function omitted_set(aspects, cands)
  local n = math.min(aspects.omit or 0, #cands)
  local s = {}
  for i = 1, n do s[cands[i]] = true end
  return s
end

local FIRST = {"Agnes", "Bruno", "Celeste", "Dmitri", "Esme", "Farid", "Giulia", "Hamish", "Imani", "Joaquin",
  "Kirsten", "Laszlo", "Mirela", "Nils", "Ottilie", "Pavel"}
local LAST = {"Achterberg", "Bianchi", "Crowther", "Delacroix", "Eriksen", "Fontaine", "Gallagher",
  "Hoffmann", "Ibarra", "Jankowski", "Kruger", "Lund"}
local SAVINGS_NAMES = {"Emergency fund", "Vacation fund", "House deposit", "Rainy day", "New car"}
local MERCHANTS = {"Quillbrook Books", "Harbor Fuel", "Lantern Grocers", "Pixel Arcade", "Copperleaf Cafe",
  "Northline Rail", "Greenway Pharmacy", "Summit Outfitters", "Bluebird Streaming", "Maple Hardware",
  "Orbit Electronics", "Saffron Kitchen"}
local BILLERS = {{"Northgate Power", "utilities"}, {"Clearwave Internet", "utilities"}, {"Cityside Water", "utilities"},
  {"Evergreen Insurance", "insurance"}, {"Pinecrest Apartments", "rent"}, {"Brightpath Mobile", "phone"},
  {"Riverbend Dental", "medical"}, {"Ashgrove Gym", "other"}}
local CATEGORIES = {"utilities", "insurance", "rent", "phone", "medical", "other"}
local DISPUTE_REASONS = {"unrecognized charge", "duplicate charge", "wrong amount", "item not received"}

local function gen_world(rng)
  local st = {customer = {}, accounts = {}, payees = {}, payments = {}, cards = {}, transactions = {},
              transfers = {}, next_ref = 1}
  st.customer = {name = rng:choice(FIRST) .. " " .. rng:choice(LAST), id = string.format("CU%06d", rng:int(0, 999999))}
  local used = {}
  local function uid(fmt, a, b)
    while true do
      local id = string.format(fmt, rng:int(a, b))
      if not used[id] then used[id] = true; return id end
    end
  end
  local accts = {}
  local function add(kind, nick, bal)
    local id = uid(kind == "checking" and "CHK-%04d" or (kind == "savings" and "SAV-%04d" or "CC-%04d"), 1000, 9999)
    st.accounts[id] = {id = id, type = kind, nickname = nick, balance = bal, status = "open"}
    accts[#accts + 1] = id
    return id
  end
  local chk = add("checking", "Everyday checking", rng:int(800, 9000) * 100 + rng:int(0, 99))
  local savs = {}
  for _, nick in ipairs(rng:sample(SAVINGS_NAMES, rng:int(1, 3))) do
    savs[#savs + 1] = add("savings", nick, rng:int(200, 25000) * 100 + rng:int(0, 99))
  end
  local cc = add("credit", "Rewards credit card", -(rng:int(50, 2500) * 100 + rng:int(0, 99)))
  -- cards: debit on checking, credit on the credit account
  for _, pair in ipairs({{chk, "debit"}, {cc, "credit"}}) do
    local id = uid("CARD-%05d", 10000, 99999)
    st.cards[id] = {id = id, account_id = pair[1], kind = pair[2], last4 = string.format("%04d", rng:int(0, 9999)),
                    status = "active"}
  end
  -- payees: 3 of the billers
  local billers = rng:sample(BILLERS, 5)
  for i = 1, 3 do
    local id = uid("PY-%03d", 100, 999)
    st.payees[id] = {id = id, name = billers[i][1], category = billers[i][2],
                     account_number = string.format("%d", rng:int(10000000, 99999999))}
  end
  -- transactions: 12 on checking / credit, dates in May 2025
  local merch = rng:sample(MERCHANTS, 8)
  for i = 1, 12 do
    local id = uid("TX%06d", 0, 999999)
    local acct = rng:int(0, 1) == 0 and chk or cc
    st.transactions[id] = {id = id, account_id = acct, date = string.format("2025-05-%02d", rng:int(1, 31)),
                           merchant = merch[(i - 1) % 8 + 1], amount = -(rng:int(3, 180) * 100 + rng:int(0, 99)),
                           status = "posted"}
  end
  -- deposits into every savings account
  for _, s in ipairs(savs) do
    local id = uid("TX%06d", 0, 999999)
    st.transactions[id] = {id = id, account_id = s, date = string.format("2025-05-%02d", rng:int(1, 31)),
                           merchant = "Deposit", amount = rng:int(20, 900) * 100, status = "posted"}
  end
  return st, {checking = chk, savings = savs, credit = cc, billers = billers}
end

local function new_ref(st, prefix)
  local r = string.format("%s%05d", prefix, st.next_ref)
  st.next_ref = st.next_ref + 1
  return r
end
local function acct_view(a) return {id = a.id, type = a.type, nickname = a.nickname, balance = dollars(a.balance), status = a.status} end
local function open_acct(st, id)
  local a = st.accounts[id]
  if not a then return nil, fail("unknown account id '" .. id .. "'") end
  if a.status ~= "open" then return nil, fail("account " .. id .. " is " .. a.status) end
  return a
end
local function amount_arg(x)
  if x <= 0 then return nil, fail("amount must be positive") end
  local c = to_cents(x)
  if not c then return nil, fail("amount must have at most 2 decimals") end
  return c
end
local function valid_date(d)
  local y, m, dd = d:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  return y and tonumber(m) >= 1 and tonumber(m) <= 12 and tonumber(dd) >= 1 and tonumber(dd) <= 31
end

---------------------------------------------------------------- tools
local tools = {
  {name = "list_accounts", description = "List the customer's accounts with type, nickname and balance (dollars; credit balances are negative).",
   parameters = {type = "object", properties = {}, required = {}},
   run = function(st)
     local r = {}
     for _, a in spairs(st.accounts) do r[#r + 1] = acct_view(a) end
     return ok(array(r))
   end},
  {name = "get_transactions", description = "Posted transactions of one account, newest first, optionally only those of one merchant.",
   parameters = {type = "object", properties = {
     account_id = {type = "string", description = "Account id, e.g. CHK-1234"},
     merchant = {type = "string", description = "Only this merchant (case-insensitive substring)"}},
     required = {"account_id"}},
   run = function(st, a)
     if not st.accounts[a.account_id] then return fail("unknown account id '" .. a.account_id .. "'") end
     local r = {}
     for _, t in spairs(st.transactions) do
       if t.account_id == a.account_id and (not a.merchant or t.merchant:lower():find(a.merchant:lower(), 1, true)) then
         r[#r + 1] = {id = t.id, date = t.date, merchant = t.merchant, amount = dollars(t.amount), status = t.status}
       end
     end
     table.sort(r, function(x, y) return x.date > y.date or (x.date == y.date and x.id < y.id) end)
     return ok(array(r))
   end},
  {name = "transfer_funds", description = "Move money now between two of the customer's own accounts (not from a credit account).",
   parameters = {type = "object", properties = {
     from_account_id = {type = "string", description = "Source account id"},
     to_account_id = {type = "string", description = "Destination account id"},
     amount = {type = "number", description = "Amount in dollars, e.g. 250.00"}},
     required = {"from_account_id", "to_account_id", "amount"}},
   run = function(st, a)
     local from, e1 = open_acct(st, a.from_account_id)
     if not from then return e1 end
     local to, e2 = open_acct(st, a.to_account_id)
     if not to then return e2 end
     if from.id == to.id then return fail("source and destination are the same account") end
     if from.type == "credit" then return fail("transfers from a credit account are not allowed") end
     local c, e3 = amount_arg(a.amount)
     if not c then return e3 end
     if from.balance < c then return fail("insufficient funds: " .. from.id .. " has " .. money(from.balance)) end
     from.balance = from.balance - c
     to.balance = to.balance + c
     local id = new_ref(st, "TR")
     st.transfers[id] = {id = id, from = from.id, to = to.id, amount = c, status = "done"}
     return ok({transfer_id = id, from_balance = dollars(from.balance), to_balance = dollars(to.balance)})
   end},
  {name = "schedule_transfer", description = "Set up a recurring transfer between two of the customer's accounts.",
   parameters = {type = "object", properties = {
     from_account_id = {type = "string", description = "Source account id"},
     to_account_id = {type = "string", description = "Destination account id"},
     amount = {type = "number", description = "Amount in dollars per transfer"},
     frequency = {type = "string", description = "How often", enum = {"weekly", "biweekly", "monthly"}},
     start_date = {type = "string", description = "First transfer date, YYYY-MM-DD (after 2025-06-01)"}},
     required = {"from_account_id", "to_account_id", "amount", "frequency", "start_date"}},
   run = function(st, a)
     local from, e1 = open_acct(st, a.from_account_id)
     if not from then return e1 end
     local to, e2 = open_acct(st, a.to_account_id)
     if not to then return e2 end
     if from.id == to.id then return fail("source and destination are the same account") end
     if from.type == "credit" then return fail("transfers from a credit account are not allowed") end
     local c, e3 = amount_arg(a.amount)
     if not c then return e3 end
     if not valid_date(a.start_date) or a.start_date <= "2025-06-01" then return fail("start_date must be a date after 2025-06-01, YYYY-MM-DD") end
     local id = new_ref(st, "TR")
     st.transfers[id] = {id = id, from = from.id, to = to.id, amount = c, status = "scheduled",
                         frequency = a.frequency, start_date = a.start_date}
     return ok({transfer_id = id, status = "scheduled"})
   end},
  {name = "list_payees", description = "List the customer's saved bill payees.",
   parameters = {type = "object", properties = {}, required = {}},
   run = function(st)
     local r = {}
     for _, p in spairs(st.payees) do r[#r + 1] = p end
     return ok(array(r))
   end},
  {name = "add_payee", description = "Save a new bill payee.",
   parameters = {type = "object", properties = {
     name = {type = "string", description = "Payee name as on the bill"},
     account_number = {type = "string", description = "The customer's account number at the payee (digits)"},
     category = {type = "string", description = "Kind of bill", enum = CATEGORIES}},
     required = {"name", "account_number", "category"}},
   run = function(st, a)
     if not a.account_number:match("^%d%d%d%d%d%d+$") then return fail("account_number must be at least 6 digits") end
     for _, p in spairs(st.payees) do
       if p.name:lower() == a.name:lower() then return fail("payee '" .. p.name .. "' already exists as " .. p.id) end
     end
     local id = new_ref(st, "PY-N")
     st.payees[id] = {id = id, name = a.name, category = a.category, account_number = a.account_number}
     return ok(st.payees[id])
   end},
  {name = "pay_bill", description = "Pay a saved payee now from a checking account.",
   parameters = {type = "object", properties = {
     payee_id = {type = "string", description = "Payee id"},
     from_account_id = {type = "string", description = "Checking account id"},
     amount = {type = "number", description = "Amount in dollars"}},
     required = {"payee_id", "from_account_id", "amount"}},
   run = function(st, a)
     local p = st.payees[a.payee_id]
     if not p then return fail("unknown payee id '" .. a.payee_id .. "'") end
     local from, e1 = open_acct(st, a.from_account_id)
     if not from then return e1 end
     if from.type ~= "checking" then return fail("bills are paid from a checking account") end
     local c, e3 = amount_arg(a.amount)
     if not c then return e3 end
     if from.balance < c then return fail("insufficient funds: " .. from.id .. " has " .. money(from.balance)) end
     from.balance = from.balance - c
     local id = new_ref(st, "BP")
     st.payments[id] = {id = id, payee_id = p.id, payee = p.name, from = from.id, amount = c}
     return ok({payment_id = id, new_balance = dollars(from.balance)})
   end},
  {name = "list_cards", description = "List the customer's cards (id, kind, last 4 digits, status, account).",
   parameters = {type = "object", properties = {}, required = {}},
   run = function(st)
     local r = {}
     for _, c in spairs(st.cards) do r[#r + 1] = c end
     return ok(array(r))
   end},
  {name = "freeze_card", description = "Temporarily freeze an active card (it can be unfrozen later).",
   parameters = {type = "object", properties = {card_id = {type = "string", description = "Card id"}}, required = {"card_id"}},
   run = function(st, a)
     local c = st.cards[a.card_id]
     if not c then return fail("unknown card id '" .. a.card_id .. "'") end
     if c.status ~= "active" then return fail("card " .. c.id .. " is " .. c.status) end
     c.status = "frozen"
     return ok({card_id = c.id, status = c.status})
   end},
  {name = "report_card_lost", description = "Permanently block a lost or stolen card and order a replacement with new digits.",
   parameters = {type = "object", properties = {
     card_id = {type = "string", description = "Card id"},
     reason = {type = "string", description = "What happened", enum = {"lost", "stolen"}}},
     required = {"card_id", "reason"}},
   run = function(st, a)
     local c = st.cards[a.card_id]
     if not c then return fail("unknown card id '" .. a.card_id .. "'") end
     if c.status == "blocked" then return fail("card " .. c.id .. " is already blocked") end
     c.status = "blocked"
     c.block_reason = a.reason
     local id = new_ref(st, "CARD-N")
     local last4 = string.format("%04d", (tonumber(c.last4) * 7 + 1234) % 10000)
     st.cards[id] = {id = id, account_id = c.account_id, kind = c.kind, last4 = last4, status = "ordered", replaces = c.id}
     return ok({blocked = c.id, replacement = id, replacement_last4 = last4})
   end},
  {name = "dispute_transaction", description = "Open a dispute on a posted card or checking transaction.",
   parameters = {type = "object", properties = {
     transaction_id = {type = "string", description = "Transaction id"},
     reason = {type = "string", description = "Why it is disputed", enum = DISPUTE_REASONS}},
     required = {"transaction_id", "reason"}},
   run = function(st, a)
     local t = st.transactions[a.transaction_id]
     if not t then return fail("unknown transaction id '" .. a.transaction_id .. "'") end
     if t.status ~= "posted" then return fail("transaction " .. t.id .. " is already " .. t.status) end
     if t.amount >= 0 then return fail("only charges (negative amounts) can be disputed") end
     t.status = "disputed"
     t.dispute_reason = a.reason
     return ok({transaction_id = t.id, status = t.status, provisional_credit = dollars(-t.amount)})
   end},
}

---------------------------------------------------------------- checks
local WRITE_TOOLS = {transfer_funds = true, schedule_transfer = true, add_payee = true, pay_bill = true,
                     freeze_card = true, report_card_lost = true, dispute_transaction = true}
local COLLS = {"accounts", "payees", "payments", "cards", "transactions", "transfers"}
local checks = {
  -- changed entries only among a.allow, at least one change, at most a.new new entries
  only_changed = function(state, a, ctx)
    local allow = {}
    for _, k in ipairs(a.allow) do allow[k] = true end
    local init, progressed, n_new = ctx.task.state, false, 0
    for _, coll in ipairs(COLLS) do
      local i0, f = init[coll] or {}, state[coll] or {}
      for id, v in pairs(f) do
        if i0[id] == nil then n_new = n_new + 1; progressed = true
        elseif not deep_equal(v, i0[id]) then
          if not allow[coll .. "/" .. id] then return false end
          progressed = true
        end
      end
      for id in pairs(i0) do if f[id] == nil then return false end end
    end
    return progressed and n_new <= (a.new or 0)
  end,
  -- some entry of collection a.coll (new since the start) has every field of a.fields
  new_entry = function(state, a, ctx)
    local i0 = ctx.task.state[a.coll] or {}
    for id, v in pairs(state[a.coll] or {}) do
      if i0[id] == nil then
        local okk = true
        for k, x in pairs(a.fields) do if not deep_equal(v[k], x) then okk = false end end
        if okk then return true end
      end
    end
    return false
  end,
  -- the final text names every amount in a.texts (commas ignored) and nothing was changed
  said_clean = function(state, a, ctx)
    for _, c in ipairs(ctx.calls) do if c.success and WRITE_TOOLS[c.name] then return false end end
    local t = ctx.final_text:lower():gsub(",", "")
    for _, x in ipairs(a.texts) do if not t:find(x:lower(), 1, true) then return false end end
    return true
  end,
}

---------------------------------------------------------------- tasks
local SYSTEM = {
  "You are the virtual assistant of Lakeshore Bank, talking to a signed-in customer. Policy: look up accounts, " ..
  "payees, cards or transactions before acting on them; amounts are in dollars; bills are paid from checking; a " ..
  "lost or stolen card is blocked and replaced, a misplaced card is only frozen; disputes need the exact " ..
  "transaction; ask the customer for anything you need; never move money or change anything not asked for.",
  "You are Lakeshore Bank's assistant for a signed-in customer. Look things up before acting and ask for missing details.",
  "You are a helpful assistant with access to tools.",
}
local families = {
  {name = "transfer_between_accounts", description = "move money from checking to one of the savings accounts", calls = 2},
  {name = "pay_bill", description = "pay a saved or a new payee from checking", calls = 3},
  {name = "card_problem", description = "freeze a misplaced card or block and replace a lost / stolen one", calls = 2},
  {name = "dispute_charge", description = "find a charge by merchant and amount and dispute it", calls = 3},
  {name = "schedule_transfer", description = "set up a recurring transfer into savings", calls = 2},
  {name = "balance_inquiry", description = "report a savings balance and its last deposit (read only)", calls = 2},
}
local fact_phrases = {
  amount = {"amount", "how much"},
  destination = {"destination account", "which account", "into which"},
  payee_account_number = {"account number"},
  card_digits = {"last four digits", "last 4 digits", "which card"},
  what_happened = {"what happened", "lost or stolen", "stolen"},
  charge_amount = {"charge amount", "amount of the charge"},
  merchant = {"merchant", "where was"},
  dispute_reason = {"reason", "why"},
  frequency = {"frequency", "how often"},
  start_date = {"start date", "first transfer"},
}

local builders = {}
builders.transfer_between_accounts = function(rng, aspects, st, w)
  local chk = st.accounts[w.checking]
  local dest = st.accounts[rng:choice(w.savings)]
  local amt = rng:int(2, math.max(2, math.min(chk.balance // 100 - 1, 1500) // 5)) * 5 * 100
  if rng:int(0, 2) == 0 then amt = amt + rng:int(1, 99) end
  if amt > chk.balance then amt = chk.balance // 2 end
  local om = omitted_set(aspects, {"amount", "destination"})
  local facts = {}
  local q = "Move " .. (om.amount and "some money" or money(amt)) .. " from my checking into " ..
            (om.destination and "my savings." or ("my " .. dest.nickname .. " savings."))
  if om.amount then facts.amount = money(amt) end
  if om.destination then facts.destination = dest.nickname end
  local checks = {
    {name = "accounts listed", fn = "called", args = {name = "list_accounts"}},
    {name = "checking balance is " .. money(chk.balance - amt), fn = "equals", args = {path = {"accounts", chk.id, "balance"}, value = chk.balance - amt}},
    {name = dest.nickname .. " balance is " .. money(dest.balance + amt), fn = "equals", args = {path = {"accounts", dest.id, "balance"}, value = dest.balance + amt}},
    {name = "one transfer and nothing else", fn = "only_changed", args = {allow = {"accounts/" .. chk.id, "accounts/" .. dest.id}, new = 1}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"list_accounts", "transfer_funds"},
          solution = {from = chk.id, to = dest.id, amount = amt}}
end

builders.pay_bill = function(rng, aspects, st, w)
  local chk = st.accounts[w.checking]
  local new = (aspects.expected_calls or 1) >= 3 and rng:int(0, 3) > 0
  local name, cat, acctno, pid
  if new then
    local b = w.billers[rng:int(4, 5)]
    name, cat, acctno = b[1], b[2], string.format("%d", rng:int(1000000, 99999999))
  else
    local ps = {}
    for _, p in spairs(st.payees) do ps[#ps + 1] = p end
    local p = rng:choice(ps)
    name, cat, acctno, pid = p.name, p.category, p.account_number, p.id
  end
  local amt = rng:int(15, math.max(16, math.min(400, chk.balance // 100 - 1))) * 100 + rng:int(0, 99)
  local cands = new and {"payee_account_number", "amount"} or {"amount"}
  local om = omitted_set(aspects, cands)
  local facts = {}
  local q = "Please pay my " .. name .. " bill of " .. (om.amount and "this month" or money(amt)) .. " from checking."
  if om.amount then
    q = "Please pay my " .. name .. " bill for this month from checking."
    facts.amount = money(amt)
  end
  if new then
    q = q .. " They aren't saved as a payee yet (it's a " .. cat .. " bill)."
    if om.payee_account_number then facts.payee_account_number = acctno else q = q .. " My account number with them is " .. acctno .. "." end
  end
  local checks = {
    {name = "payees listed", fn = "called", args = {name = "list_payees"}},
    {name = money(amt) .. " paid to " .. name, fn = "new_entry", args = {coll = "payments", fields = {payee = name, from = chk.id, amount = amt}}},
    {name = "checking balance is " .. money(chk.balance - amt), fn = "equals", args = {path = {"accounts", chk.id, "balance"}, value = chk.balance - amt}},
  }
  if new then
    checks[#checks + 1] = {name = "payee " .. name .. " saved with account " .. acctno, fn = "new_entry",
                           args = {coll = "payees", fields = {name = name, account_number = acctno, category = cat}}}
  end
  checks[#checks + 1] = {name = "nothing else changed", fn = "only_changed", args = {allow = {"accounts/" .. chk.id}, new = new and 2 or 1}}
  -- pay_bill needs the checking account's id, which only list_accounts tells the agent
  local tl = new and {"list_payees", "list_accounts", "add_payee", "pay_bill"} or {"list_payees", "list_accounts", "pay_bill"}
  return {query = q, facts = facts, checks = checks, tools = tl,
          solution = {new = new, name = name, cat = cat, acctno = acctno, pid = pid, from = chk.id, amount = amt}}
end

builders.card_problem = function(rng, aspects, st, w)
  local cards = {}
  for _, c in spairs(st.cards) do cards[#cards + 1] = c end
  local card = rng:choice(cards)
  local mode = rng:choice({"misplaced", "lost", "stolen"})
  local om = omitted_set(aspects, {"card_digits", "what_happened"})
  local facts = {}
  local which = om.card_digits and "one of my cards" or ("my " .. card.kind .. " card ending " .. card.last4)
  local q
  if om.what_happened then
    q = "Something happened with " .. which .. ", please help me deal with it."
    facts.what_happened = mode == "misplaced" and "I just misplaced it, I'll probably find it, freeze it for now" or
                          (mode == "lost" and "it is lost for good" or "it was stolen")
  elseif mode == "misplaced" then q = "I misplaced " .. which .. "; freeze it for now, I'll probably find it."
  elseif mode == "lost" then q = "I lost " .. which .. " for good. Block it and send me a new one."
  else q = "Someone stole " .. which .. ". Block it and send a replacement." end
  if om.card_digits then facts.card_digits = card.last4 end
  local checks = {{name = "cards listed", fn = "called", args = {name = "list_cards"}}}
  if mode == "misplaced" then
    checks[#checks + 1] = {name = "card " .. card.id .. " frozen", fn = "equals", args = {path = {"cards", card.id, "status"}, value = "frozen"}}
    checks[#checks + 1] = {name = "nothing else changed", fn = "only_changed", args = {allow = {"cards/" .. card.id}}}
  else
    checks[#checks + 1] = {name = "card " .. card.id .. " blocked as " .. mode, fn = "equals", args = {path = {"cards", card.id, "block_reason"}, value = mode}}
    checks[#checks + 1] = {name = "replacement ordered", fn = "new_entry", args = {coll = "cards", fields = {replaces = card.id, status = "ordered"}}}
    checks[#checks + 1] = {name = "nothing else changed", fn = "only_changed", args = {allow = {"cards/" .. card.id}, new = 1}}
  end
  return {query = q, facts = facts, checks = checks,
          tools = {"list_cards", mode == "misplaced" and "freeze_card" or "report_card_lost"},
          solution = {card = card.id, mode = mode}}
end

builders.dispute_charge = function(rng, aspects, st, w)
  local txs = {}
  for _, t in spairs(st.transactions) do if t.amount < 0 then txs[#txs + 1] = t end end
  local t = rng:choice(txs)
  local acct = st.accounts[t.account_id]
  -- a second charge from the same merchant with another amount makes the amount matter
  local id2 = "TX9" .. string.sub(t.id, 4)
  if not st.transactions[id2] then
    local amt2 = t.amount - 100 * rng:int(1, 40)
    st.transactions[id2] = {id = id2, account_id = t.account_id, date = string.format("2025-05-%02d", rng:int(1, 31)),
                            merchant = t.merchant, amount = amt2, status = "posted"}
  end
  local reason = rng:choice(DISPUTE_REASONS)
  local om = omitted_set(aspects, {"dispute_reason", "charge_amount", "merchant"})
  local facts = {}
  local on = acct.type == "credit" and "credit card" or "checking account"
  local q = "I want to dispute a " .. (om.charge_amount and "" or (money(-t.amount) .. " ")) .. "charge" ..
            (om.merchant and "" or (" from " .. t.merchant)) .. " on my " .. on .. "."
  if not om.dispute_reason then q = q .. " Reason: " .. reason .. "." end
  if om.dispute_reason then facts.dispute_reason = reason end
  if om.charge_amount then facts.charge_amount = money(-t.amount) end
  if om.merchant then facts.merchant = t.merchant end
  local checks = {
    {name = "transactions of " .. acct.id .. " looked up", fn = "called", args = {name = "get_transactions", with = {account_id = acct.id}}},
    {name = t.id .. " disputed", fn = "equals", args = {path = {"transactions", t.id, "status"}, value = "disputed"}},
    {name = "dispute reason " .. reason, fn = "equals", args = {path = {"transactions", t.id, "dispute_reason"}, value = reason}},
    {name = "nothing else changed", fn = "only_changed", args = {allow = {"transactions/" .. t.id}}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"list_accounts", "get_transactions", "dispute_transaction"},
          solution = {acct = acct.id, tx = t.id, merchant = t.merchant, reason = reason}}
end

builders.schedule_transfer = function(rng, aspects, st, w)
  local chk = st.accounts[w.checking]
  local dest = st.accounts[rng:choice(w.savings)]
  local amt = rng:int(2, 60) * 25 * 100
  local freq = rng:choice({"weekly", "biweekly", "monthly"})
  local start = string.format("2025-%02d-%02d", rng:int(6, 8), rng:int(2, 28))
  local om = omitted_set(aspects, {"start_date", "frequency", "amount"})
  local facts = {}
  local q = "Set up a " .. (om.frequency and "recurring" or freq) .. " transfer of " .. (om.amount and "a fixed amount" or money(amt)) ..
            " from checking to my " .. dest.nickname .. " savings" .. (om.start_date and "." or (", starting " .. start .. "."))
  if om.start_date then facts.start_date = start end
  if om.frequency then facts.frequency = freq end
  if om.amount then facts.amount = money(amt) end
  local checks = {
    {name = "accounts listed", fn = "called", args = {name = "list_accounts"}},
    {name = freq .. " " .. money(amt) .. " to " .. dest.id .. " from " .. start, fn = "new_entry",
     args = {coll = "transfers", fields = {from = chk.id, to = dest.id, amount = amt, frequency = freq, start_date = start, status = "scheduled"}}},
    {name = "nothing else changed", fn = "only_changed", args = {allow = {}, new = 1}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"list_accounts", "schedule_transfer"},
          solution = {from = chk.id, to = dest.id, amount = amt, freq = freq, start = start}}
end

builders.balance_inquiry = function(rng, aspects, st, w)
  local sid = rng:choice(w.savings)
  local s = st.accounts[sid]
  local dep
  for _, t in spairs(st.transactions) do if t.account_id == sid and t.amount > 0 then dep = t end end
  local om = omitted_set(aspects, {"destination"})
  local facts = {}
  local q = "How much is in my " .. (om.destination and "savings" or (s.nickname .. " savings")) .. " right now, and how big was the last deposit?"
  if om.destination then facts.destination = s.nickname end
  local checks = {
    {name = "accounts listed", fn = "called", args = {name = "list_accounts"}},
    {name = "transactions of " .. sid .. " looked up", fn = "called", args = {name = "get_transactions", with = {account_id = sid}}},
    {name = "balance " .. money(s.balance) .. " and deposit " .. money(dep.amount) .. " reported, nothing changed", fn = "said_clean",
     args = {texts = {money(s.balance), money(dep.amount)}}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"list_accounts", "get_transactions"},
          solution = {acct = sid, balance = s.balance, dep = dep.amount}}
end

local function sample_task(rng, aspects, family)
  return family_task(rng, aspects, family, {families = families, builders = builders, gen_world = gen_world,
                                            persona_wrap = persona_wrap, system = SYSTEM,
                                            fact_check = "asked the customer: "})
end

---------------------------------------------------------------- oracle
local oracles = {}
oracles.transfer_between_accounts = function(task, s, steps)
  steps[#steps + 1] = {call = "list_accounts", args = object()}
  steps[#steps + 1] = {call = "transfer_funds", args = {from_account_id = s.from, to_account_id = s.to, amount = dollars(s.amount)}}
  steps[#steps + 1] = {say = money(s.amount) .. " has been moved."}
end
oracles.pay_bill = function(task, s, steps)
  steps[#steps + 1] = {call = "list_payees", args = object()}
  steps[#steps + 1] = {call = "list_accounts", args = object()}
  local pid = s.pid
  if s.new then
    steps[#steps + 1] = {call = "add_payee", args = {name = s.name, account_number = s.acctno, category = s.cat}}
    pid = "PY-N" .. string.format("%05d", task.state.next_ref)
  end
  steps[#steps + 1] = {call = "pay_bill", args = {payee_id = pid, from_account_id = s.from, amount = dollars(s.amount)}}
  steps[#steps + 1] = {say = "Paid " .. money(s.amount) .. " to " .. s.name .. "."}
end
oracles.card_problem = function(task, s, steps)
  steps[#steps + 1] = {call = "list_cards", args = object()}
  if s.mode == "misplaced" then
    steps[#steps + 1] = {call = "freeze_card", args = {card_id = s.card}}
    steps[#steps + 1] = {say = "The card is frozen; you can unfreeze it once you find it."}
  else
    steps[#steps + 1] = {call = "report_card_lost", args = {card_id = s.card, reason = s.mode}}
    steps[#steps + 1] = {say = "The card is blocked and a replacement is on its way."}
  end
end
oracles.dispute_charge = function(task, s, steps)
  steps[#steps + 1] = {call = "list_accounts", args = object()}
  steps[#steps + 1] = {call = "get_transactions", args = {account_id = s.acct, merchant = s.merchant}}
  steps[#steps + 1] = {call = "dispute_transaction", args = {transaction_id = s.tx, reason = s.reason}}
  steps[#steps + 1] = {say = "The dispute is open and a provisional credit is on its way."}
end
oracles.schedule_transfer = function(task, s, steps)
  steps[#steps + 1] = {call = "list_accounts", args = object()}
  steps[#steps + 1] = {call = "schedule_transfer", args = {from_account_id = s.from, to_account_id = s.to,
                       amount = dollars(s.amount), frequency = s.freq, start_date = s.start}}
  steps[#steps + 1] = {say = "Scheduled: " .. money(s.amount) .. " " .. s.freq .. " from " .. s.start .. "."}
end
oracles.balance_inquiry = function(task, s, steps)
  steps[#steps + 1] = {call = "list_accounts", args = object()}
  steps[#steps + 1] = {call = "get_transactions", args = {account_id = s.acct}}
  steps[#steps + 1] = {say = "The balance is " .. money(s.balance) .. "; the last deposit was " .. money(s.dep) .. "."}
end

local function oracle(task) return family_oracle(oracles, task) end

return {
  name = "banking",
  description = "Retail bank assistant: accounts, transfers (now and recurring), bill payees and payments, cards, disputes.",
  tools = tools,
  families = families,
  checks = checks,
  fact_phrases = fact_phrases,
  sample_task = sample_task,
  oracle = oracle,
}
