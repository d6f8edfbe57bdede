-- calendar: a work-calendar assistant for one user ("the owner") over one work week. State: people
-- (with their busy blocks), meeting rooms (with bookings), the owner's events. Times are "HH:MM"
-- strings, dates "YYYY-MM-DD". Contract: docs/environments.md.

---------------------------------------------------------------- helpers
local function ok(data) return {success = true, data = data} end
local function fail(msg) return {success = false, error = msg} end
local function persona_wrap(aspects, text)
  local p = aspects.persona or 0
  if p == 0 then return text end
  if p == 1 then return "Hi! " .. text .. " Thank you." end
  return "hey, sorry, i'm new to this calendar thing... " .. text .. " hope that makes sense"
end
local function omitted_set(aspects, cands)
  local n = math.min(aspects.omit or 0, #cands)
  local s = {}
  for i = 1, n do s[cands[i]] = true end
  return s
end
local function hm(m) return string.format("%02d:%02d", m // 60, m % 60) end
local function parse_hm(s)
  local h, m = s:match("^(%d%d?):(%d%d)$")
  if not h then return nil end
  h, m = tonumber(h), tonumber(m)
  if h > 23 or m > 59 then return nil end
  return h * 60 + m
end

local DAYS = {{"2025-06-02", "Monday"}, {"2025-06-03", "Tuesday"}, {"2025-06-04", "Wednesday"},
              {"2025-06-05", "Thursday"}, {"2025-06-06", "Friday"}}
local DAY_NAME = {}
for _, d in ipairs(DAYS) do DAY_NAME[d[1]] = d[2] end
local DAY_START, DAY_END = 9 * 60, 17 * 60
local function day_text(date) return DAY_NAME[date] .. " " .. date end

local FIRST = {"Dana", "Priya", "Marcus", "Elena", "Tomasz", "Aiko", "Bilal", "Greta", "Jonah", "Leila",
  "Nikolai", "Odette", "Ravi", "Sunniva", "Teodor", "Wren", "Xavier", "Yara"}
local LAST = {"Whitfield", "Castellano", "Oduya", "Brandt", "Kowal", "Hargreaves", "Iyer", "Lindgren",
  "Moreau", "Nwosu", "Pellegrini", "Quist", "Szabo", "Tanaka", "Valdez"}
local TEAMS = {"design", "finance", "platform", "sales", "research"}
local TITLES = {"Budget review", "Design sync", "Quarterly planning", "Vendor call", "Hiring debrief",
  "Roadmap walkthrough", "Incident retro", "Customer demo prep", "1:1 check-in", "Launch readiness",
  "Pricing workshop", "Data migration standup"}
local NEW_TITLES = {"Onboarding plan", "API contract chat", "Offsite logistics", "Metrics deep dive",
  "Partner intro", "Contract renewal"}
local ROOM_NAMES = {"Aurora", "Basalt", "Cobalt", "Dune", "Ember", "Fjord", "Granite"}

local function gen_world(rng)
  local st = {people = {}, rooms = {}, events = {}, next_event = 1}
  local firsts, lasts = rng:sample(FIRST, 8), rng:sample(LAST, 8)
  local plist = {}
  for i = 1, 8 do
    local pid = string.format("U%03d", rng:int(100, 999))
    while st.people[pid] do pid = string.format("U%03d", rng:int(100, 999)) end
    local busy = {}
    for _ = 1, rng:int(2, 5) do
      local d = rng:choice(DAYS)[1]
      local s = DAY_START + 30 * rng:int(0, 14)
      busy[#busy + 1] = {date = d, start = hm(s), ["end"] = hm(s + 30 * rng:int(1, 3))}
    end
    st.people[pid] = {id = pid, name = firsts[i] .. " " .. lasts[i],
                      email = (firsts[i] .. "." .. lasts[i]):lower() .. "@northwind.example",
                      team = rng:choice(TEAMS), busy = busy}
    plist[i] = pid
  end
  st.owner = plist[1]
  st.people[plist[1]].busy = {}
  local rnames = rng:sample(ROOM_NAMES, 5)
  local caps = {4, 6, 8, 12, 20}
  for i = 1, 5 do
    local rid = "R" .. (i * 100 + rng:int(1, 99))
    local bookings = {}
    for _ = 1, rng:int(1, 4) do
      local s = DAY_START + 30 * rng:int(0, 14)
      bookings[#bookings + 1] = {date = rng:choice(DAYS)[1], start = hm(s), ["end"] = hm(s + 60), event_id = "ext"}
    end
    st.rooms[rid] = {id = rid, name = rnames[i], capacity = caps[i], floor = rng:int(1, 6), bookings = bookings}
  end
  -- owner's events: 2 per day at distinct times, titles unique
  local titles = rng:sample(TITLES, 10)
  local k = 0
  for _, d in ipairs(DAYS) do
    local slots = rng:sample({0, 2, 4, 8, 10, 12}, 2)
    for _, sl in ipairs(slots) do
      k = k + 1
      local eid = string.format("EV%04d", rng:int(1000, 9999))
      while st.events[eid] do eid = string.format("EV%04d", rng:int(1000, 9999)) end
      local s = DAY_START + 30 * sl
      local att = rng:sample({table.unpack(plist, 2)}, rng:int(1, 3))
      table.sort(att)
      st.events[eid] = {id = eid, title = titles[k], date = d[1], start = hm(s), duration = 30 * rng:int(1, 2),
                        attendees = att, status = "confirmed", notified = false, reminder_minutes = 0}
    end
  end
  return st, plist
end

-- busy intervals {s, e} of a person on a date (the owner: own confirmed events)
local function busy_of(st, pid, date, skip_event)
  local r = {}
  for _, b in ipairs(st.people[pid].busy) do
    if b.date == date then r[#r + 1] = {parse_hm(b.start), parse_hm(b["end"])} end
  end
  for _, ev in spairs(st.events) do
    if ev.status == "confirmed" and ev.date == date and ev.id ~= skip_event then
      local inv = pid == st.owner
      for _, a in ipairs(ev.attendees) do if a == pid then inv = true end end
      if inv then local s = parse_hm(ev.start); r[#r + 1] = {s, s + ev.duration} end
    end
  end
  return r
end
local function overlaps(list, s, e)
  for _, iv in ipairs(list) do if s < iv[2] and iv[1] < e then return true end end
  return false
end
local function room_free(room, date, s, e, skip_event)
  for _, b in ipairs(room.bookings) do
    if b.date == date and b.event_id ~= skip_event and s < parse_hm(b["end"]) and parse_hm(b.start) < e then return false end
  end
  return true
end
local function free_slots(st, date, dur, pids)
  local all = {st.owner}
  for _, p in ipairs(pids) do all[#all + 1] = p end
  local r = {}
  for s = DAY_START, DAY_END - dur, 30 do
    local okk = true
    for _, p in ipairs(all) do if overlaps(busy_of(st, p, date), s, s + dur) then okk = false; break end end
    if okk then r[#r + 1] = hm(s) end
  end
  return r
end
local function check_date(d)
  if not DAY_NAME[d] then return "date must be a work day of this week, 2025-06-02 .. 2025-06-06 (got '" .. d .. "')" end
end
local function event_view(st, ev)
  local names = {}
  for _, a in ipairs(ev.attendees) do names[#names + 1] = {id = a, name = st.people[a].name} end
  local s = parse_hm(ev.start)
  return {id = ev.id, title = ev.title, date = ev.date, start = ev.start, ["end"] = hm(s + ev.duration),
          duration_minutes = ev.duration, attendees = names, room = ev.room, status = ev.status,
          reminder_minutes = ev.reminder_minutes}
end
local function get_ev(st, id)
  local ev = st.events[id]
  if not ev then return nil, fail("unknown event id '" .. id .. "'") end
  if ev.status ~= "confirmed" then return nil, fail("event " .. id .. " is cancelled") end
  return ev
end

---------------------------------------------------------------- tools
local tools = {
  {name = "search_people", description = "Find colleagues by (part of) their name or email; returns ids, names, emails and teams.",
   parameters = {type = "object", properties = {query = {type = "string", description = "Name or email fragment, e.g. 'whitfield'"}},
                 required = {"query"}},
   run = function(st, a)
     local q = a.query:lower()
     if #q < 2 then return fail("query must have at least 2 characters") end
     local r = {}
     for _, p in spairs(st.people) do
       if p.id ~= st.owner and (p.name:lower():find(q, 1, true) or p.email:find(q, 1, true)) then
         r[#r + 1] = {id = p.id, name = p.name, email = p.email, team = p.team}
       end
     end
     return ok(array(r))
   end},
  {name = "list_events", description = "List the user's confirmed events on a date, in time order.",
   parameters = {type = "object", properties = {date = {type = "string", description = "Date, YYYY-MM-DD"}}, required = {"date"}},
   run = function(st, a)
     local e = check_date(a.date)
     if e then return fail(e) end
     local r = {}
     for _, ev in spairs(st.events) do if ev.date == a.date and ev.status == "confirmed" then r[#r + 1] = event_view(st, ev) end end
     table.sort(r, function(x, y) return x.start < y.start end)
     return ok(array(r))
   end},
  {name = "get_event", description = "Get one event by id.",
   parameters = {type = "object", properties = {event_id = {type = "string", description = "Event id, e.g. EV1234"}}, required = {"event_id"}},
   run = function(st, a)
     local ev = st.events[a.event_id]
     if not ev then return fail("unknown event id '" .. a.event_id .. "'") end
     return ok(event_view(st, ev))
   end},
  {name = "find_free_slots", description = "Start times (every 30 minutes, 09:00-17:00) on a date when the user and all the given people are free for the whole duration.",
   parameters = {type = "object", properties = {
     date = {type = "string", description = "Date, YYYY-MM-DD"},
     duration_minutes = {type = "integer", description = "Length of the meeting", minimum = 15, maximum = 240},
     person_ids = {type = "array", items = {type = "string", description = "Person id"}, description = "Ids of the other participants"}},
     required = {"date", "duration_minutes", "person_ids"}},
   run = function(st, a)
     local e = check_date(a.date)
     if e then return fail(e) end
     for _, p in ipairs(a.person_ids) do if not st.people[p] then return fail("unknown person id '" .. p .. "'") end end
     return ok({date = a.date, slots = array(free_slots(st, a.date, a.duration_minutes, a.person_ids))})
   end},
  {name = "create_event", description = "Create an event on the user's calendar and invite people. Fails when the user or an invitee is busy then.",
   parameters = {type = "object", properties = {
     title = {type = "string", description = "Event title"},
     date = {type = "string", description = "Date, YYYY-MM-DD"},
     start_time = {type = "string", description = "Start, HH:MM (24 h)"},
     duration_minutes = {type = "integer", description = "Length in minutes", minimum = 15, maximum = 240},
     attendee_ids = {type = "array", items = {type = "string", description = "Person id"}, description = "Invitees"}},
     required = {"title", "date", "start_time", "duration_minutes", "attendee_ids"}},
   run = function(st, a)
     local e = check_date(a.date)
     if e then return fail(e) end
     local s = parse_hm(a.start_time)
     if not s then return fail("start_time must be HH:MM") end
     if s < DAY_START or s + a.duration_minutes > DAY_END then return fail("events must lie within 09:00-17:00") end
     if #a.title == 0 then return fail("title must not be empty") end
     local all = {st.owner}
     for _, p in ipairs(a.attendee_ids) do
       if not st.people[p] then return fail("unknown person id '" .. p .. "'") end
       if p == st.owner then return fail("the user is always on their own events; do not invite them") end
       all[#all + 1] = p
     end
     for _, p in ipairs(all) do
       if overlaps(busy_of(st, p, a.date), s, s + a.duration_minutes) then return fail(st.people[p].name .. " is busy at that time") end
     end
     local eid = string.format("EV9%03d", st.next_event)
     st.next_event = st.next_event + 1
     local att = deep_copy(a.attendee_ids)
     table.sort(att)
     st.events[eid] = {id = eid, title = a.title, date = a.date, start = hm(s), duration = a.duration_minutes,
                       attendees = att, status = "confirmed", notified = false, reminder_minutes = 0}
     return ok(event_view(st, st.events[eid]))
   end},
  {name = "reschedule_event", description = "Move an event to another date and start time (same duration). Fails when the user is busy then or its room is taken.",
   parameters = {type = "object", properties = {
     event_id = {type = "string", description = "Event id"},
     date = {type = "string", description = "New date, YYYY-MM-DD"},
     start_time = {type = "string", description = "New start, HH:MM (24 h)"}},
     required = {"event_id", "date", "start_time"}},
   run = function(st, a)
     local ev, err = get_ev(st, a.event_id)
     if not ev then return err end
     local e = check_date(a.date)
     if e then return fail(e) end
     local s = parse_hm(a.start_time)
     if not s then return fail("start_time must be HH:MM") end
     if s < DAY_START or s + ev.duration > DAY_END then return fail("events must lie within 09:00-17:00") end
     if overlaps(busy_of(st, st.owner, a.date, ev.id), s, s + ev.duration) then return fail("the user is busy at that time") end
     if ev.room then
       local room = st.rooms[ev.room]
       if not room_free(room, a.date, s, s + ev.duration, ev.id) then return fail("room " .. room.name .. " is taken at that time") end
       for _, b in ipairs(room.bookings) do
         if b.event_id == ev.id then b.date, b.start, b["end"] = a.date, hm(s), hm(s + ev.duration) end
       end
     end
     ev.date, ev.start = a.date, hm(s)
     return ok(event_view(st, ev))
   end},
  {name = "cancel_event", description = "Cancel an event, optionally sending a cancellation notice to its attendees.",
   parameters = {type = "object", properties = {
     event_id = {type = "string", description = "Event id"},
     notify_attendees = {type = "boolean", description = "Send a cancellation notice to the attendees"}},
     required = {"event_id", "notify_attendees"}},
   run = function(st, a)
     local ev, err = get_ev(st, a.event_id)
     if not ev then return err end
     ev.status = "cancelled"
     ev.notified = a.notify_attendees
     if ev.room then
       local room, keep = st.rooms[ev.room], {}
       for _, b in ipairs(room.bookings) do if b.event_id ~= ev.id then keep[#keep + 1] = b end end
       room.bookings = keep
     end
     return ok({event_id = ev.id, status = ev.status, notified = ev.notified})
   end},
  {name = "add_attendee", description = "Invite one more person to an event.",
   parameters = {type = "object", properties = {
     event_id = {type = "string", description = "Event id"}, person_id = {type = "string", description = "Person id"}},
     required = {"event_id", "person_id"}},
   run = function(st, a)
     local ev, err = get_ev(st, a.event_id)
     if not ev then return err end
     if not st.people[a.person_id] or a.person_id == st.owner then return fail("unknown person id '" .. a.person_id .. "'") end
     for _, p in ipairs(ev.attendees) do if p == a.person_id then return fail("already invited") end end
     ev.attendees[#ev.attendees + 1] = a.person_id
     table.sort(ev.attendees)
     return ok(event_view(st, ev))
   end},
  {name = "remove_attendee", description = "Remove a person from an event's invitees.",
   parameters = {type = "object", properties = {
     event_id = {type = "string", description = "Event id"}, person_id = {type = "string", description = "Person id"}},
     required = {"event_id", "person_id"}},
   run = function(st, a)
     local ev, err = get_ev(st, a.event_id)
     if not ev then return err end
     local keep, found = {}, false
     for _, p in ipairs(ev.attendees) do if p == a.person_id then found = true else keep[#keep + 1] = p end end
     if not found then return fail("that person is not invited to " .. ev.id) end
     ev.attendees = keep
     return ok(event_view(st, ev))
   end},
  {name = "list_rooms", description = "Meeting rooms free for a whole time range with at least a given capacity.",
   parameters = {type = "object", properties = {
     date = {type = "string", description = "Date, YYYY-MM-DD"},
     start_time = {type = "string", description = "Start, HH:MM"},
     duration_minutes = {type = "integer", description = "Length in minutes", minimum = 15, maximum = 480},
     min_capacity = {type = "integer", description = "Seats needed", minimum = 1, maximum = 50}},
     required = {"date", "start_time", "duration_minutes"}},
   run = function(st, a)
     local e = check_date(a.date)
     if e then return fail(e) end
     local s = parse_hm(a.start_time)
     if not s then return fail("start_time must be HH:MM") end
     local r = {}
     for _, room in spairs(st.rooms) do
       if room.capacity >= (a.min_capacity or 1) and room_free(room, a.date, s, s + a.duration_minutes) then
         r[#r + 1] = {id = room.id, name = room.name, capacity = room.capacity, floor = room.floor}
       end
     end
     table.sort(r, function(x, y) return x.capacity < y.capacity or (x.capacity == y.capacity and x.id < y.id) end)
     return ok(array(r))
   end},
  {name = "book_room", description = "Book a meeting room for an event (the room must be free and seat the user plus all attendees).",
   parameters = {type = "object", properties = {
     event_id = {type = "string", description = "Event id"}, room_id = {type = "string", description = "Room id"}},
     required = {"event_id", "room_id"}},
   run = function(st, a)
     local ev, err = get_ev(st, a.event_id)
     if not ev then return err end
     local room = st.rooms[a.room_id]
     if not room then return fail("unknown room id '" .. a.room_id .. "'") end
     if ev.room then return fail("event already has room " .. ev.room) end
     if room.capacity < #ev.attendees + 1 then return fail("room " .. room.name .. " seats " .. room.capacity .. ", the event has " .. (#ev.attendees + 1) .. " people") end
     local s = parse_hm(ev.start)
     if not room_free(room, ev.date, s, s + ev.duration) then return fail("room " .. room.name .. " is taken at that time") end
     room.bookings[#room.bookings + 1] = {date = ev.date, start = ev.start, ["end"] = hm(s + ev.duration), event_id = ev.id}
     ev.room = room.id
     return ok(event_view(st, ev))
   end},
  {name = "set_reminder", description = "Set the reminder of an event (minutes before its start).",
   parameters = {type = "object", properties = {
     event_id = {type = "string", description = "Event id"},
     minutes_before = {type = "integer", description = "Minutes before the start", enum = {5, 10, 15, 30, 60}}},
     required = {"event_id", "minutes_before"}},
   run = function(st, a)
     local ev, err = get_ev(st, a.event_id)
     if not ev then return err end
     ev.reminder_minutes = a.minutes_before
     return ok({event_id = ev.id, reminder_minutes = ev.reminder_minutes})
   end},
}

---------------------------------------------------------------- checks
local WRITE_TOOLS = {create_event = true, reschedule_event = true, cancel_event = true, add_attendee = true,
                     remove_attendee = true, book_room = true, set_reminder = true}
local COLLS = {"people", "rooms", "events"}
local checks = {
  -- entries changed only among a.allow ("coll/id" or "coll/*"), at least one of them changed, and
  -- at most a.new new entries appeared (default 0)
  only_changed = function(state, a, ctx)
    local allow = {}
    for _, k in ipairs(a.allow) do allow[k] = true end
    local init, progressed, n_new = ctx.task.state, false, 0
    for _, coll in ipairs(COLLS) do
      local i0, f = init[coll] or {}, state[coll] or {}
      for id, v in pairs(f) do
        if i0[id] == nil then
          n_new = n_new + 1
          progressed = true
        elseif not deep_equal(v, i0[id]) then
          if not (allow[coll .. "/" .. id] or allow[coll .. "/*"]) then return false end
          progressed = true
        end
      end
      for id in pairs(i0) do if f[id] == nil then return false end end
    end
    return progressed and n_new <= (a.new or 0)
  end,
  -- a confirmed new event with this title (case-insensitive), date, start, duration and attendees
  event_created = function(state, a, ctx)
    for id, ev in pairs(state.events or {}) do
      if ctx.task.state.events[id] == nil and ev.status == "confirmed" and ev.title:lower() == a.title:lower()
         and ev.date == a.date and ev.start == a.start and ev.duration == a.duration and deep_equal(ev.attendees, a.attendees) then
        return true
      end
    end
    return false
  end,
  -- event a.event has a room seating at least a.min_capacity
  has_room = function(state, a)
    local ev = state.events[a.event]
    if not ev or not ev.room then return false end
    local room = state.rooms[ev.room]
    return room ~= nil and room.capacity >= a.min_capacity
  end,
  -- event a.event invites a.person
  has_attendee = function(state, a)
    local ev = state.events[a.event]
    if not ev then return false end
    for _, p in ipairs(ev.attendees) do if p == a.person then return true end end
    return false
  end,
}

---------------------------------------------------------------- tasks
local SYSTEM = {
  "You are a calendar assistant for one employee. The work week is Monday 2025-06-02 to Friday 2025-06-06, " ..
  "meetings lie within 09:00-17:00. Policy: find events with list_events before changing them; find people with " ..
  "search_people to get their ids; when asked for the first free time use find_free_slots and take the earliest " ..
  "slot; ask the user for anything you need instead of guessing; change nothing the user did not ask for.",
  "You are a calendar assistant. The week is 2025-06-02 (Monday) to 2025-06-06 (Friday). Look things up before " ..
  "changing them and ask for missing details.",
  "You are a helpful assistant with access to tools. The current week is 2025-06-02 to 2025-06-06.",
}
local families = {
  {name = "schedule_meeting", description = "find a colleague, the first common free slot, and create the meeting", calls = 3},
  {name = "reschedule_event", description = "move an event to a new day and time (optionally set a reminder)", calls = 2},
  {name = "cancel_event", description = "cancel an event, notifying attendees or not", calls = 2},
  {name = "add_attendee", description = "invite a colleague to an existing event", calls = 3},
  {name = "book_room", description = "book a free room large enough for an event", calls = 3},
  {name = "remove_attendee", description = "take a colleague off an event's invite list", calls = 2},
}
local fact_phrases = {
  meeting_day = {"meeting day", "which day", "what day"},
  new_time = {"new time", "when"},
  duration = {"how long", "duration"},
  colleague = {"colleague", "who should"},
  event_title = {"event title", "which meeting", "meeting title"},
  notify = {"notify", "cancellation notice"},
  headcount = {"headcount", "how many people"},
}

local function pick_event(rng, st, pred)
  local list = {}
  for _, ev in spairs(st.events) do if not pred or pred(ev) then list[#list + 1] = ev end end
  return rng:choice(list)
end

local builders = {}
builders.schedule_meeting = function(rng, aspects, st, plist)
  -- a colleague and a day with at least one common free slot
  local pid, date, dur, slots
  repeat
    pid = plist[rng:int(2, #plist)]
    date = rng:choice(DAYS)[1]
    dur = 30 * rng:int(1, 3)
    slots = free_slots(st, date, dur, {pid})
  until #slots > 0
  local p = st.people[pid]
  local title = rng:choice(NEW_TITLES)
  local om = omitted_set(aspects, {"duration", "meeting_day", "colleague"})
  local facts = {}
  local who = om.colleague and "a colleague" or p.name
  local when = om.meeting_day and "this week" or ("on " .. day_text(date))
  local len = om.duration and "a meeting" or (dur .. "-minute meeting")
  if not om.duration then len = "a " .. len end
  local q = "Please set up " .. len .. " called '" .. title .. "' with " .. who .. " " .. when .. ", at the first time we're both free."
  if om.duration then facts.duration = dur .. " minutes" end
  if om.meeting_day then facts.meeting_day = day_text(date) end
  if om.colleague then facts.colleague = p.name end
  local checks = {
    {name = "looked up " .. p.name, fn = "called", args = {name = "search_people"}},
    {name = "asked for free slots on " .. date, fn = "called", args = {name = "find_free_slots", with = {date = date, person_ids = {pid}}}},
    {name = "'" .. title .. "' created " .. date .. " " .. slots[1], fn = "event_created",
     args = {title = title, date = date, start = slots[1], duration = dur, attendees = {pid}}},
    {name = "nothing else changed", fn = "only_changed", args = {allow = {}, new = 1}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"search_people", "find_free_slots", "create_event"},
          solution = {pid = pid, name = p.name, date = date, dur = dur, title = title, start = slots[1]}}
end

builders.reschedule_event = function(rng, aspects, st)
  local ev = pick_event(rng, st, function(e) return not e.room end)
  local with_rem = (aspects.expected_calls or 1) >= 3
  local nd, ns
  repeat
    nd = rng:choice(DAYS)[1]
    ns = DAY_START + 30 * rng:int(0, 14)
  until not (nd == ev.date and hm(ns) == ev.start) and ns + ev.duration <= DAY_END
        and not overlaps(busy_of(st, st.owner, nd, ev.id), ns, ns + ev.duration)
  local rem = rng:choice({5, 10, 15, 30, 60})
  local om = omitted_set(aspects, {"new_time", "meeting_day"})
  local facts = {}
  local what = "my '" .. ev.title .. "'" .. (om.meeting_day and "" or (" on " .. day_text(ev.date)))
  local q = "Please move " .. what .. (om.new_time and " to another time." or (" to " .. day_text(nd) .. " at " .. hm(ns) .. "."))
  if with_rem then q = q .. " Also set a reminder " .. rem .. " minutes before it." end
  if om.new_time then facts.new_time = day_text(nd) .. " at " .. hm(ns) end
  if om.meeting_day then facts.meeting_day = day_text(ev.date) end
  local checks = {
    {name = "listed events of " .. ev.date, fn = "called", args = {name = "list_events", with = {date = ev.date}}},
  }
  if nd ~= ev.date then checks[#checks + 1] = {name = ev.id .. " is on " .. nd, fn = "equals", args = {path = {"events", ev.id, "date"}, value = nd}} end
  if hm(ns) ~= ev.start then checks[#checks + 1] = {name = ev.id .. " starts at " .. hm(ns), fn = "equals", args = {path = {"events", ev.id, "start"}, value = hm(ns)}} end
  if with_rem then checks[#checks + 1] = {name = "reminder " .. rem .. " min", fn = "equals", args = {path = {"events", ev.id, "reminder_minutes"}, value = rem}} end
  checks[#checks + 1] = {name = "nothing else changed", fn = "only_changed", args = {allow = {"events/" .. ev.id}}}
  local tl = {"list_events", "reschedule_event"}
  if with_rem then tl[3] = "set_reminder" end
  return {query = q, facts = facts, checks = checks, tools = tl,
          solution = {eid = ev.id, date = ev.date, nd = nd, ns = hm(ns), rem = with_rem and rem or nil}}
end

builders.cancel_event = function(rng, aspects, st)
  local ev = pick_event(rng, st)
  local notify = rng:int(0, 2) > 0
  local om = omitted_set(aspects, {"notify", "meeting_day", "event_title"})
  local facts = {}
  local what = om.event_title and "one of my meetings" or ("the '" .. ev.title .. "'")
  local q = "Cancel " .. what .. (om.meeting_day and "" or (" on " .. day_text(ev.date))) .. "."
  if not om.notify then q = q .. (notify and " Send the attendees a cancellation notice." or " Don't send the attendees any notice.") end
  if om.notify then facts.notify = notify and "yes, send them a notice" or "no, send no notice" end
  if om.meeting_day then facts.meeting_day = day_text(ev.date) end
  if om.event_title then facts.event_title = ev.title end
  local checks = {
    {name = "listed events of " .. ev.date, fn = "called", args = {name = "list_events", with = {date = ev.date}}},
    {name = ev.id .. " cancelled", fn = "equals", args = {path = {"events", ev.id, "status"}, value = "cancelled"}},
    {name = "attendees " .. (notify and "" or "not ") .. "notified, nothing else changed", fn = "only_changed_notify",
     args = {event = ev.id, notified = notify}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"list_events", "cancel_event"},
          solution = {eid = ev.id, date = ev.date, notify = notify}}
end

builders.add_attendee = function(rng, aspects, st, plist)
  local ev = pick_event(rng, st, function(e) return #e.attendees < 5 end)
  local cands = {}
  for i = 2, #plist do
    local inv = false
    for _, a in ipairs(ev.attendees) do if a == plist[i] then inv = true end end
    if not inv then cands[#cands + 1] = plist[i] end
  end
  local pid = rng:choice(cands)
  local p = st.people[pid]
  local om = omitted_set(aspects, {"colleague", "meeting_day"})
  local facts = {}
  local q = "Add " .. (om.colleague and "someone" or p.name) .. " to my '" .. ev.title .. "'" ..
            (om.meeting_day and "" or (" on " .. day_text(ev.date))) .. "."
  if om.colleague then facts.colleague = p.name end
  if om.meeting_day then facts.meeting_day = day_text(ev.date) end
  local checks = {
    {name = "listed events of " .. ev.date, fn = "called", args = {name = "list_events", with = {date = ev.date}}},
    {name = p.name .. " invited to " .. ev.id, fn = "has_attendee", args = {event = ev.id, person = pid}},
    {name = "nothing else changed", fn = "only_changed", args = {allow = {"events/" .. ev.id}}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"list_events", "search_people", "add_attendee"},
          solution = {eid = ev.id, date = ev.date, pid = pid, name = p.name}}
end

builders.book_room = function(rng, aspects, st)
  -- an event with a free room seating the headcount
  local ev, head, rooms
  repeat
    ev = pick_event(rng, st)
    head = #ev.attendees + 1 + rng:int(0, 6)
    local s = parse_hm(ev.start)
    rooms = {}
    for _, room in spairs(st.rooms) do
      if room.capacity >= head and room_free(room, ev.date, s, s + ev.duration) then rooms[#rooms + 1] = room end
    end
  until #rooms > 0
  table.sort(rooms, function(x, y) return x.capacity < y.capacity or (x.capacity == y.capacity and x.id < y.id) end)
  local om = omitted_set(aspects, {"headcount", "meeting_day"})
  local facts = {}
  local q = "Book a meeting room for my '" .. ev.title .. "'" .. (om.meeting_day and "" or (" on " .. day_text(ev.date))) ..
            (om.headcount and "." or (", we'll be " .. head .. " people in total."))
  if om.headcount then facts.headcount = head .. " people" end
  if om.meeting_day then facts.meeting_day = day_text(ev.date) end
  local checks = {
    {name = "listed events of " .. ev.date, fn = "called", args = {name = "list_events", with = {date = ev.date}}},
    {name = ev.id .. " has a room for " .. head, fn = "has_room", args = {event = ev.id, min_capacity = head}},
    {name = "nothing else changed", fn = "only_changed", args = {allow = {"events/" .. ev.id, "rooms/*"}}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"list_events", "list_rooms", "book_room"},
          solution = {eid = ev.id, date = ev.date, start = ev.start, dur = ev.duration, head = head, room = rooms[1].id}}
end

builders.remove_attendee = function(rng, aspects, st)
  local ev = pick_event(rng, st, function(e) return #e.attendees >= 2 end)
  local pid = rng:choice(ev.attendees)
  local p = st.people[pid]
  local om = omitted_set(aspects, {"colleague", "meeting_day"})
  local facts = {}
  local q = (om.colleague and "Someone" or p.name) .. " no longer needs to be in my '" .. ev.title .. "'" ..
            (om.meeting_day and "" or (" on " .. day_text(ev.date))) .. ". Please take them off the invite."
  if om.colleague then facts.colleague = p.name end
  if om.meeting_day then facts.meeting_day = day_text(ev.date) end
  local keep = {}
  for _, x in ipairs(ev.attendees) do if x ~= pid then keep[#keep + 1] = x end end
  local checks = {
    {name = "listed events of " .. ev.date, fn = "called", args = {name = "list_events", with = {date = ev.date}}},
    {name = p.name .. " removed from " .. ev.id, fn = "equals", args = {path = {"events", ev.id, "attendees"}, value = keep}},
    {name = "nothing else changed", fn = "only_changed", args = {allow = {"events/" .. ev.id}}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"list_events", "remove_attendee"},
          solution = {eid = ev.id, date = ev.date, pid = pid}}
end

-- cancel_event's last check: only the event changed (and its room's booking), notified as asked
checks.only_changed_notify = function(state, a, ctx)
  local ev = state.events[a.event]
  if not ev or ev.notified ~= a.notified or ev.status ~= "cancelled" then return false end
  local room = ctx.task.state.events[a.event].room
  return checks.only_changed(state, {allow = {"events/" .. a.event, room and ("rooms/" .. room) or "events/" .. a.event}}, ctx)
end

local function sample_task(rng, aspects, family)
  return family_task(rng, aspects, family, {families = families, builders = builders, gen_world = gen_world,
                                            persona_wrap = persona_wrap, system = SYSTEM,
                                            fact_check = "asked the user: "})
end

---------------------------------------------------------------- oracle
local oracles = {}
oracles.schedule_meeting = function(task, s, steps)
  steps[#steps + 1] = {call = "search_people", args = {query = s.name}}
  steps[#steps + 1] = {call = "find_free_slots", args = {date = s.date, duration_minutes = s.dur, person_ids = {s.pid}}}
  steps[#steps + 1] = {call = "create_event", args = {title = s.title, date = s.date, start_time = s.start, duration_minutes = s.dur, attendee_ids = {s.pid}}}
  steps[#steps + 1] = {say = "Booked: " .. s.title .. " on " .. day_text(s.date) .. " at " .. s.start .. "."}
end
oracles.reschedule_event = function(task, s, steps)
  steps[#steps + 1] = {call = "list_events", args = {date = s.date}}
  steps[#steps + 1] = {call = "reschedule_event", args = {event_id = s.eid, date = s.nd, start_time = s.ns}}
  if s.rem then steps[#steps + 1] = {call = "set_reminder", args = {event_id = s.eid, minutes_before = s.rem}} end
  steps[#steps + 1] = {say = "Moved to " .. day_text(s.nd) .. " at " .. s.ns .. "."}
end
oracles.cancel_event = function(task, s, steps)
  steps[#steps + 1] = {call = "list_events", args = {date = s.date}}
  steps[#steps + 1] = {call = "cancel_event", args = {event_id = s.eid, notify_attendees = s.notify}}
  steps[#steps + 1] = {say = "It is cancelled."}
end
oracles.add_attendee = function(task, s, steps)
  steps[#steps + 1] = {call = "list_events", args = {date = s.date}}
  steps[#steps + 1] = {call = "search_people", args = {query = s.name}}
  steps[#steps + 1] = {call = "add_attendee", args = {event_id = s.eid, person_id = s.pid}}
  steps[#steps + 1] = {say = s.name .. " is invited now."}
end
oracles.book_room = function(task, s, steps)
  steps[#steps + 1] = {call = "list_events", args = {date = s.date}}
  steps[#steps + 1] = {call = "list_rooms", args = {date = s.date, start_time = s.start, duration_minutes = s.dur, min_capacity = s.head}}
  steps[#steps + 1] = {call = "book_room", args = {event_id = s.eid, room_id = s.room}}
  steps[#steps + 1] = {say = "Room " .. task.state.rooms[s.room].name .. " is booked."}
end
oracles.remove_attendee = function(task, s, steps)
  steps[#steps + 1] = {call = "list_events", args = {date = s.date}}
  steps[#steps + 1] = {call = "remove_attendee", args = {event_id = s.eid, person_id = s.pid}}
  steps[#steps + 1] = {say = "Done, they are off the invite."}
end

local function oracle(task) return family_oracle(oracles, task) end

return {
  name = "calendar",
  description = "Work calendar assistant: find colleagues and free slots, create, move and cancel events, manage invitees, rooms and reminders.",
  tools = tools,
  families = families,
  checks = checks,
  fact_phrases = fact_phrases,
  sample_task = sample_task,
  oracle = oracle,
}
