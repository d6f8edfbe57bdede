-- sim/data/envs/airline.lua: airline customer service (the reference domain; contract:
-- docs/environments.md). State: users (with payment methods and reservations), flights,
-- reservations. 9 tools, 6 task families.

local AIRPORTS = {"SFO", "JFK", "BOS", "ORD", "LAX", "SEA", "DEN", "ATL", "MIA", "AUS"}
local CITY = {SFO = "San Francisco", JFK = "New York", BOS = "Boston", ORD = "Chicago",
              LAX = "Los Angeles", SEA = "Seattle", DEN = "Denver", ATL = "Atlanta",
              MIA = "Miami", AUS = "Austin"}
local FIRST = {"Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jun"}
local LAST = {"Lopez", "Smith", "Wang", "Okafor", "Berg", "Khan", "Rossi", "Sato", "Novak", "Kim"}
local REASONS = {"change_of_plans", "flight_delayed", "medical", "other"}
local REASON_TEXT = {change_of_plans = "my plans changed", flight_delayed = "the flight is delayed",
                     medical = "of a medical issue", other = "of personal reasons"}
local STATUSES = {"on_time", "delayed", "boarding", "cancelled"}
local BAG_FEE = 35

-- ---- state ----

local function date_of(day) return string.format("2025-06-%02d", day) end

local function new_state(rng)
    local st = {users = {}, flights = {}, reservations = {}, next_reservation = 7001, next_flight = 100}
    local function add_flight(origin, destination, date)
        local id = "FL" .. st.next_flight
        st.next_flight = st.next_flight + rng:int(1, 9)
        st.flights[id] = {flight_id = id, origin = origin, destination = destination, date = date,
                          departure = string.format("%02d:%02d", rng:int(6, 21), rng:choice({0, 15, 30, 45})),
                          price = rng:int(9, 60) * 10, seats_left = rng:int(1, 9),
                          status = rng:choice(STATUSES)}
        return id
    end
    -- a few routes with several flights per date
    for _ = 1, 12 do
        local route = rng:sample(AIRPORTS, 2)
        local date = date_of(rng:int(1, 28))
        for _ = 1, rng:int(1, 3) do add_flight(route[1], route[2], date) end
    end
    local flight_ids = {}
    for id in spairs(st.flights) do flight_ids[#flight_ids + 1] = id end
    -- users, each with a credit card, maybe a gift card, and 1-3 reservations
    for _ = 1, rng:int(3, 5) do
        local uid
        repeat uid = "U" .. rng:int(1000, 9999) until st.users[uid] == nil
        local first, last = rng:choice(FIRST), rng:choice(LAST)
        local u = {user_id = uid, name = first .. " " .. last,
                   email = string.lower(first .. "." .. last) .. "@example.com",
                   membership = rng:choice({"regular", "silver", "gold"}),
                   payment_methods = {{id = "card_" .. rng:int(1000, 9999), type = "credit_card"}},
                   reservations = array()}
        if rng:int(0, 1) == 1 then
            u.payment_methods[2] = {id = "gift_" .. rng:int(1000, 9999), type = "gift_card", balance = rng:int(0, 20) * 10}
        end
        st.users[uid] = u
        for _ = 1, rng:int(1, 3) do
            local rid = "R" .. st.next_reservation
            st.next_reservation = st.next_reservation + rng:int(1, 7)
            st.reservations[rid] = {reservation_id = rid, user_id = uid, flight_id = rng:choice(flight_ids),
                                    passengers = rng:int(1, 3), bags = rng:int(0, 2), status = "confirmed",
                                    payment_id = u.payment_methods[1].id}
            u.reservations[#u.reservations + 1] = rid
        end
    end
    return st, add_flight
end

-- ---- tools ----

local function fail(msg) return {success = false, error = msg} end
local function ok(data) return {success = true, data = data} end

local function reservation_view(st, r)
    local f = st.flights[r.flight_id]
    return {reservation_id = r.reservation_id, user_id = r.user_id, flight_id = r.flight_id,
            origin = f.origin, destination = f.destination, date = f.date, passengers = r.passengers,
            bags = r.bags, status = r.status}
end

local function matching_flights(st, origin, destination, date)
    local list = {}
    for _, f in spairs(st.flights) do
        if f.origin == origin and f.destination == destination and f.date == date and f.seats_left > 0 then
            list[#list + 1] = f
        end
    end
    table.sort(list, function(a, b)
        if a.price ~= b.price then return a.price < b.price end
        return a.flight_id < b.flight_id
    end)
    return list
end

local str = function(d) return {type = "string", description = d} end

local tools = {
    {
        name = "get_user",
        description = "Look up a customer's profile: name, email, membership, payment methods and reservation ids.",
        parameters = {type = "object", properties = {user_id = str("customer id, e.g. U1234")}, required = {"user_id"}},
        run = function(st, a)
            local u = st.users[a.user_id]
            if not u then return fail("no user with id " .. a.user_id) end
            return ok(deep_copy(u))
        end,
    },
    {
        name = "get_reservation",
        description = "Look up a reservation by its id: flight, route, date, passengers, bags and status.",
        parameters = {type = "object", properties = {reservation_id = str("reservation id, e.g. R7001")},
                      required = {"reservation_id"}},
        run = function(st, a)
            local r = st.reservations[a.reservation_id]
            if not r then return fail("no reservation with id " .. a.reservation_id) end
            return ok(reservation_view(st, r))
        end,
    },
    {
        name = "search_flights",
        description = "Search flights with free seats between two airports on a date, cheapest first.",
        parameters = {type = "object", properties = {
            origin = {type = "string", description = "IATA code of the departure airport", enum = AIRPORTS},
            destination = {type = "string", description = "IATA code of the arrival airport", enum = AIRPORTS},
            date = str("departure date, YYYY-MM-DD")}, required = {"origin", "destination", "date"}},
        run = function(st, a)
            local out = array()
            for _, f in ipairs(matching_flights(st, a.origin, a.destination, a.date)) do
                out[#out + 1] = {flight_id = f.flight_id, departure = f.departure, price = f.price,
                                 seats_left = f.seats_left}
            end
            return ok(out)
        end,
    },
    {
        name = "book_flight",
        description = "Book seats on a flight for a customer, paid with one of the customer's payment methods.",
        parameters = {type = "object", properties = {
            user_id = str("customer id"), flight_id = str("flight id from search_flights"),
            passengers = {type = "integer", description = "number of passengers", minimum = 1, maximum = 9},
            payment_id = str("id of one of the customer's payment methods")},
            required = {"user_id", "flight_id", "passengers", "payment_id"}},
        run = function(st, a)
            local u, f = st.users[a.user_id], st.flights[a.flight_id]
            if not u then return fail("no user with id " .. a.user_id) end
            if not f then return fail("no flight with id " .. a.flight_id) end
            if f.seats_left < a.passengers then return fail("only " .. f.seats_left .. " seats left on " .. a.flight_id) end
            local pm
            for _, p in ipairs(u.payment_methods) do if p.id == a.payment_id then pm = p end end
            if not pm then return fail("payment method " .. a.payment_id .. " does not belong to " .. a.user_id) end
            local total = f.price * a.passengers
            if pm.type == "gift_card" then
                if pm.balance < total then return fail("gift card balance " .. pm.balance .. " is below the total " .. total) end
                pm.balance = pm.balance - total
            end
            local rid = "R" .. st.next_reservation
            st.next_reservation = st.next_reservation + 1
            f.seats_left = f.seats_left - a.passengers
            st.reservations[rid] = {reservation_id = rid, user_id = u.user_id, flight_id = f.flight_id,
                                    passengers = a.passengers, bags = 0, status = "confirmed", payment_id = pm.id}
            u.reservations[#u.reservations + 1] = rid
            return ok({reservation_id = rid, total = total})
        end,
    },
    {
        name = "cancel_reservation",
        description = "Cancel a confirmed reservation and refund it.",
        parameters = {type = "object", properties = {
            reservation_id = str("reservation id"),
            reason = {type = "string", description = "why the customer cancels", enum = REASONS}},
            required = {"reservation_id", "reason"}},
        run = function(st, a)
            local r = st.reservations[a.reservation_id]
            if not r then return fail("no reservation with id " .. a.reservation_id) end
            if r.status ~= "confirmed" then return fail("reservation " .. r.reservation_id .. " is " .. r.status) end
            r.status, r.cancel_reason = "cancelled", a.reason
            local f = st.flights[r.flight_id]
            f.seats_left = f.seats_left + r.passengers
            return ok({reservation_id = r.reservation_id, status = r.status, refund = f.price * r.passengers})
        end,
    },
    {
        name = "change_flight",
        description = "Move a confirmed reservation to another flight on the same route.",
        parameters = {type = "object", properties = {reservation_id = str("reservation id"),
                      flight_id = str("the new flight's id")}, required = {"reservation_id", "flight_id"}},
        run = function(st, a)
            local r, f = st.reservations[a.reservation_id], st.flights[a.flight_id]
            if not r then return fail("no reservation with id " .. a.reservation_id) end
            if not f then return fail("no flight with id " .. a.flight_id) end
            if r.status ~= "confirmed" then return fail("reservation " .. r.reservation_id .. " is " .. r.status) end
            local old = st.flights[r.flight_id]
            if f.origin ~= old.origin or f.destination ~= old.destination then
                return fail("flight " .. f.flight_id .. " does not fly " .. old.origin .. "-" .. old.destination)
            end
            if f.flight_id == old.flight_id then return fail("the reservation is already on " .. f.flight_id) end
            if f.seats_left < r.passengers then return fail("not enough seats on " .. f.flight_id) end
            old.seats_left, f.seats_left = old.seats_left + r.passengers, f.seats_left - r.passengers
            r.flight_id = f.flight_id
            return ok(reservation_view(st, r))
        end,
    },
    {
        name = "add_baggage",
        description = "Add checked bags to a confirmed reservation (35 USD each).",
        parameters = {type = "object", properties = {reservation_id = str("reservation id"),
                      bags = {type = "integer", description = "number of bags to add", minimum = 1, maximum = 5}},
                      required = {"reservation_id", "bags"}},
        run = function(st, a)
            local r = st.reservations[a.reservation_id]
            if not r then return fail("no reservation with id " .. a.reservation_id) end
            if r.status ~= "confirmed" then return fail("reservation " .. r.reservation_id .. " is " .. r.status) end
            r.bags = r.bags + a.bags
            return ok({reservation_id = r.reservation_id, bags = r.bags, fee = BAG_FEE * a.bags})
        end,
    },
    {
        name = "update_contact",
        description = "Change the email address on a customer's profile.",
        parameters = {type = "object", properties = {user_id = str("customer id"), email = str("new email address")},
                      required = {"user_id", "email"}},
        run = function(st, a)
            local u = st.users[a.user_id]
            if not u then return fail("no user with id " .. a.user_id) end
            if not string.find(a.email, "^[^@%s]+@[^@%s]+%.[a-z]+$") then return fail("not an email address: " .. a.email) end
            u.email = a.email
            return ok({user_id = u.user_id, email = u.email})
        end,
    },
    {
        name = "flight_status",
        description = "Current status of a flight (on_time, delayed, boarding, cancelled).",
        parameters = {type = "object", properties = {flight_id = str("flight id, e.g. FL120")}, required = {"flight_id"}},
        run = function(st, a)
            local f = st.flights[a.flight_id]
            if not f then return fail("no flight with id " .. a.flight_id) end
            return ok({flight_id = f.flight_id, status = f.status, departure = f.departure, date = f.date})
        end,
    },
}

-- ---- checks (besides the built-ins equals / called / not_called / revealed / said) ----

local checks = {
    -- a confirmed reservation of the user on the flight with that many passengers, made in the episode
    booked = function(st, a, ctx)
        for rid, r in spairs(st.reservations) do
            if ctx.task.state.reservations[rid] == nil and r.user_id == a.user_id and r.flight_id == a.flight_id
               and r.status == "confirmed" and (a.passengers == nil or r.passengers == a.passengers) then
                return true
            end
        end
        return false
    end,
    -- reservation `id` is cancelled and every other reservation of the user is unchanged
    cancelled_only = function(st, a, ctx)
        if st.reservations[a.id].status ~= "cancelled" then return false end
        for rid, r in spairs(ctx.task.state.reservations) do
            if rid ~= a.id and r.user_id == a.user_id and not deep_equal(st.reservations[rid], r) then return false end
        end
        return true
    end,
}

-- ---- task families ----

local PERSONA = {
    [0] = function(s) return s .. "." end,
    [1] = function(s) return "Hi, " .. s .. ", please." end,
    [2] = function(s) return "hello, sorry, I'm not good with this... " .. s .. ". thank you so much" end,
}

-- the query: clauses of the known facts, the omitted ones left out
local function compose(aspects, parts)
    local s = table.concat(parts, " ")
    return PERSONA[aspects.persona](s)
end

-- which facts (from the omittable list, in order) the query leaves out
local function omitted(aspects, omittable)
    local n = math.min(aspects.omit, #omittable)
    local out = {}
    for i = 1, n do out[omittable[i]] = true end
    return out
end

local function pick_reservation(st, rng, status)
    local ids = {}
    for rid, r in spairs(st.reservations) do
        if status == nil or r.status == status then ids[#ids + 1] = rid end
    end
    return st.reservations[rng:choice(ids)]
end

local function vague(aspects, r, st)
    local f = st.flights[r.flight_id]
    if aspects.ambiguity >= 2 then return "my trip" end
    return "my flight to " .. CITY[f.destination]
end

local families = {}
local order = {}

local function family(name, description, calls, sample)
    families[name] = {name = name, description = description, calls = calls, sample = sample}
    order[#order + 1] = {name = name, description = description}
end

family("book_flight", "book the cheapest flight on a route and date, paid by credit card", 3, function(rng, aspects, st, add_flight)
    local user = st.users[rng:choice((function() local l = {} for k in spairs(st.users) do l[#l + 1] = k end return l end)())]
    local route = rng:sample(AIRPORTS, 2)
    local date = date_of(rng:int(1, 28))
    for _ = 1, rng:int(2, 3) do add_flight(route[1], route[2], date) end
    local passengers = rng:int(1, 3)
    for _, f in pairs(st.flights) do -- enough seats on the cheapest
        if f.origin == route[1] and f.destination == route[2] and f.date == date then f.seats_left = math.max(f.seats_left, 4) end
    end
    local om = omitted(aspects, {"date", "user_id", "passengers"})
    local parts = {"book the cheapest flight from " .. CITY[route[1]] .. " (" .. route[1] .. ") to " ..
                   CITY[route[2]] .. " (" .. route[2] .. ")"}
    if not om.date then parts[#parts + 1] = "on " .. date end
    if not om.passengers then parts[#parts + 1] = "for " .. passengers .. (passengers == 1 and " passenger" or " passengers") end
    if not om.user_id then parts[#parts + 1] = "for customer " .. user.user_id end
    parts[#parts + 1] = "and pay with my credit card"
    local facts = {date = date, user_id = user.user_id, passengers = tostring(passengers)}
    local cheapest = matching_flights(st, route[1], route[2], date)[1]
    local checks_ = {
        {name = "searched " .. route[1] .. "-" .. route[2] .. " on " .. date, fn = "called",
         args = {name = "search_flights", with = {origin = route[1], destination = route[2], date = date}}},
        {name = "booked " .. cheapest.flight_id .. " for " .. user.user_id, fn = "booked",
         args = {user_id = user.user_id, flight_id = cheapest.flight_id}},
        {name = "booked " .. passengers .. " passengers", fn = "booked",
         args = {user_id = user.user_id, flight_id = cheapest.flight_id, passengers = passengers}},
    }
    return {query = compose(aspects, parts), facts = facts, omitted = om, checks = checks_,
            tools = {"get_user", "search_flights", "book_flight"},
            gold = {user_id = user.user_id, origin = route[1], destination = route[2], date = date,
                    passengers = passengers}}
end)

family("cancel_reservation", "cancel a reservation with the customer's reason", 2, function(rng, aspects, st)
    local r = pick_reservation(st, rng, "confirmed")
    local reason = rng:choice(REASONS)
    local om = omitted(aspects, {"reservation_id", "reason"})
    local parts = {"cancel " .. (om.reservation_id and vague(aspects, r, st) or ("reservation " .. r.reservation_id))}
    if not om.reason then parts[#parts + 1] = "because " .. REASON_TEXT[reason] .. " (reason: " .. reason .. ")" end
    return {query = compose(aspects, parts), facts = {reservation_id = r.reservation_id, reason = reason}, omitted = om,
            tools = {"get_reservation", "cancel_reservation"},
            checks = {
                {name = "looked up " .. r.reservation_id, fn = "called", args = {name = "get_reservation", with = {reservation_id = r.reservation_id}}},
                {name = "reason recorded as " .. reason, fn = "equals", args = {path = {"reservations", r.reservation_id, "cancel_reason"}, value = reason}},
                {name = "only " .. r.reservation_id .. " is cancelled", fn = "cancelled_only", args = {user_id = r.user_id, id = r.reservation_id}},
            },
            gold = {reservation_id = r.reservation_id, reason = reason}}
end)

family("change_flight", "move a reservation to the cheapest flight on a new date", 3, function(rng, aspects, st, add_flight)
    local r = pick_reservation(st, rng, "confirmed")
    local old = st.flights[r.flight_id]
    local day
    repeat day = rng:int(1, 28) until date_of(day) ~= old.date
    local date = date_of(day)
    for _ = 1, rng:int(1, 3) do add_flight(old.origin, old.destination, date) end
    for _, f in pairs(st.flights) do
        if f.origin == old.origin and f.destination == old.destination and f.date == date then f.seats_left = math.max(f.seats_left, r.passengers) end
    end
    local cheapest = matching_flights(st, old.origin, old.destination, date)[1]
    local om = omitted(aspects, {"new_date", "reservation_id"})
    local parts = {"move " .. (om.reservation_id and vague(aspects, r, st) or ("reservation " .. r.reservation_id))}
    parts[#parts + 1] = om.new_date and "to another day" or ("to the cheapest flight on " .. date)
    return {query = compose(aspects, parts), facts = {reservation_id = r.reservation_id, new_date = date}, omitted = om,
            tools = {"get_reservation", "search_flights", "change_flight"},
            checks = {
                {name = "looked up " .. r.reservation_id, fn = "called", args = {name = "get_reservation", with = {reservation_id = r.reservation_id}}},
                {name = "searched flights on " .. date, fn = "called", args = {name = "search_flights", with = {origin = old.origin, destination = old.destination, date = date}}},
                {name = r.reservation_id .. " is on " .. cheapest.flight_id, fn = "equals", args = {path = {"reservations", r.reservation_id, "flight_id"}, value = cheapest.flight_id}},
            },
            gold = {reservation_id = r.reservation_id, origin = old.origin, destination = old.destination, date = date, flight_id = cheapest.flight_id}}
end)

family("add_baggage", "add checked bags to a reservation", 2, function(rng, aspects, st)
    local r = pick_reservation(st, rng, "confirmed")
    local bags = rng:int(1, 3)
    local om = omitted(aspects, {"bags", "reservation_id"})
    local parts = {"add " .. (om.bags and "some checked bags" or (bags .. (bags == 1 and " checked bag" or " checked bags"))) ..
                   " to " .. (om.reservation_id and vague(aspects, r, st) or ("reservation " .. r.reservation_id))}
    return {query = compose(aspects, parts), facts = {reservation_id = r.reservation_id, bags = tostring(bags)}, omitted = om,
            fact_phrases = {bags = {"number of bags", "how many bags", "bags"}},
            tools = {"get_reservation", "add_baggage"},
            checks = {
                {name = "looked up " .. r.reservation_id, fn = "called", args = {name = "get_reservation", with = {reservation_id = r.reservation_id}}},
                {name = r.reservation_id .. " has " .. (r.bags + bags) .. " bags", fn = "equals", args = {path = {"reservations", r.reservation_id, "bags"}, value = r.bags + bags}},
            },
            gold = {reservation_id = r.reservation_id, bags = bags}}
end)

family("update_contact", "change the email address on the profile", 2, function(rng, aspects, st)
    local ids = {}
    for k in spairs(st.users) do ids[#ids + 1] = k end
    local u = st.users[rng:choice(ids)]
    local email = string.lower(rng:choice(FIRST)) .. rng:int(10, 99) .. "@" .. rng:choice({"mail.com", "post.net", "inbox.org"})
    local om = omitted(aspects, {"email", "user_id"})
    local parts = {"change the email on " .. (om.user_id and "my profile" or ("customer " .. u.user_id .. "'s profile"))}
    if not om.email then parts[#parts + 1] = "to " .. email end
    return {query = compose(aspects, parts), facts = {user_id = u.user_id, email = email}, omitted = om,
            fact_phrases = {email = {"new email", "email"}},
            tools = {"get_user", "update_contact"},
            checks = {
                {name = "looked up " .. u.user_id, fn = "called", args = {name = "get_user", with = {user_id = u.user_id}}},
                {name = "email is " .. email, fn = "equals", args = {path = {"users", u.user_id, "email"}, value = email}},
            },
            gold = {user_id = u.user_id, email = email}}
end)

family("flight_status", "tell the customer the status of the flight of a reservation", 2, function(rng, aspects, st)
    local r = pick_reservation(st, rng, nil)
    local f = st.flights[r.flight_id]
    local om = omitted(aspects, {"reservation_id"})
    local parts = {"tell me the status of " .. (om.reservation_id and vague(aspects, r, st) or ("the flight of reservation " .. r.reservation_id))}
    return {query = compose(aspects, parts), facts = {reservation_id = r.reservation_id}, omitted = om,
            tools = {"get_reservation", "flight_status"},
            checks = {
                {name = "looked up " .. r.reservation_id, fn = "called", args = {name = "get_reservation", with = {reservation_id = r.reservation_id}}},
                {name = "checked " .. f.flight_id, fn = "called", args = {name = "flight_status", with = {flight_id = f.flight_id}}},
                {name = "told the status " .. f.status, fn = "said", args = {text = f.status}},
            },
            gold = {reservation_id = r.reservation_id, flight_id = f.flight_id, status = f.status}}
end)

local function sample_task(rng, aspects, fam)
    if fam == nil then -- families whose call count is within 1 of the expected calls
        local cands = {}
        for _, o in ipairs(order) do
            if math.abs(families[o.name].calls - aspects.expected_calls) <= 1 then cands[#cands + 1] = o.name end
        end
        fam = rng:choice(cands)
    end
    local st, add_flight = new_state(rng)
    local t = families[fam].sample(rng, aspects, st, add_flight)
    -- ask for the omitted facts first (reveal checks), in a fixed order
    local ask = {}
    for k in spairs(t.omitted) do
        ask[#ask + 1] = k
        table.insert(t.checks, 1, {name = "asked for the " .. string.gsub(k, "_", " "), fn = "revealed", args = {key = k}})
    end
    local facts = {}
    for k in spairs(t.omitted) do facts[k] = t.facts[k] end -- the user knows what the query left out
    local sys = {
        [0] = "You are an airline customer service agent. Verify reservations with get_reservation before changing them, " ..
              "always pick the cheapest flight that fits, ask the customer for any missing detail, and confirm what you did.",
        [1] = "You are an airline customer service agent. Ask the customer for missing details.",
        [2] = "You are a helpful assistant.",
    }
    return {family = fam, query = t.query, facts = facts, fact_phrases = t.fact_phrases, state = st,
            tools = t.tools, checks = t.checks, system = sys[aspects.system_prompt], gold = t.gold, ask = ask}
end

-- ---- oracle ----

local function oracle(task)
    local g, st, steps = task.gold, task.state, {}
    if #task.ask > 0 then steps[#steps + 1] = {ask = task.ask} end
    local fam = task.family
    if fam == "book_flight" then
        local u = st.users[g.user_id]
        local card
        for _, p in ipairs(u.payment_methods) do if p.type == "credit_card" then card = p.id end end
        steps[#steps + 1] = {call = "get_user", args = {user_id = g.user_id}}
        steps[#steps + 1] = {call = "search_flights", args = {origin = g.origin, destination = g.destination, date = g.date}}
        local best = matching_flights(st, g.origin, g.destination, g.date)[1]
        steps[#steps + 1] = {call = "book_flight", args = {user_id = g.user_id, flight_id = best.flight_id,
                                                           passengers = g.passengers, payment_id = card}}
        steps[#steps + 1] = {say = "You are booked on " .. best.flight_id .. " on " .. g.date .. "."}
    elseif fam == "cancel_reservation" then
        steps[#steps + 1] = {call = "get_reservation", args = {reservation_id = g.reservation_id}}
        steps[#steps + 1] = {call = "cancel_reservation", args = {reservation_id = g.reservation_id, reason = g.reason}}
        steps[#steps + 1] = {say = "Reservation " .. g.reservation_id .. " is cancelled and refunded."}
    elseif fam == "change_flight" then
        steps[#steps + 1] = {call = "get_reservation", args = {reservation_id = g.reservation_id}}
        steps[#steps + 1] = {call = "search_flights", args = {origin = g.origin, destination = g.destination, date = g.date}}
        steps[#steps + 1] = {call = "change_flight", args = {reservation_id = g.reservation_id, flight_id = g.flight_id}}
        steps[#steps + 1] = {say = "Your reservation is now on " .. g.flight_id .. " on " .. g.date .. "."}
    elseif fam == "add_baggage" then
        steps[#steps + 1] = {call = "get_reservation", args = {reservation_id = g.reservation_id}}
        steps[#steps + 1] = {call = "add_baggage", args = {reservation_id = g.reservation_id, bags = g.bags}}
        steps[#steps + 1] = {say = "Added " .. g.bags .. " bags to " .. g.reservation_id .. "."}
    elseif fam == "update_contact" then
        steps[#steps + 1] = {call = "get_user", args = {user_id = g.user_id}}
        steps[#steps + 1] = {call = "update_contact", args = {user_id = g.user_id, email = g.email}}
        steps[#steps + 1] = {say = "Your email is now " .. g.email .. "."}
    elseif fam == "flight_status" then
        steps[#steps + 1] = {call = "get_reservation", args = {reservation_id = g.reservation_id}}
        steps[#steps + 1] = {call = "flight_status", args = {flight_id = g.flight_id}}
        steps[#steps + 1] = {say = "Your flight " .. g.flight_id .. " is " .. g.status .. "."}
    end
    return steps
end

return {
    name = "airline",
    description = "Airline customer service: bookings, cancellations, flight changes, baggage, profiles and flight status.",
    tools = tools,
    families = order,
    checks = checks,
    fact_phrases = {user_id = {"customer id", "user id"}, reservation_id = {"reservation id", "reservation number"},
                    date = {"travel date", "date"}, new_date = {"new date", "date"},
                    passengers = {"number of passengers", "passengers"}, reason = {"reason"}},
    sample_task = sample_task,
    oracle = oracle,
}
