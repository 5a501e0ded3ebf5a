#!lua name=contextkit

-- contextkit's Redis library. Every write to a shared namespace is one call
-- of one function below, which decides against what Redis holds and checks
-- every precondition before its first write (Redis does not roll a function
-- back). The Rust crate and the npm package load this same file.
--
-- All keys of namespace NS start with "ck:{NS}:" (one hash tag, so one slot
-- of a cluster). KEYS[1] is "ck:{NS}:meta"; the others are derived from it:
--
--   meta      hash   epoch (random, set when the namespace is made), cfg (its
--                    configuration, compared by clients), rev (the last
--                    revision), pid (the last recovery-point id)
--   c:<id>    hash   one context: v version, r revision, c created, u updated,
--                    e expires at ('' for none), t ttl ('' for none),
--                    m metadata (JSON text), d data (JSON text, never decoded
--                    here, so numbers round-trip exactly). With a TTL, Redis
--                    itself hides the key from the moment it expires.
--   p:<id>    list   recovery points, oldest first: "pid\nversion\ncreated\n" .. data
--   ids       hash   id -> version of every context not yet removed
--                    (expired but unswept ones included: they hold a slot)
--   exp       zset   id -> expires at (ms) of the contexts with a TTL
--   lru       zset   id -> revision of its last write (eviction order)
--   ev        stream one entry per commit, entry id "<revision>-0", fields
--                    t (type), i (id), v (version)
--   op:<op>   string the reply of a finished write, replayed to a retry of
--                    the same operation id (a write never applies twice)
--
-- Times are the server's (TIME) in ms, unless the namespace was made for a
-- client clock (tests with a manual clock): then each call passes its time
-- and Redis's own key expiry is not used. Integers travel as decimal strings.

local LIBRARY_VERSION = '1'
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
  redis.call('ZREM', P .. 'lru', id)
  commit(w, why, id, v)
end

-- The version of id when it is stored and live now; an expired one is
-- removed first (its one Expired event), and nil returned.
local function live(w, id)
  local P = w.P
  local v = redis.call('HGET', P .. 'ids', id)
  if not v then
    return nil
  end
  local e = redis.call('ZSCORE', P .. 'exp', id)
  if (e and tonumber(e) <= w.now) or redis.call('EXISTS', P .. 'c:' .. id) == 0 then
    remove(w, id, v, 'expired')
    return nil
  end
  return v
end

-- Whether id is stored and live now, without changing anything.
local function live_ro(P, id, now)
  if not redis.call('HGET', P .. 'ids', id) then
    return false
  end
  local e = redis.call('ZSCORE', P .. 'exp', id)
  return not (e and tonumber(e) <= now)
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

-- Sets the expiry of the record key: Redis deletes a key once now > at, a
-- context is expired once now >= expires, hence at = expires - 1.
local function expire_at(w, key, id, exp)
  if exp ~= '' then
    if not w.client_clock then
      redis.call('PEXPIREAT', key, num(tonumber(exp) - 1))
    end
    redis.call('ZADD', w.P .. 'exp', exp, id)
  else
    redis.call('PERSIST', key)
    redis.call('ZREM', w.P .. 'exp', id)
  end
end

local function expires(now, ttl)
  if ttl == '' then
    return ''
  end
  return num(now + tonumber(ttl))
end

-- A new version of live id (version v) with `data`: update or restore.
local function set_data(w, id, v, data, ttl_arg, kind)
  if tonumber(v) >= MAX_COUNTER then
    return 'CAPACITY_EXCEEDED', { 'versions of a context', num(MAX_COUNTER) }
  end
  local key = w.P .. 'c:' .. id
  local rec = redis.call('HMGET', key, 'c', 'u', 't', 'm')
  local ttl = ttl_arg
  if ttl == '' then
    ttl = rec[3]
  end
  local nv = num(tonumber(v) + 1)
  local u = num(math.max(w.now, tonumber(rec[2])))
  local exp = expires(w.now, ttl)
  local r = commit(w, kind, id, nv)
  redis.call('HSET', key, 'v', nv, 'r', r, 'u', u, 'e', exp, 't', ttl, 'd', data)
  expire_at(w, key, id, exp)
  redis.call('HSET', w.P .. 'ids', id, nv)
  redis.call('ZADD', w.P .. 'lru', r, id)
  return 'OK', { nv, r, rec[1], u, exp, ttl, rec[4] }
end

local ops = {}

-- ARGV: id, data, ttl ('' none), metadata, capacity
function ops.create(w, a)
  local id, data, ttl, metadata, limit = a[1], a[2], a[3], a[4], tonumber(a[5])
  if live(w, id) then
    return 'ALREADY_EXISTS', {}
  end
  local ids = w.P .. 'ids'
  if redis.call('HLEN', ids) >= limit then
    -- Expired contexts do not count: sweep them, then look again.
    sweep(w, 0)
    if redis.call('HLEN', ids) >= limit then
      return 'CAPACITY_EXCEEDED', { 'contexts', num(limit) }
    end
  end
  local now = num(w.now)
  local exp = expires(w.now, ttl)
  local r = commit(w, 'created', id, '1')
  local key = w.P .. 'c:' .. id
  redis.call('HSET', key, 'v', '1', 'r', r, 'c', now, 'u', now, 'e', exp, 't', ttl,
    'm', metadata, 'd', data)
  if exp ~= '' then
    expire_at(w, key, id, exp)
  end
  redis.call('HSET', ids, id, '1')
  redis.call('ZADD', w.P .. 'lru', r, id)
  return 'OK', { '1', r, now, now, exp, ttl, metadata }
end

-- ARGV: id, data, expected version ('' any), ttl ('' keep)
function ops.update(w, a)
  local id, data, expected, ttl = a[1], a[2], a[3], a[4]
  local v = live(w, id)
  if not v then
    return 'NOT_FOUND', {}
  end
  if expected ~= '' and tonumber(expected) ~= tonumber(v) then
    return 'VERSION_CONFLICT', { v }
  end
  return set_data(w, id, v, data, ttl, 'updated')
end

-- ARGV: id
function ops.delete(w, a)
  local id = a[1]
  local v = live(w, id)
  if not v then
    return 'NOT_FOUND', {}
  end
  remove(w, id, v, 'deleted')
  return 'OK', {}
end

-- ARGV: id, recovery points to keep (at least 1)
function ops.point(w, a)
  local id, keep = a[1], tonumber(a[2])
  local v = live(w, id)
  if not v then
    return 'NOT_FOUND', {}
  end
  local last = tonumber(redis.call('HGET', w.meta, 'pid') or '0')
  if last + 1 >= MAX_COUNTER then
    return 'CAPACITY_EXCEEDED', { 'recovery point ids', num(MAX_COUNTER) }
  end
  local data = redis.call('HGET', w.P .. 'c:' .. id, 'd')
  local pid = num(redis.call('HINCRBY', w.meta, 'pid', 1))
  local now = num(w.now)
  local key = w.P .. 'p:' .. id
  redis.call('RPUSH', key, pid .. '\n' .. v .. '\n' .. now .. '\n' .. data)
  redis.call('LTRIM', key, -keep, -1)
  return 'OK', { pid, v, now, data }
end

-- ARGV: id, recovery-point id
function ops.restore(w, a)
  local id, pid = a[1], a[2]
  local v = live(w, id)
  if not v then
    return 'NOT_FOUND', {}
  end
  local prefix = pid .. '\n'
  for _, p in ipairs(redis.call('LRANGE', w.P .. 'p:' .. id, 0, -1)) do
    if string.sub(p, 1, #prefix) == prefix then
      local _, stop = string.find(p, '\n[^\n]*\n[^\n]*\n')
      local data = string.sub(p, stop + 1)
      local status, detail = set_data(w, id, v, data, '', 'restored')
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
  return 'OK', { num(sweep(w, tonumber(a[1]))) }
end

-- ARGV: capacity. Sweeps expired contexts, then evicts the least recently
-- written ones until at most `capacity` remain.
function ops.evict(w, a)
  local limit = tonumber(a[1])
  sweep(w, 0)
  local ids = w.P .. 'ids'
  local n = 0
  while redis.call('HLEN', ids) > limit do
    local id = redis.call('ZRANGE', w.P .. 'lru', 0, 0)[1]
    remove(w, id, redis.call('HGET', ids, id), 'evicted')
    n = n + 1
  end
  return 'OK', { num(n) }
end

-- ck_write(KEYS: meta; ARGV: op name, epoch, operation id, reply ttl ms,
-- stream max length, time ('' for the server's), the op's own arguments...).
-- Replies { status, details, events, contexts } where events are flat
-- (type, id, version, revision) quadruples and contexts counts the stored
-- contexts (expired but unswept ones included); status is OK or an error code,
-- or EPOCH when the namespace is not the one the caller joined (data lost).
local function write(keys, args)
  local meta = keys[1]
  local P = string.sub(meta, 1, #meta - 4)
  local op = ops[args[1]]
  if not op then
    return redis.error_reply('unknown contextkit operation ' .. tostring(args[1]))
  end
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch ~= args[2] then
    return { 'EPOCH', { epoch or '' }, {} }
  end
  local opkey = P .. 'op:' .. args[3]
  local done = redis.call('GET', opkey)
  if done then
    return cjson.decode(done)
  end
  local w = {
    P = P, meta = meta, now = now_ms(args[6]), client_clock = args[6] ~= '',
    events = {}, maxlen = args[5],
  }
  local status, details = op(w, { unpack(args, 7) })
  local reply = { status, details, w.events, redis.call('HLEN', P .. 'ids') }
  redis.call('SET', opkey, cjson.encode(reply), 'PX', args[4])
  return reply
end

-- ck_join(KEYS: meta; ARGV: new epoch, configuration text). Makes the
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

local STATE_FIELDS = { 'v', 'r', 'c', 'u', 'e', 'm', 'd' }

-- ck_live(KEYS: meta; ARGV: 'ids' | 'count' | 'states', time): the live contexts.
local function live_all(keys, args)
  local meta = keys[1]
  local P = string.sub(meta, 1, #meta - 4)
  local now = now_ms(args[2])
  local ids = redis.call('HKEYS', P .. 'ids')
  local out = {}
  for _, id in ipairs(ids) do
    if live_ro(P, id, now) then
      out[#out + 1] = id
    end
  end
  if args[1] == 'count' then
    return #out
  end
  if args[1] == 'states' then
    local states = {}
    for _, id in ipairs(out) do
      local rec = redis.call('HMGET', P .. 'c:' .. id, unpack(STATE_FIELDS))
      states[#states + 1] = id
      states[#states + 1] = rec
    end
    return states
  end
  return out
end

-- ck_get(KEYS: meta; ARGV: id, time): the fields of a live context, else
-- nothing. (With the server's clock a plain HMGET does the same.)
local function get(keys, args)
  local meta = keys[1]
  local P = string.sub(meta, 1, #meta - 4)
  if not live_ro(P, args[1], now_ms(args[2])) then
    return {}
  end
  return redis.call('HMGET', P .. 'c:' .. args[1], unpack(STATE_FIELDS))
end

-- ck_points(KEYS: meta; ARGV: id, time): { 'OK', points } or { 'NOT_FOUND' }.
local function points(keys, args)
  local meta = keys[1]
  local P = string.sub(meta, 1, #meta - 4)
  if not live_ro(P, args[1], now_ms(args[2])) then
    return { 'NOT_FOUND' }
  end
  return { 'OK', redis.call('LRANGE', P .. 'p:' .. args[1], 0, -1) }
end

redis.register_function('ck_write', write)
redis.register_function('ck_join', join)
redis.register_function{ function_name = 'ck_live', callback = live_all, flags = { 'no-writes' } }
redis.register_function{ function_name = 'ck_get', callback = get, flags = { 'no-writes' } }
redis.register_function{ function_name = 'ck_points', callback = points, flags = { 'no-writes' } }
redis.register_function{
  function_name = 'ck_version',
  callback = function() return LIBRARY_VERSION end,
  flags = { 'no-writes' },
}
