#!lua name=contextkit_2

-- contextkit's Redis library, format 2: its name and its functions' names
-- carry the format, so clients of two formats never replace each other's
-- library. Every write to a shared namespace is one call of ck2_write below, which decides against what Redis holds and checks every
-- precondition before its first write (Redis does not roll a function back).
-- The Rust crate and the npm package load this same file.
--
-- All keys of namespace NS start with "ck:{NS}:" (one hash tag, so one slot
-- of a cluster). KEYS[1] is "ck:{NS}:meta"; the others are derived from it:
--
--   meta      hash   epoch (random, set when the namespace is made), cfg (its
--                    configuration, compared by clients), rev (the last
--                    revision), pid (the last recovery-point id)
--   c:<id>    string one context, "V R C U E T\n" .. metadata .. "\n" .. data:
--                    version, revision, created, updated, expires at and ttl
--                    (E and T empty for none), then the metadata and the data
--                    as JSON text. The data is never decoded here, so numbers
--                    round-trip exactly. With a TTL, Redis itself deletes the
--                    key from the moment the context expires, so a plain GET
--                    never shows an expired context.
--   p:<id>    list   recovery points, oldest first: "pid\nversion\ncreated\n" .. data
--   ids       hash   id -> version of every context not yet removed, expired
--                    but unswept ones included (they hold a slot); the version
--                    is kept up to date for contexts with a TTL only (it names
--                    the one Redis deleted when its Expired event is written)
--   exp       zset   id -> expires at (ms) of the contexts with a TTL
--   ev        stream one entry per commit, entry id "<revision>-0", fields
--                    t (type), i (id), v (version)
--   op:<op>   string the reply of a finished write, replayed to a retry of
--                    the same operation id (a write never applies twice), or
--                    "aborted" once its client gave up on it (ck2_settle): a
--                    late copy of it then never applies
--
-- Times are the server's (TIME) in ms, unless the namespace was made for a
-- client clock (tests with a manual clock): then each call passes its time
-- and Redis's own key expiry is not used. Integers travel as decimal strings.

local LIBRARY_VERSION = '7'
-- The most time a TTL or a reply's lifetime may be (about 142,000 years).
local MAX_MS = 4503599627370496
-- Versions and recovery-point ids stop below 2^52 (exact in every client).
local MAX_COUNTER = 4503599627370496

local function num(n)
  return string.format('%d', n)
end

-- The time of a call: the client's when it passes one, else the server's.
local function now_ms(given)
  if given and given ~= '' then
    return tonumber(given)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A record's fields; its data only when `with_data`.
local function parse(raw, with_data)
  local v, r, c, u, e, t, stop = string.match(raw, '^(%d+) (%d+) (%d+) (%d+) (%d*) (%d*)\n()')
  if not v then
    error('contextkit: a damaged record')
  end
  local m_end = string.find(raw, '\n', stop, true)
  local rec = { v = v, r = r, c = c, u = u, e = e, t = t, m = string.sub(raw, stop, m_end - 1) }
  if with_data then
    rec.d = string.sub(raw, m_end + 1)
  end
  return rec
end

local function format(v, r, c, u, e, t, m, d)
  return v .. ' ' .. r .. ' ' .. c .. ' ' .. u .. ' ' .. e .. ' ' .. t .. '\n' .. m .. '\n' .. d
end

-- One commit: the next revision, an entry in the stream, an event in the reply.
local function commit(w, kind, id, version)
  local rev = num(redis.call('HINCRBY', w.meta, 'rev', 1))
  redis.call('XADD', w.P .. 'ev', 'MAXLEN', '~', w.maxlen, rev .. '-0',
    't', kind, 'i', id, 'v', version)
  local ev = w.events
  ev[#ev + 1] = kind
  ev[#ev + 1] = id
  ev[#ev + 1] = version
  ev[#ev + 1] = rev
  return rev
end

-- Removes id (version v) with its recovery points; one event of `why`.
local function remove(w, id, v, why)
  local P = w.P
  redis.call('DEL', P .. 'c:' .. id, P .. 'p:' .. id)
  redis.call('HDEL', P .. 'ids', id)
  redis.call('ZREM', P .. 'exp', id)
  w.counted = true
  commit(w, why, id, v)
end

-- The record of id when it is live now; an expired one is removed first
-- (its one Expired event) and nil returned.
local function load(w, id, with_data)
  local raw = redis.call('GET', w.P .. 'c:' .. id)
  if raw then
    local rec = parse(raw, with_data)
    if rec.e ~= '' and tonumber(rec.e) <= w.now then
      remove(w, id, rec.v, 'expired')
      return nil
    end
    return rec
  end
  -- Redis deleted it at its expiry, or it never was.
  local v = redis.call('HGET', w.P .. 'ids', id)
  if v then
    remove(w, id, v, 'expired')
  end
  return nil
end

-- Removes up to `max` expired contexts (all when max is 0); how many.
local function sweep(w, max)
  local args = { 'ZRANGEBYSCORE', w.P .. 'exp', '-inf', num(w.now) }
  if max > 0 then
    args[#args + 1] = 'LIMIT'
    args[#args + 1] = '0'
    args[#args + 1] = num(max)
  end
  local due = redis.call(unpack(args))
  for _, id in ipairs(due) do
    remove(w, id, redis.call('HGET', w.P .. 'ids', id), 'expired')
  end
  return #due
end

local function expires(now, ttl)
  if ttl == '' then
    return ''
  end
  return num(now + tonumber(ttl))
end

-- Stores the record of id, with its expiry: Redis deletes a key once now >
-- at, a context is expired once now >= expires, hence at = expires - 1.
-- `had_ttl`: the record it replaces had one.
local function store(w, id, text, exp, version, had_ttl)
  local key = w.P .. 'c:' .. id
  if exp ~= '' then
    if w.client_clock then
      redis.call('SET', key, text)
    else
      redis.call('SET', key, text, 'PXAT', num(tonumber(exp) - 1))
    end
    redis.call('ZADD', w.P .. 'exp', exp, id)
    redis.call('HSET', w.P .. 'ids', id, version)
  else
    redis.call('SET', key, text)
    if had_ttl then
      redis.call('ZREM', w.P .. 'exp', id)
    end
  end
end

-- A new version of live id (record rec) with `data`: update or restore.
local function set_data(w, id, rec, data, ttl_arg, kind)
  if tonumber(rec.v) >= MAX_COUNTER then
    return 'CAPACITY_EXCEEDED', { 'versions of a context', num(MAX_COUNTER) }
  end
  local ttl = ttl_arg
  if ttl == '' then
    ttl = rec.t
  end
  local nv = num(tonumber(rec.v) + 1)
  local u = num(math.max(w.now, tonumber(rec.u)))
  local exp = expires(w.now, ttl)
  local r = commit(w, kind, id, nv)
  store(w, id, format(nv, r, rec.c, u, exp, ttl, rec.m, data), exp, nv, rec.t ~= '')
  if exp ~= '' and not w.client_clock then
    redis.call('PEXPIREAT', w.P .. 'p:' .. id, num(tonumber(exp) - 1))
  elseif exp == '' and rec.t ~= '' then
    redis.call('PERSIST', w.P .. 'p:' .. id)
  end
  return 'OK', { nv, r, rec.c, u, exp, ttl, rec.m }
end

local ops = {}

-- ARGV: id, data, ttl ('' none), metadata, capacity
function ops.create(w, a)
  local id, data, ttl, metadata, limit = a[1], a[2], a[3], a[4], tonumber(a[5])
  if load(w, id, false) then
    return 'ALREADY_EXISTS', {}
  end
  local ids = w.P .. 'ids'
  local held = redis.call('HLEN', ids)
  if held >= limit then
    -- Expired contexts do not count: sweep as many as the create needs.
    sweep(w, held - limit + 1)
    if redis.call('HLEN', ids) >= limit then
      return 'CAPACITY_EXCEEDED', { 'contexts', num(limit) }
    end
  end
  local now = num(w.now)
  local exp = expires(w.now, ttl)
  local r = commit(w, 'created', id, '1')
  if exp == '' then
    redis.call('HSET', ids, id, '1')
  end
  store(w, id, format('1', r, now, now, exp, ttl, metadata, data), exp, '1', false)
  w.counted = true
  return 'OK', { '1', r, now, now, exp, ttl, metadata }
end

-- ARGV: id, data, expected version ('' any), ttl ('' keep), expected
-- revision ('' any: the state committed at that revision, for a
-- read-modify-write; a version repeats after a delete and a create)
function ops.update(w, a)
  local id, data, expected, ttl, revision = a[1], a[2], a[3], a[4], a[5] or ''
  local rec = load(w, id, false)
  if not rec then
    return 'NOT_FOUND', {}
  end
  if (expected ~= '' and tonumber(expected) ~= tonumber(rec.v))
    or (revision ~= '' and tonumber(revision) ~= tonumber(rec.r)) then
    return 'VERSION_CONFLICT', { rec.v, rec.r }
  end
  return set_data(w, id, rec, data, ttl, 'updated')
end

-- ARGV: id. Restarts the TTL of live id from now: the same version and
-- revision, no event. Replies with the whole state, data included.
function ops.touch(w, a)
  local id = a[1]
  local rec = load(w, id, true)
  if not rec then
    return 'NOT_FOUND', {}
  end
  if rec.t ~= '' then
    rec.e = expires(w.now, rec.t)
    store(w, id, format(rec.v, rec.r, rec.c, rec.u, rec.e, rec.t, rec.m, rec.d), rec.e, rec.v, true)
    if not w.client_clock then
      redis.call('PEXPIREAT', w.P .. 'p:' .. id, num(tonumber(rec.e) - 1))
    end
  end
  return 'OK', { rec.v, rec.r, rec.c, rec.u, rec.e, rec.t, rec.m, rec.d }
end

-- ARGV: id
function ops.delete(w, a)
  local id = a[1]
  local rec = load(w, id, false)
  if not rec then
    return 'NOT_FOUND', {}
  end
  remove(w, id, rec.v, 'deleted')
  return 'OK', {}
end

-- ARGV: id, recovery points to keep (at least 1)
function ops.point(w, a)
  local id, keep = a[1], tonumber(a[2])
  local rec = load(w, id, true)
  if not rec then
    return 'NOT_FOUND', {}
  end
  local last = tonumber(redis.call('HGET', w.meta, 'pid') or '0')
  if last + 1 >= MAX_COUNTER then
    return 'CAPACITY_EXCEEDED', { 'recovery point ids', num(MAX_COUNTER) }
  end
  local pid = num(redis.call('HINCRBY', w.meta, 'pid', 1))
  local now = num(w.now)
  local key = w.P .. 'p:' .. id
  redis.call('RPUSH', key, pid .. '\n' .. rec.v .. '\n' .. now .. '\n' .. rec.d)
  redis.call('LTRIM', key, -keep, -1)
  if rec.e ~= '' and not w.client_clock then
    -- The points go when their context expires.
    redis.call('PEXPIREAT', key, num(tonumber(rec.e) - 1))
  end
  return 'OK', { pid, rec.v, now, rec.d }
end

-- ARGV: id, recovery-point id
function ops.restore(w, a)
  local id, pid = a[1], a[2]
  local rec = load(w, id, false)
  if not rec then
    return 'NOT_FOUND', {}
  end
  local prefix = pid .. '\n'
  for _, p in ipairs(redis.call('LRANGE', w.P .. 'p:' .. id, 0, -1)) do
    if string.sub(p, 1, #prefix) == prefix then
      local _, stop = string.find(p, '\n[^\n]*\n[^\n]*\n')
      local data = string.sub(p, stop + 1)
      local status, detail = set_data(w, id, rec, data, '', 'restored')
      if status == 'OK' then
        detail[#detail + 1] = data
      end
      return status, detail
    end
  end
  return 'NOT_FOUND', { pid }
end

-- ARGV: most to remove in this call
function ops.sweep(w, a)
  w.counted = true
  return 'OK', { num(sweep(w, tonumber(a[1]))) }
end

-- ARGV: capacity. Sweeps expired contexts, then evicts the least recently
-- written ones (lowest revision) until at most `capacity` remain.
function ops.evict(w, a)
  local limit = tonumber(a[1])
  w.counted = true
  sweep(w, 0)
  local ids = w.P .. 'ids'
  local over = redis.call('HLEN', ids) - limit
  if over <= 0 then
    return 'OK', { '0' }
  end
  local order = {}
  for _, id in ipairs(redis.call('HKEYS', ids)) do
    local raw = redis.call('GET', w.P .. 'c:' .. id)
    if raw then
      local rec = parse(raw, false)
      order[#order + 1] = { tonumber(rec.r), id, rec.v }
    end
  end
  table.sort(order, function(x, y) return x[1] < y[1] end)
  for i = 1, math.min(over, #order) do
    remove(w, order[i][2], order[i][3], 'evicted')
  end
  return 'OK', { num(math.min(over, #order)) }
end

-- ck2_write(KEYS: meta; ARGV: op name, epoch, operation id, reply ttl ms,
-- stream max length, time ('' for the server's), the op's own arguments...).
-- Replies { status, details, events [, contexts] } where events are flat
-- (type, id, version, revision) quadruples and contexts, given when the
-- write may have changed it, counts the stored contexts (expired but unswept
-- ones included); status is OK or an error code, or EPOCH when the namespace
-- is not the one the caller joined (its data was lost).
-- Whether s is a whole number in `least`..MAX_MS, or '' when `kind` is
-- 'optional'. Kinds: 'optional' (1.. or ''), 'positive' (1..), 'count' (0..).
local function whole(s, kind)
  -- An optional number may be left out (a client of an earlier release of
  -- this format passes fewer arguments).
  if s == nil or s == '' then
    return kind == 'optional' or kind == 'expected'
  end
  -- Plain decimal digits, as every client writes them: a form tonumber reads
  -- but a Redis command refuses (' 5', '1e3', '0x10', '05', '+5') would make
  -- the call fail half-way, after its first write.
  if s ~= '0' and not string.match(s, '^[1-9]%d*$') then
    return false
  end
  -- A number only compared (an expected version or revision, '' for none;
  -- a recovery point's id) may be any: one out of range matches nothing.
  if kind == 'expected' or kind == 'compared' then
    return #s <= 20
  end
  local n = tonumber(s)
  local least = 1
  if kind == 'count' then
    least = 0
  end
  return n ~= nil and n >= least and n <= MAX_MS and n == math.floor(n)
end

-- The arguments each operation takes as numbers, by position after the
-- common ones.
local NUMBERS = {
  create = { [3] = 'optional', [5] = 'count' },
  update = { [3] = 'expected', [4] = 'optional', [5] = 'expected' },
  delete = {},
  touch = {},
  point = { [2] = 'positive' },
  restore = { [2] = 'compared' },
  sweep = { [1] = 'positive' },
  evict = { [1] = 'count' },
}

-- The reply of finished operation `opkey`, if any (and one counted replay).
local function replay(meta, opkey)
  local done = redis.call('GET', opkey)
  if not done then
    return nil
  end
  redis.call('HINCRBY', meta, 'replays', 1)
  if done == 'aborted' then
    return { 'ABORTED', {}, {} }
  end
  return cjson.decode(done)
end

local function write(keys, args)
  local meta = keys[1]
  local P = string.sub(meta, 1, #meta - 4)
  local op = ops[args[1]]
  if not op then
    return redis.error_reply('unknown contextkit operation ' .. tostring(args[1]))
  end
  -- Every number checked before the first write: a bad one is an error
  -- reply and changes nothing.
  local ok = whole(args[4], 'positive') and whole(args[5], 'positive')
    and whole(args[6], 'optional') and args[7] ~= nil
  for i, kind in pairs(NUMBERS[args[1]]) do
    ok = ok and whole(args[6 + i], kind)
  end
  if not ok then
    return redis.error_reply('contextkit: a malformed ' .. args[1])
  end
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch ~= args[2] then
    return { 'EPOCH', { epoch or '' }, {} }
  end
  local opkey = P .. 'op:' .. args[3]
  local done = replay(meta, opkey)
  if done then
    return done
  end
  local w = {
    P = P, meta = meta, now = now_ms(args[6]), client_clock = args[6] ~= '',
    events = {}, maxlen = args[5], counted = false,
  }
  local status, details = op(w, { unpack(args, 7) })
  local reply = { status, details, w.events }
  if w.counted then
    reply[4] = redis.call('HLEN', P .. 'ids')
  end
  redis.call('SET', opkey, cjson.encode(reply), 'PX', args[4])
  return reply
end

-- ck2_settle(KEYS: meta, op key; ARGV: reply ttl ms): for a write whose
-- client got no answer. Replies like ck2_write: the write's own reply if it
-- ran, else { 'ABORTED' } after marking the operation so that the write, if
-- it is still on its way, never applies.
local function settle(keys, args)
  local done = replay(keys[1], keys[2])
  if done then
    return done
  end
  if not whole(args[1], 'positive') then
    return redis.error_reply('contextkit: a malformed settle')
  end
  redis.call('SET', keys[2], 'aborted', 'PX', args[1])
  return { 'ABORTED', {}, {} }
end

-- ck2_join(KEYS: meta; ARGV: new epoch, configuration text). Makes the
-- namespace if it does not exist; replies { epoch, configuration, revision }.
local function join(keys, args)
  local meta = keys[1]
  local m = redis.call('HMGET', meta, 'epoch', 'cfg', 'rev')
  if not m[1] then
    redis.call('HSET', meta, 'epoch', args[1], 'cfg', args[2], 'rev', '0', 'pid', '0')
    return { args[1], args[2], '0' }
  end
  return m
end

-- The record of id if it is live at `now`, without changing anything.
local function live_record(P, id, now)
  local raw = redis.call('GET', P .. 'c:' .. id)
  if not raw then
    return nil
  end
  local e = string.match(raw, '^%d+ %d+ %d+ %d+ (%d*) ')
  if e ~= '' and tonumber(e) <= now then
    return nil
  end
  return raw
end

-- ck2_live(KEYS: meta; ARGV: 'ids' | 'states', time): the live contexts
-- ('states': id, record, id, record...).
local function live_all(keys, args)
  local meta = keys[1]
  local P = string.sub(meta, 1, #meta - 4)
  local now = now_ms(args[2])
  local out = {}
  for _, id in ipairs(redis.call('HKEYS', P .. 'ids')) do
    local raw = live_record(P, id, now)
    if raw then
      out[#out + 1] = id
      if args[1] == 'states' then
        out[#out + 1] = raw
      end
    end
  end
  return out
end

-- ck2_count(KEYS: meta; ARGV: time): how many contexts are live.
local function count(keys, args)
  local meta = keys[1]
  local P = string.sub(meta, 1, #meta - 4)
  local now = now_ms(args[1])
  return redis.call('HLEN', P .. 'ids') - redis.call('ZCOUNT', P .. 'exp', '-inf', num(now))
end

-- ck2_get(KEYS: meta; ARGV: id, time): the record of a live context, else
-- nil. (With the server's clock a plain GET does the same.)
local function get(keys, args)
  local meta = keys[1]
  local P = string.sub(meta, 1, #meta - 4)
  return live_record(P, args[1], now_ms(args[2]))
end

-- ck2_points(KEYS: meta; ARGV: id, time): { 'OK', points } or { 'NOT_FOUND' }.
local function points(keys, args)
  local meta = keys[1]
  local P = string.sub(meta, 1, #meta - 4)
  if not live_record(P, args[1], now_ms(args[2])) then
    return { 'NOT_FOUND' }
  end
  return { 'OK', redis.call('LRANGE', P .. 'p:' .. args[1], 0, -1) }
end

redis.register_function('ck2_write', write)
redis.register_function('ck2_settle', settle)
redis.register_function('ck2_join', join)
redis.register_function{ function_name = 'ck2_live', callback = live_all, flags = { 'no-writes' } }
redis.register_function{ function_name = 'ck2_count', callback = count, flags = { 'no-writes' } }
redis.register_function{ function_name = 'ck2_get', callback = get, flags = { 'no-writes' } }
redis.register_function{ function_name = 'ck2_points', callback = points, flags = { 'no-writes' } }
redis.register_function{
  function_name = 'ck2_version',
  callback = function() return LIBRARY_VERSION end,
  flags = { 'no-writes' },
}
