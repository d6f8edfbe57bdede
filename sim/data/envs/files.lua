-- files: a cloud-drive assistant. State: nodes keyed by absolute path ("/Documents/a.pdf"; folders
-- and files with size, modified date, tags, shares), and a trash (deleted items by trash id).
-- Contract: docs/environments.md.

---------------------------------------------------------------- helpers
local function ok(data) return {success = true, data = data} end
local function fail(msg) return {success = false, error = msg} end
local function persona_wrap(aspects, text)
  local p = aspects.persona or 0
  if p == 0 then return text end
  if p == 1 then return "Hi, could you help? " .. text end
  return "um hello, i'm not very good with computers and this drive thing confuses me. " .. text .. " sorry if that's unclear"
end
local function omitted_set(aspects, cands)
  local n = math.min(aspects.omit or 0, #cands)
  local s = {}
  for i = 1, n do s[cands[i]] = true end
  return s
end
local function parent_of(p) return p:match("^(.*)/[^/]+$") end
local function base_of(p) return p:match("([^/]+)$") end
local function join(dir, name) return (dir == "/" and "" or dir) .. "/" .. name end
local function ext_of(p) return (p:match("%.([%w]+)$") or ""):lower() end
local function norm(p)
  if type(p) ~= "string" or p:sub(1, 1) ~= "/" then return nil end
  if #p > 1 and p:sub(-1) == "/" then p = p:sub(1, -2) end
  if p:find("//", 1, true) or p:find("/%.%.?/") or p:match("/%.%.?$") then return nil end
  return p
end

local FOLDERS = {"/Documents", "/Documents/Reports", "/Documents/Invoices", "/Downloads", "/Drafts", "/Photos", "/Backups"}
local STEMS = {"budget", "q3 forecast", "team offsite", "lease agreement", "tax summary", "meeting notes",
  "product brief", "travel receipts", "client list", "roadmap", "board deck", "hiring plan", "insurance claim",
  "garden plan", "recipe collection", "workshop agenda", "vendor contract", "reading list"}
local EXTS = {"pdf", "docx", "xlsx", "csv", "txt", "pptx"}
local PHOTO = {"IMG_", "DSC_", "PXL_"}
local PEOPLE = {"alex.morgan", "bea.santos", "chidi.eze", "dora.klein", "emil.varga", "fatima.noor", "gus.holm"}
local DOMAINS = {"brightlake.io", "mapleworks.com", "orbitstudio.net"}
local ROLES = {"viewer", "commenter", "editor"}

local function gen_world(rng)
  local st = {nodes = {}, trash = {}, next_trash = 1}
  st.nodes["/"] = {path = "/", type = "folder"}
  for _, f in ipairs(FOLDERS) do st.nodes[f] = {path = f, type = "folder"} end
  local function add_file(dir, name)
    local p = join(dir, name)
    if st.nodes[p] then return nil end
    st.nodes[p] = {path = p, type = "file", size = rng:int(2, 9000) * 1024,
                   modified = string.format("2025-%02d-%02d", rng:int(1, 5), rng:int(1, 28)), tags = {}, shares = {}}
    return p
  end
  local stems = rng:sample(STEMS, 14)
  local dirs = {"/Documents", "/Documents/Reports", "/Documents/Invoices", "/Downloads", "/Downloads", "/Drafts", "/Drafts"}
  for i, s in ipairs(stems) do
    local dir = dirs[(i - 1) % #dirs + 1]
    add_file(dir, s:gsub(" ", "_") .. "." .. rng:choice(EXTS))
  end
  for _ = 1, 4 do add_file("/Photos", rng:choice(PHOTO) .. rng:int(1000, 9999) .. ".jpg") end
  -- extra downloads of one type so "move all X" has several
  local ext = rng:choice({"pdf", "csv", "docx"})
  for _, s in ipairs(rng:sample({"statement_may", "statement_april", "receipt_4471", "export_0612", "form_w9", "manual_v2"}, 3)) do
    add_file("/Downloads", s .. "." .. ext)
  end
  -- drafts: some old, some new
  for _, s in ipairs(rng:sample({"draft_intro", "draft_pitch", "draft_letter", "draft_essay", "draft_outline"}, 3)) do
    add_file("/Drafts", s .. ".docx")
  end
  -- two deleted files in the trash
  for _, s in ipairs(rng:sample({"family_photos.zip", "old_resume.pdf", "invoice_8831.pdf", "playlist.csv", "notes_march.txt"}, 2)) do
    local id = string.format("T%03d", st.next_trash)
    st.next_trash = st.next_trash + 1
    local orig = join(rng:choice({"/Documents", "/Downloads", "/Photos"}), s)
    st.trash[id] = {id = id, original_path = orig, deleted = string.format("2025-05-%02d", rng:int(1, 28)),
                    nodes = {{path = orig, type = "file", size = rng:int(2, 9000) * 1024, modified = "2025-04-02", tags = {}, shares = {}}}}
  end
  return st, ext
end

local function children(st, dir)
  local r = {}
  for p, n in spairs(st.nodes) do
    if p ~= "/" and parent_of(p) == (dir == "/" and "" or dir) then r[#r + 1] = n end
  end
  return r
end
local function subtree(st, root)
  local r = {}
  for p in spairs(st.nodes) do
    if p == root or p:sub(1, #root + 1) == root .. "/" then r[#r + 1] = p end
  end
  return r
end
local function view(n)
  return {path = n.path, name = base_of(n.path) or "/", type = n.type, size = n.size, modified = n.modified,
          tags = n.tags and array(deep_copy(n.tags)) or nil, shares = n.shares and array(deep_copy(n.shares)) or nil}
end
local function get_node(st, path)
  local p = norm(path)
  if not p then return nil, fail("path must be absolute, like /Documents/report.pdf (got '" .. path .. "')") end
  local n = st.nodes[p]
  if not n then return nil, fail("no such file or folder: " .. p) end
  return n
end
local function relocate(st, from, to)
  for _, p in ipairs(subtree(st, from)) do
    local n = st.nodes[p]
    st.nodes[p] = nil
    n.path = to .. p:sub(#from + 1)
    st.nodes[n.path] = n
  end
end

---------------------------------------------------------------- tools
local tools = {
  {name = "list_folder", description = "List the files and folders directly inside a folder.",
   parameters = {type = "object", properties = {path = {type = "string", description = "Absolute folder path, e.g. /Documents"}}, required = {"path"}},
   run = function(st, a)
     local n, err = get_node(st, a.path)
     if not n then return err end
     if n.type ~= "folder" then return fail(n.path .. " is a file, not a folder") end
     local r = {}
     for _, c in ipairs(children(st, n.path)) do r[#r + 1] = view(c) end
     return ok(array(r))
   end},
  {name = "search_files", description = "Find files anywhere in the drive whose name contains a text (case-insensitive), optionally of one extension.",
   parameters = {type = "object", properties = {
     name_contains = {type = "string", description = "Text the file name contains, e.g. 'budget'"},
     extension = {type = "string", description = "Only this extension, without the dot, e.g. pdf"}},
     required = {"name_contains"}},
   run = function(st, a)
     local q = a.name_contains:lower():gsub(" ", "_")
     local r = {}
     for p, n in spairs(st.nodes) do
       if n.type == "file" and base_of(p):lower():find(q, 1, true) and (not a.extension or ext_of(p) == a.extension:lower():gsub("^%.", "")) then
         r[#r + 1] = view(n)
       end
     end
     return ok(array(r))
   end},
  {name = "get_info", description = "Details of one file or folder: size, modified date, tags, shares.",
   parameters = {type = "object", properties = {path = {type = "string", description = "Absolute path"}}, required = {"path"}},
   run = function(st, a)
     local n, err = get_node(st, a.path)
     if not n then return err end
     return ok(view(n))
   end},
  {name = "create_folder", description = "Create a folder (its parent must exist).",
   parameters = {type = "object", properties = {path = {type = "string", description = "Absolute path of the new folder"}}, required = {"path"}},
   run = function(st, a)
     local p = norm(a.path)
     if not p or p == "/" then return fail("path must be absolute, like /Documents/Taxes") end
     if st.nodes[p] then return fail(p .. " already exists") end
     local par = parent_of(p)
     par = par == "" and "/" or par
     if not st.nodes[par] or st.nodes[par].type ~= "folder" then return fail("parent folder " .. par .. " does not exist") end
     st.nodes[p] = {path = p, type = "folder"}
     return ok(view(st.nodes[p]))
   end},
  {name = "move_item", description = "Move a file or folder (with its contents) into another folder, keeping its name.",
   parameters = {type = "object", properties = {
     path = {type = "string", description = "Absolute path of the item"},
     destination_folder = {type = "string", description = "Absolute path of the target folder"}},
     required = {"path", "destination_folder"}},
   run = function(st, a)
     local n, err = get_node(st, a.path)
     if not n then return err end
     if n.path == "/" then return fail("cannot move the root folder") end
     local d, err2 = get_node(st, a.destination_folder)
     if not d then return err2 end
     if d.type ~= "folder" then return fail(d.path .. " is not a folder") end
     if d.path == n.path or d.path:sub(1, #n.path + 1) == n.path .. "/" then return fail("cannot move a folder into itself") end
     local to = join(d.path, base_of(n.path))
     if st.nodes[to] then return fail(to .. " already exists") end
     relocate(st, n.path, to)
     return ok({path = to})
   end},
  {name = "rename_item", description = "Rename a file or folder in place.",
   parameters = {type = "object", properties = {
     path = {type = "string", description = "Absolute path of the item"},
     new_name = {type = "string", description = "New name (no slashes), with the extension for files"}},
     required = {"path", "new_name"}},
   run = function(st, a)
     local n, err = get_node(st, a.path)
     if not n then return err end
     if n.path == "/" then return fail("cannot rename the root folder") end
     if a.new_name == "" or a.new_name:find("/", 1, true) or a.new_name == "." or a.new_name == ".." then return fail("new_name must be a plain name without slashes") end
     local par = parent_of(n.path)
     local to = join(par == "" and "/" or par, a.new_name)
     if st.nodes[to] then return fail(to .. " already exists") end
     relocate(st, n.path, to)
     return ok({path = to})
   end},
  {name = "copy_file", description = "Copy a file into a folder (same name).",
   parameters = {type = "object", properties = {
     path = {type = "string", description = "Absolute path of the file"},
     destination_folder = {type = "string", description = "Absolute path of the target folder"}},
     required = {"path", "destination_folder"}},
   run = function(st, a)
     local n, err = get_node(st, a.path)
     if not n then return err end
     if n.type ~= "file" then return fail("only files can be copied") end
     local d, err2 = get_node(st, a.destination_folder)
     if not d then return err2 end
     if d.type ~= "folder" then return fail(d.path .. " is not a folder") end
     local to = join(d.path, base_of(n.path))
     if st.nodes[to] then return fail(to .. " already exists") end
     local c = deep_copy(n)
     c.path, c.shares = to, {}
     st.nodes[to] = c
     return ok(view(c))
   end},
  {name = "delete_item", description = "Move a file or folder (with its contents) to the trash.",
   parameters = {type = "object", properties = {path = {type = "string", description = "Absolute path"}}, required = {"path"}},
   run = function(st, a)
     local n, err = get_node(st, a.path)
     if not n then return err end
     if n.path == "/" then return fail("cannot delete the root folder") end
     local id = string.format("T%03d", st.next_trash)
     st.next_trash = st.next_trash + 1
     local saved = {}
     for _, p in ipairs(subtree(st, n.path)) do saved[#saved + 1] = st.nodes[p]; st.nodes[p] = nil end
     st.trash[id] = {id = id, original_path = n.path, deleted = "2025-06-02", nodes = saved}
     return ok({trash_id = id, original_path = n.path})
   end},
  {name = "list_trash", description = "List deleted items with their trash ids and original paths.",
   parameters = {type = "object", properties = {}, required = {}},
   run = function(st)
     local r = {}
     for _, t in spairs(st.trash) do r[#r + 1] = {trash_id = t.id, original_path = t.original_path, deleted = t.deleted} end
     return ok(array(r))
   end},
  {name = "restore_item", description = "Put a trashed item back at its original path (its folder must exist and the path be free).",
   parameters = {type = "object", properties = {trash_id = {type = "string", description = "Trash id, e.g. T001"}}, required = {"trash_id"}},
   run = function(st, a)
     local t = st.trash[a.trash_id]
     if not t then return fail("unknown trash id '" .. a.trash_id .. "'") end
     local par = parent_of(t.original_path)
     par = par == "" and "/" or par
     if not st.nodes[par] then return fail("folder " .. par .. " no longer exists") end
     if st.nodes[t.original_path] then return fail(t.original_path .. " is taken") end
     for _, n in ipairs(t.nodes) do st.nodes[n.path] = n end
     st.trash[a.trash_id] = nil
     return ok({path = t.original_path})
   end},
  {name = "share_item", description = "Give a person access to a file or folder (or change their role).",
   parameters = {type = "object", properties = {
     path = {type = "string", description = "Absolute path"},
     email = {type = "string", description = "The person's email address"},
     role = {type = "string", description = "Access level", enum = ROLES}},
     required = {"path", "email", "role"}},
   run = function(st, a)
     local n, err = get_node(st, a.path)
     if not n then return err end
     if n.path == "/" then return fail("the root folder cannot be shared") end
     if not a.email:match("^[%w%._%-]+@[%w%.%-]+%.%a+$") then return fail("'" .. a.email .. "' is not an email address") end
     n.shares = n.shares or {}
     local keep = {}
     for _, s in ipairs(n.shares) do if s.email ~= a.email:lower() then keep[#keep + 1] = s end end
     keep[#keep + 1] = {email = a.email:lower(), role = a.role}
     table.sort(keep, function(x, y) return x.email < y.email end)
     n.shares = keep
     return ok(view(n))
   end},
  {name = "add_tag", description = "Add a tag (a short label) to a file.",
   parameters = {type = "object", properties = {
     path = {type = "string", description = "Absolute path of the file"},
     tag = {type = "string", description = "Tag, e.g. 'tax-2024'"}},
     required = {"path", "tag"}},
   run = function(st, a)
     local n, err = get_node(st, a.path)
     if not n then return err end
     if n.type ~= "file" then return fail("only files can be tagged") end
     if a.tag == "" or #a.tag > 32 then return fail("tag must have 1 to 32 characters") end
     for _, t in ipairs(n.tags) do if t == a.tag then return fail("already tagged '" .. a.tag .. "'") end end
     n.tags[#n.tags + 1] = a.tag
     table.sort(n.tags)
     return ok(view(n))
   end},
}

---------------------------------------------------------------- checks
local WRITE_TOOLS = {create_folder = true, move_item = true, rename_item = true, copy_file = true, delete_item = true,
                     restore_item = true, share_item = true, add_tag = true}
local checks = {
  -- the drive's paths are exactly a.paths (nothing lost, nothing extra) and some write succeeded
  paths_are = function(state, a, ctx)
    local want, n = {}, 0
    for _, p in ipairs(a.paths) do want[p] = true; n = n + 1 end
    local m = 0
    for p in pairs(state.nodes) do
      if not want[p] then return false end
      m = m + 1
    end
    if m ~= n then return false end
    for _, c in ipairs(ctx.calls) do if c.success and WRITE_TOOLS[c.name] then return true end end
    return false
  end,
  -- nodes other than a.path (and the trash) are as they were, and a.path changed
  only_node_changed = function(state, a, ctx)
    local init = ctx.task.state
    if not deep_equal(init.trash, state.trash) then return false end
    for p, n in pairs(state.nodes) do
      if p ~= a.path and not deep_equal(n, init.nodes[p]) then return false end
    end
    for p in pairs(init.nodes) do if state.nodes[p] == nil then return false end end
    return not deep_equal(state.nodes[a.path], init.nodes[a.path])
  end,
  -- some trash entry holds a file once at a.path
  in_trash = function(state, a)
    for _, t in pairs(state.trash) do if t.original_path == a.path then return true end end
    return false
  end,
  -- a.path is a file of a.size bytes
  file_at = function(state, a)
    local n = state.nodes[a.path]
    return n ~= nil and n.type == "file" and n.size == a.size
  end,
}

---------------------------------------------------------------- tasks
local SYSTEM = {
  "You are a cloud-drive assistant. Paths are absolute (/Documents/report.pdf). Policy: look at folders, search " ..
  "results or the trash before changing anything; deleting moves items to the trash; only touch the items the " ..
  "user names; share with exactly the role asked for; ask the user for anything you need instead of guessing.",
  "You are a cloud-drive assistant; paths are absolute. Look before you change things and ask for missing details.",
  "You are a helpful assistant with access to tools.",
}
local families = {
  {name = "organize_downloads", description = "create a folder and move every download of one type into it", calls = 4},
  {name = "share_file", description = "find a file and share it with someone at a given role", calls = 2},
  {name = "cleanup_drafts", description = "trash the drafts last modified before a date", calls = 3},
  {name = "restore_deleted", description = "find a deleted file in the trash and restore it", calls = 2},
  {name = "rename_file", description = "find a file and give it a new name", calls = 2},
  {name = "backup_copy", description = "copy a file into /Backups", calls = 2},
}
local fact_phrases = {
  file_type = {"file type", "which type", "extension"},
  folder_name = {"folder name", "new folder"},
  recipient = {"email", "who"},
  role = {"access level", "role", "permission"},
  cutoff = {"cutoff date", "before which date"},
  file_name = {"file name", "which file"},
  new_name = {"new name"},
}

local function all_paths(st)
  local r = {}
  for p in spairs(st.nodes) do r[#r + 1] = p end
  return r
end
local function files_in(st, dir, pred)
  local r = {}
  for _, n in ipairs(children(st, dir)) do if n.type == "file" and (not pred or pred(n)) then r[#r + 1] = n.path end end
  return r
end
local function pick_file(rng, st, exclude_dirs)
  local r = {}
  for p, n in spairs(st.nodes) do
    if n.type == "file" and not (exclude_dirs and exclude_dirs[parent_of(p)]) then r[#r + 1] = p end
  end
  return rng:choice(r)
end
local function pretty(p) return base_of(p) end

local builders = {}
builders.organize_downloads = function(rng, aspects, st, ext)
  local moving = files_in(st, "/Downloads", function(n) return ext_of(n.path) == ext end)
  local folder = "/Documents/" .. rng:choice({"Paperwork", "Statements", "Sorted " .. ext:upper(), "Archive 2025", "To file"})
  local om = omitted_set(aspects, {"folder_name", "file_type"})
  local facts = {}
  local q = "Make a new folder " .. (om.folder_name and "under /Documents" or folder) .. " and move all the " ..
            (om.file_type and "files of one type" or (ext:upper() .. " files")) .. " from /Downloads into it."
  if om.folder_name then facts.folder_name = folder end
  if om.file_type then facts.file_type = ext:upper() .. " (." .. ext .. ")" end
  local want = {}
  local mv = {}
  for _, p in ipairs(moving) do mv[p] = true end
  for _, p in ipairs(all_paths(st)) do want[#want + 1] = mv[p] and join(folder, base_of(p)) or p end
  want[#want + 1] = folder
  table.sort(want)
  local checks = {
    {name = "looked into /Downloads", fn = "called", args = {name = "list_folder", with = {path = "/Downloads"}}},
    {name = folder .. " exists", fn = "equals", args = {path = {"nodes", folder, "type"}, value = "folder"}},
  }
  for _, p in ipairs(moving) do
    checks[#checks + 1] = {name = base_of(p) .. " moved", fn = "equals", args = {path = {"nodes", join(folder, base_of(p)), "type"}, value = "file"}}
  end
  checks[#checks + 1] = {name = "nothing else moved", fn = "paths_are", args = {paths = want}}
  return {query = q, facts = facts, checks = checks, tools = {"list_folder", "create_folder", "move_item"},
          solution = {folder = folder, moving = moving}}
end

builders.share_file = function(rng, aspects, st)
  local p = pick_file(rng, st, {["/Photos"] = true})
  local email = rng:choice(PEOPLE) .. "@" .. rng:choice(DOMAINS)
  local role = rng:choice(ROLES)
  local name = pretty(p)
  local om = omitted_set(aspects, {"role", "recipient"})
  local facts = {}
  local q = "Share " .. name .. " with " .. (om.recipient and "my coworker" or email) ..
            (om.role and "." or (" so they can " .. ({viewer = "view it", commenter = "comment on it", editor = "edit it"})[role] .. " (" .. role .. ")."))
  if om.role then facts.role = role end
  if om.recipient then facts.recipient = email end
  local checks = {
    {name = "searched for the file", fn = "called", args = {name = "search_files"}},
    {name = name .. " shared with " .. email .. " as " .. role, fn = "equals", args = {path = {"nodes", p, "shares"}, value = {{email = email, role = role}}}},
    {name = "nothing else changed", fn = "only_node_changed", args = {path = p}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"search_files", "share_item"},
          solution = {path = p, email = email, role = role}}
end

builders.cleanup_drafts = function(rng, aspects, st)
  local drafts = files_in(st, "/Drafts")
  local dates = {}
  for _, p in ipairs(drafts) do dates[#dates + 1] = st.nodes[p].modified end
  table.sort(dates)
  -- a cutoff that trashes between 1 and n-1 files (distinct dates)
  local cut
  for _ = 1, 20 do
    local c = rng:choice(dates)
    if c ~= dates[1] then cut = c; break end
  end
  if not cut then
    st.nodes[drafts[1]].modified = "2025-01-01"
    if dates[#dates] == "2025-01-01" then st.nodes[drafts[2]].modified = "2025-05-20" end
    cut = "2025-01-02"
  end
  local old = files_in(st, "/Drafts", function(n) return n.modified < cut end)
  local om = omitted_set(aspects, {"cutoff"})
  local facts = {}
  local q = "Clean up my /Drafts folder: delete every file there last modified before " .. (om.cutoff and "a certain date." or (cut .. "."))
  if om.cutoff then facts.cutoff = cut end
  local gone = {}
  for _, p in ipairs(old) do gone[p] = true end
  local want = {}
  for _, p in ipairs(all_paths(st)) do if not gone[p] then want[#want + 1] = p end end
  local checks = {{name = "looked into /Drafts", fn = "called", args = {name = "list_folder", with = {path = "/Drafts"}}}}
  for _, p in ipairs(old) do checks[#checks + 1] = {name = base_of(p) .. " in the trash", fn = "in_trash", args = {path = p}} end
  checks[#checks + 1] = {name = "only old drafts deleted", fn = "paths_are", args = {paths = want}}
  return {query = q, facts = facts, checks = checks, tools = {"list_folder", "delete_item"},
          solution = {old = old}}
end

builders.restore_deleted = function(rng, aspects, st)
  local ids = {}
  for id in spairs(st.trash) do ids[#ids + 1] = id end
  local id = rng:choice(ids)
  local t = st.trash[id]
  local name = base_of(t.original_path)
  local om = omitted_set(aspects, {"file_name"})
  local facts = {}
  local q = "I deleted " .. (om.file_name and "a file" or name) .. " by accident. Can you bring it back where it was?"
  if om.file_name then facts.file_name = name end
  local want = all_paths(st)
  want[#want + 1] = t.original_path
  table.sort(want)
  local checks = {
    {name = "looked in the trash", fn = "called", args = {name = "list_trash"}},
    {name = name .. " back at " .. t.original_path, fn = "file_at", args = {path = t.original_path, size = t.nodes[1].size}},
    {name = "nothing else changed", fn = "paths_are", args = {paths = want}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"list_trash", "restore_item"}, solution = {id = id, path = t.original_path}}
end

builders.rename_file = function(rng, aspects, st)
  local p = pick_file(rng, st)
  local e = ext_of(p)
  local new = rng:choice({"final", "2025", "shared", "v2", "approved"}) .. "_" .. base_of(p):gsub("%.%w+$", "") .. "." .. e
  if parent_of(p) == "/Photos" then new = rng:choice({"beach_day", "birthday_cake", "first_snow", "harbor_sunset"}) .. "." .. e end
  local om = omitted_set(aspects, {"new_name"})
  local facts = {}
  local q = "Please rename " .. base_of(p) .. (om.new_name and "." or (" to " .. new .. "."))
  if om.new_name then facts.new_name = new end
  local to = join(parent_of(p), new)
  local want = {}
  for _, x in ipairs(all_paths(st)) do want[#want + 1] = x == p and to or x end
  table.sort(want)
  local checks = {
    {name = "looked the file up", fn = "search_or_list", args = {path = p}},
    {name = to .. " exists", fn = "file_at", args = {path = to, size = st.nodes[p].size}},
    {name = "nothing else changed", fn = "paths_are", args = {paths = want}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"search_files", "rename_item"}, solution = {path = p, new = new}}
end

builders.backup_copy = function(rng, aspects, st)
  local p = pick_file(rng, st, {["/Backups"] = true})
  local om = omitted_set(aspects, {"file_name"})
  local facts = {}
  local q = "Put a copy of " .. (om.file_name and "one of my files" or base_of(p)) .. " in /Backups, and keep the original where it is."
  if om.file_name then facts.file_name = base_of(p) end
  local to = join("/Backups", base_of(p))
  local want = all_paths(st)
  want[#want + 1] = to
  table.sort(want)
  local checks = {
    {name = "looked the file up", fn = "search_or_list", args = {path = p}},
    {name = to .. " exists", fn = "file_at", args = {path = to, size = st.nodes[p].size}},
    {name = "original kept, nothing else changed", fn = "paths_are", args = {paths = want}},
  }
  return {query = q, facts = facts, checks = checks, tools = {"search_files", "copy_file"}, solution = {path = p}}
end

-- a successful search whose results include a.path, or a listing of its folder
checks.search_or_list = function(state, a, ctx)
  local dir = parent_of(a.path)
  for _, c in ipairs(ctx.calls) do
    if c.success and c.name == "search_files" and type(c.data) == "table" then
      for _, r in ipairs(c.data) do if r.path == a.path then return true end end
    end
    if c.success and (c.name == "list_folder" and c.args.path == dir or c.name == "get_info" and c.args.path == a.path) then return true end
  end
  return false
end

local function sample_task(rng, aspects, family)
  return family_task(rng, aspects, family, {families = families, builders = builders, gen_world = gen_world,
                                            persona_wrap = persona_wrap, system = SYSTEM,
                                            fact_check = "asked the user: "})
end

---------------------------------------------------------------- oracle
local oracles = {}
oracles.organize_downloads = function(task, s, steps)
  steps[#steps + 1] = {call = "list_folder", args = {path = "/Downloads"}}
  steps[#steps + 1] = {call = "create_folder", args = {path = s.folder}}
  for _, p in ipairs(s.moving) do steps[#steps + 1] = {call = "move_item", args = {path = p, destination_folder = s.folder}} end
  steps[#steps + 1] = {say = "Moved " .. #s.moving .. " files into " .. s.folder .. "."}
end
oracles.share_file = function(task, s, steps)
  steps[#steps + 1] = {call = "search_files", args = {name_contains = base_of(s.path)}}
  steps[#steps + 1] = {call = "share_item", args = {path = s.path, email = s.email, role = s.role}}
  steps[#steps + 1] = {say = "Shared " .. base_of(s.path) .. "."}
end
oracles.cleanup_drafts = function(task, s, steps)
  steps[#steps + 1] = {call = "list_folder", args = {path = "/Drafts"}}
  for _, p in ipairs(s.old) do steps[#steps + 1] = {call = "delete_item", args = {path = p}} end
  steps[#steps + 1] = {say = "Moved " .. #s.old .. " old drafts to the trash."}
end
oracles.restore_deleted = function(task, s, steps)
  steps[#steps + 1] = {call = "list_trash", args = object()}
  steps[#steps + 1] = {call = "restore_item", args = {trash_id = s.id}}
  steps[#steps + 1] = {say = "It is back at " .. s.path .. "."}
end
oracles.rename_file = function(task, s, steps)
  steps[#steps + 1] = {call = "search_files", args = {name_contains = base_of(s.path)}}
  steps[#steps + 1] = {call = "rename_item", args = {path = s.path, new_name = s.new}}
  steps[#steps + 1] = {say = "Renamed."}
end
oracles.backup_copy = function(task, s, steps)
  steps[#steps + 1] = {call = "search_files", args = {name_contains = base_of(s.path)}}
  steps[#steps + 1] = {call = "copy_file", args = {path = s.path, destination_folder = "/Backups"}}
  steps[#steps + 1] = {say = "A copy is in /Backups now."}
end

local function oracle(task) return family_oracle(oracles, task) end

return {
  name = "files",
  description = "Cloud drive assistant: browse and search files, create folders, move, rename, copy, trash and restore, share, tag.",
  tools = tools,
  families = families,
  checks = checks,
  fact_phrases = fact_phrases,
  sample_task = sample_task,
  oracle = oracle,
}
