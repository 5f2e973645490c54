"""Lua scripts of the Redis live-state backend.

Why Lua and not WATCH/MULTI: a routed request must cost at most one pipelined round trip, and
the caller queues our commands on its own pipeline next to its history XADD. An optimistic
WATCH/MULTI transaction needs a read round trip before the write (two at best, more on
contention, and breakers are contended exactly when a service fails), and a WATCH cannot ride
on somebody else's pipeline. A script does read-decide-write in one command that Redis runs
atomically, so "take a half-open probe slot" is a single indivisible step across all workers.

The price is a second copy of the breaker rules: ``b_result``, ``b_allows``, ``b_dispatch`` and
``b_force`` below are line-by-line ports of ``on_result``, ``allows``, ``on_dispatch`` and
``force`` in ``routing/core/breaker.py``.
``tests/telemetry/state/test_lua_breaker_matches_python.py`` replays random event sequences
(random configs too) through both and requires identical records, so the two cannot drift
apart silently.

Numbers: Lua numbers are IEEE doubles like Python floats and the arithmetic is written in the
same order, so results agree bit for bit. Floats are stored with ``%.17g`` (round-trips every
double); Redis turns Lua numbers into integers in replies, so floats leave scripts as strings.

Layout (``P`` = key prefix, ``S`` = service id). Every script gets the same five keys, so a
view of 64 services is a few Redis calls inside one script, not two per service:

- ``P live``: hash of every service's scalar state, fields ``S|name``: ``ew`` EWMA latency,
  ``ws`` error window as a string of ``0``/``1`` (oldest first), ``wf`` failures in it, ``wn``
  its length, ``an`` anomaly score, and the breaker record: ``st`` state, ``cf`` consecutive
  failures, ``bw`` breaker window, ``oc`` open count, ``ou`` open until, ``ca`` closed at,
  ``pi`` probes in flight, ``ps`` probe successes, ``lp`` last probe at. A missing field is
  the default (closed breaker, zeros). ``S`` is everything before the last ``|``.
- ``P inflight``: sorted set of (service, request) pairs in flight (leases), scored by their
  deadline (wall clock); member ``<len(S)>:<S><request id>``. A member whose deadline <= now
  is expired. The routed script sets each deadline from S's EWMA by the rule of
  ``LeaseConfig.ttl`` (``routing/core/state.py``), with its constants compiled in.
- ``P count``: hash ``S`` -> live members of ``P inflight`` for S. Every script first prunes
  expired members (decrementing their counts), so counts are exact whenever read.
- ``P services``: set of every service id that has state, for listings.
- ``P view``: hash ``S`` -> the numbers a view needs, ``ew,wf,wn,an,state code,ou,pi,lp``,
  rewritten by every script that changes them. A refresh is then two HMGETs for the whole
  fleet (each worker refreshes every 20 ms, so this is the read that must stay cheap);
  whether a breaker allows traffic depends on the time, so the reader decides that. Its
  field ``''`` (never a service id) numbers the scripts that change in-flight counts, in
  the order Redis ran them (see ``tick``).
"""

from __future__ import annotations

from routing.core.breaker import BreakerConfig
from routing.core.state import LeaseConfig

# Breaker state <-> small code in view replies.
STATE_CODES = {"closed": 0, "open": 1, "half_open": 2}
# Numbers per service in a VIEW reply: in flight, then the ``P view`` summary.
VIEW_FIELDS = 9

_PRELUDE = """
local CF_LIMIT = {consecutive_failures}
local WINDOW = {window_size}
local RATE = {failure_rate_threshold}
local MIN_CALLS = {minimum_calls}
local BASE_OPEN = {base_open_s}
local MULTIPLIER = {backoff_multiplier}
local MAX_OPEN = {max_open_s}
local MAX_PROBES = {half_open_max_probes}
local TO_CLOSE = {successes_to_close}
local PROBE_TIMEOUT = {probe_timeout_s}
local BACKOFF_RESET = {backoff_reset_s}
local BASE_MIN = {baseline_min_results}
local BASE_DECAY = {baseline_decay}
local SURPRISE = {surprise}
local SIGMAS = {baseline_sigmas}
local PROBE_SURPRISE = {probe_surprise}
local PRIOR_FAILURES = {prior_failures}
local PRIOR_RESULTS = {prior_results}
local ALPHA = {ewma_alpha}
local ERROR_WINDOW = {error_window}
local LEASE_DEFAULT = {lease_default_s}
local LEASE_FACTOR = {lease_factor}
local LEASE_MIN = {lease_min_s}
local LEASE_MAX = {lease_max_s}

local LIVE, COUNT, INFLIGHT, SERVICES, VIEW = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local B_FIELDS = {{'st', 'cf', 'bw', 'oc', 'ou', 'ca', 'pi', 'ps', 'lp', 'bf', 'bn'}}
local S_FIELDS = {{'ew', 'ws', 'wf', 'wn', 'an', 'st', 'cf', 'bw', 'oc', 'ou', 'ca', 'pi', 'ps',
                  'lp', 'bf', 'bn'}}

local function fmt(x) return string.format('%.17g', x) end

local function member(sid, rid) return #sid .. ':' .. sid .. rid end

local function member_service(m)
  local colon = string.find(m, ':', 1, true)
  local n = tonumber(string.sub(m, 1, colon - 1))
  return string.sub(m, colon + 1, colon + n), string.sub(m, colon + n + 1)
end

-- LeaseConfig.ttl: seconds a lease lasts on a service whose latency EWMA is ``ew`` (the stored
-- text, or false/0 while nothing is measured); the same operations in the same order as the
-- Python, so both give the same double.
local function lease_ttl(ew)
  ew = tonumber(ew) or 0
  if ew == 0 then return LEASE_DEFAULT end
  return math.min(LEASE_MAX, math.max(LEASE_MIN, LEASE_FACTOR * ew / 1000))
end

local function release(sid)
  if redis.call('HINCRBY', COUNT, sid, -1) <= 0 then redis.call('HDEL', COUNT, sid) end
end

-- Forget every in-flight pair whose deadline <= now: one count update per service.
local function prune(now_text)
  local expired = redis.call('ZRANGEBYSCORE', INFLIGHT, '-inf', now_text)
  if #expired == 0 then return end
  local gone = {{}}
  for _, m in ipairs(expired) do
    local sid = member_service(m)
    gone[sid] = (gone[sid] or 0) + 1
  end
  for sid, n in pairs(gone) do
    if redis.call('HINCRBY', COUNT, sid, -n) <= 0 then redis.call('HDEL', COUNT, sid) end
  end
  redis.call('ZREMRANGEBYSCORE', INFLIGHT, '-inf', now_text)
end

local function b_load(sid)
  local f = sid .. '|'
  local v = redis.call('HMGET', LIVE, f .. 'st', f .. 'cf', f .. 'bw', f .. 'oc', f .. 'ou',
                       f .. 'ca', f .. 'pi', f .. 'ps', f .. 'lp', f .. 'bf', f .. 'bn')
  return {{st = v[1] or 'closed', cf = tonumber(v[2]) or 0, bw = v[3] or '',
          oc = tonumber(v[4]) or 0, ou = tonumber(v[5]) or 0, ca = tonumber(v[6]) or 0,
          pi = tonumber(v[7]) or 0, ps = tonumber(v[8]) or 0, lp = tonumber(v[9]) or 0,
          bf = tonumber(v[10]) or 0, bn = tonumber(v[11]) or 0}}
end

local function b_save(sid, b)
  local f = sid .. '|'
  redis.call('HSET', LIVE, f .. 'st', b.st, f .. 'cf', fmt(b.cf), f .. 'bw', b.bw,
             f .. 'oc', fmt(b.oc), f .. 'ou', fmt(b.ou), f .. 'ca', fmt(b.ca),
             f .. 'pi', fmt(b.pi), f .. 'ps', fmt(b.ps), f .. 'lp', fmt(b.lp),
             f .. 'bf', fmt(b.bf), f .. 'bn', fmt(b.bn))
end

-- breaker._open
local function b_open(b, now)
  local in_a_row = b.st == 'half_open' or (now - b.ca < BACKOFF_RESET)
  local oc = 1
  if in_a_row then oc = b.oc + 1 end
  local duration = math.min(MAX_OPEN, BASE_OPEN * MULTIPLIER ^ (oc - 1))
  return {{st = 'open', cf = 0, bw = '', oc = oc, ou = now + duration, ca = b.ca,
          pi = 0, ps = 0, lp = 0, bf = b.bf, bn = b.bn}}
end

-- breaker._close
local function b_close(b, now)
  return {{st = 'closed', cf = 0, bw = '', oc = b.oc, ou = 0, ca = now, pi = 0, ps = 0, lp = 0,
          bf = b.bf, bn = b.bn}}
end

-- breaker.baseline
local function b_baseline(b)
  if BASE_MIN == 0 or b.bn < BASE_MIN then return 0 end
  return b.bf / b.bn
end

-- breaker.run_unlikely
local function run_unlikely(failures, results, run, surprise)
  failures = math.max(0.0, failures) + PRIOR_FAILURES
  results = math.max(0.0, results) + PRIOR_RESULTS
  local log_likelihood = 0.0
  for i = 0, run - 1 do
    log_likelihood = log_likelihood + math.log((failures + i) / (results + i))
  end
  return log_likelihood <= math.log(surprise)
end

-- breaker.on_result
local function b_result(b, success, now)
  if b.st == 'open' then return b end
  if b.st == 'closed' then
    local failed = 1.0
    if success then failed = 0.0 end
    local bf = b.bf * BASE_DECAY + failed
    local bn = b.bn * BASE_DECAY + 1.0
    local w = b.bw .. (success and '0' or '1')
    if #w > WINDOW then w = string.sub(w, #w - WINDOW + 1) end
    local cf = 0
    if not success then cf = b.cf + 1 end
    local _, failures = string.gsub(w, '1', '1')
    local before_f = math.max(0.0, b.bf - (cf - 1))
    local before_n = math.max(0.0, b.bn - (cf - 1))
    local on_run
    if BASE_MIN == 0 then
      on_run = cf >= CF_LIMIT
    elseif cf >= math.max(CF_LIMIT, WINDOW) then
      on_run = true
    else
      on_run = cf >= CF_LIMIT and run_unlikely(before_f, before_n, cf, SURPRISE)
    end
    local rate = RATE
    local known = b.bn >= BASE_MIN
    local normal = b_baseline(b)
    if normal > 0 then
      local spread = SIGMAS * math.sqrt(normal * (1.0 - normal) / #w)
      rate = math.max(rate, math.min(1.0, normal + spread))
    end
    if on_run and BASE_MIN ~= 0 then
      bf = before_f
      bn = before_n
    end
    b.bf = bf
    b.bn = bn
    if on_run or (known and #w >= MIN_CALLS and failures >= rate * #w) then
      return b_open(b, now)
    end
    b.bw = w
    b.cf = cf
    return b
  end
  if not success then
    local failures = b.cf + 1
    if BASE_MIN == 0 or run_unlikely(b.bf, b.bn, failures, PROBE_SURPRISE) then
      return b_open(b, now)
    end
    b.cf = failures
    b.pi = math.max(0, b.pi - 1)
    return b
  end
  local successes = b.ps + 1
  if successes >= TO_CLOSE then return b_close(b, now) end
  b.ps = successes
  b.pi = math.max(0, b.pi - 1)
  return b
end

-- breaker.allows
local function b_allows(b, now)
  if b.st == 'closed' then return true end
  if b.st == 'open' then return now >= b.ou end
  return b.pi < MAX_PROBES or now - b.lp >= PROBE_TIMEOUT
end

-- breaker.on_dispatch
local function b_dispatch(b, now)
  if b.st == 'closed' then return b end
  if b.st == 'open' then
    if now < b.ou then return b end
    return {{st = 'half_open', cf = 0, bw = '', oc = b.oc, ou = b.ou, ca = b.ca,
            pi = 1, ps = 0, lp = now, bf = b.bf, bn = b.bn}}
  end
  if now - b.lp >= PROBE_TIMEOUT then b.pi = 1 else b.pi = b.pi + 1 end
  b.lp = now
  return b
end

-- breaker.force
local function b_force(b, state, now)
  if state == 'closed' then return b_close(b, now) end
  if state == 'open' then return b_open(b, now) end
  return {{st = 'half_open', cf = 0, bw = '', oc = b.oc, ou = now, ca = b.ca,
          pi = 0, ps = 0, lp = now, bf = b.bf, bn = b.bn}}
end

-- Rewrite S's view summary from its state: ew, wf, wn, an, state code, ou, pi, lp.
local CODES = {{closed = '0', open = '1', half_open = '2'}}
local function summarize(sid)
  local f = sid .. '|'
  local v = redis.call('HMGET', LIVE, f .. 'ew', f .. 'wf', f .. 'wn', f .. 'an', f .. 'st',
                       f .. 'ou', f .. 'pi', f .. 'lp')
  v[5] = CODES[v[5] or 'closed']
  for i = 1, 8 do v[i] = v[i] or '0' end
  redis.call('HSET', VIEW, sid, table.concat(v, ','))
end

-- VIEW_FIELDS numbers per service, comma-separated, in sids order: in flight, then the
-- summary. Read in chunks: HMGET's arguments go through Lua's C stack (8000 slots).
local function rows(sids)
  local out = {{}}
  local k = 0
  for first = 1, #sids, 1000 do
    local last = math.min(#sids, first + 999)
    local counts = redis.call('HMGET', COUNT, unpack(sids, first, last))
    local views = redis.call('HMGET', VIEW, unpack(sids, first, last))
    for i = 1, last - first + 1 do
      out[k + 1] = counts[i] or '0'
      out[k + 2] = views[i] or '0,0,0,0,0,0,0,0'
      k = k + 2
    end
  end
  return table.concat(out, ',')
end

-- The order of the scripts that change in-flight counts (routed, and an outcome that released
-- a lease), shared by every worker: a counter in VIEW's field '' (never a service id). A view
-- returns it too, so a worker knows which of its own changes the view already holds.
local function tick() return redis.call('HINCRBY', VIEW, '', 1) end

local function add_services(sids)
  for first = 1, #sids, 500 do
    redis.call('SADD', SERVICES, unpack(sids, first, math.min(#sids, first + 499)))
  end
end
"""

# Every script: KEYS = live, count, inflight, services, view.

# With a sixth key (a rate-limit counter) ARGV starts with the limit: over it, the reply is
# {'x'} and nothing is dispatched (the route pipeline's other commands are GUARDED alike).
# ARGV: now, then the dispatches in one of two encodings:
#   "j", "S1\nS2..." (the services), "R1\nR2..." (request ids), "i1,i2,..." (service index of
#       each request id, 1-based): three strings however big the batch, which is far cheaper
#       for the client to send than two arguments per dispatch (ids contain no newline);
#   "l", n, S1..Sn, m, then m pairs (request id, service index): for any other ids.
# Every dispatch atomically asks the breaker (allows) and takes a probe slot (on_dispatch);
# a dispatch the breaker refuses is not counted in flight and is reported back, unless its
# service index is negative (panic routing: every able service's breaker was open, so the
# request goes to one anyway; counted in flight, the breaker left as it is). An accepted one
# takes a lease on its service until now + lease_ttl(S's EWMA): one deadline per service per
# call, read with its breaker state in one HMGET. A pair already in flight is not counted
# again; its lease is renewed.
# After the dispatches may come commands to run once they are done, encoded as for GUARDED
# (only behind a guard, which has then passed: see RedisStateStore.queue_guarded).
# Reply: "r:<dispatch index>:<service index>" per refusal, "t:<service index>:<old>:<new>" per
# breaker transition (1-based indices), then "s:<sequence number>" (see tick).
ROUTED = """
local ARGV = ARGV
if KEYS[6] then
  -- Guarded by a rate-limit counter (see GUARDED): over ARGV[1], dispatch nothing.
  if tonumber(redis.call('GET', KEYS[6]) or '0') > tonumber(ARGV[1]) then return {'x'} end
  ARGV = {unpack(ARGV, 2)}
end
local now = tonumber(ARGV[1])
prune(ARGV[1])
local sids, rids, idx = {}, {}, {}
local rest = 6  -- the first ARGV after the dispatches: guarded commands (see below)
if ARGV[2] == 'j' then
  for sid in string.gmatch(ARGV[3], '[^\\n]+') do sids[#sids + 1] = sid end
  for rid in string.gmatch(ARGV[4], '[^\\n]+') do rids[#rids + 1] = rid end
  for i in string.gmatch(ARGV[5], '-?%d+') do idx[#idx + 1] = tonumber(i) end
else
  local n = tonumber(ARGV[3])
  for i = 1, n do sids[i] = ARGV[3 + i] end
  local base = 4 + n
  local m = tonumber(ARGV[base])
  for j = 1, m do
    rids[j] = ARGV[base + 2 * j - 1]
    idx[j] = tonumber(ARGV[base + 2 * j])
  end
  rest = base + 2 * m + 1
end
add_services(sids)
local states = {}
local deadlines = {}
local out = {}
-- Dispatches to a closed breaker are always accepted: collected per service and added with
-- one ZADD (all share the service's deadline) and one count update per service.
local closed = {}
for j = 1, #rids do
  local i = idx[j]
  local forced = i < 0
  if forced then i = -i end
  local sid = sids[i]
  local st = states[i]
  if st == nil then
    local v = redis.call('HMGET', LIVE, sid .. '|st', sid .. '|ew')
    st = v[1] or 'closed'
    states[i] = st
    deadlines[i] = fmt(now + lease_ttl(v[2]))
  end
  local accepted = true
  if st == 'closed' then
    local bucket = closed[i]
    if bucket == nil then
      bucket = {}
      closed[i] = bucket
    end
    bucket[#bucket + 1] = deadlines[i]
    bucket[#bucket + 1] = member(sid, rids[j])
    accepted = false  -- counted below, with the rest of its service's
  else
    local b = b_load(sid)
    if b_allows(b, now) then
      local old = b.st
      local nb = b_dispatch(b, now)
      b_save(sid, nb)
      summarize(sid)
      states[i] = nb.st
      if nb.st ~= old then out[#out + 1] = 't:' .. i .. ':' .. old .. ':' .. nb.st end
    elseif not forced then
      accepted = false
      out[#out + 1] = 'r:' .. j .. ':' .. i
    end
  end
  if accepted and redis.call('ZADD', INFLIGHT, deadlines[i], member(sid, rids[j])) == 1 then
    redis.call('HINCRBY', COUNT, sid, 1)
  end
end
for i, bucket in pairs(closed) do
  local added = 0
  for first = 1, #bucket, 1000 do  -- unpack goes through Lua's C stack (8000 slots)
    local last = math.min(#bucket, first + 999)
    added = added + redis.call('ZADD', INFLIGHT, unpack(bucket, first, last))
  end
  if added > 0 then redis.call('HINCRBY', COUNT, sids[i], added) end
end
-- Commands GUARDED would run (each as its argument count, then its arguments), appended by
-- RedisStateStore.queue_guarded: one script call per route instead of two.
while rest <= #ARGV do
  local n = tonumber(ARGV[rest])
  redis.call(unpack(ARGV, rest + 1, rest + n))
  rest = rest + n + 1
end
out[#out + 1] = 's:' .. tick()
return out
"""

# ARGV: now, request id, success (1/0), latency ('' = none), S.
# Reply: {released (0/1), old breaker state, new breaker state, sequence number (see tick; 0
# when nothing was released)}.
OUTCOME = """
local now = tonumber(ARGV[1])
local sid = ARGV[5]
local f = sid .. '|'
prune(ARGV[1])
local released = redis.call('ZREM', INFLIGHT, member(sid, ARGV[2]))
local seq = 0
if released == 1 then
  release(sid)
  seq = tick()
end
redis.call('SADD', SERVICES, sid)
local success = ARGV[3] == '1'
local v = redis.call('HMGET', LIVE, f .. 'ew', f .. 'ws')
if ARGV[4] ~= '' then
  local latency = tonumber(ARGV[4])
  local ew = tonumber(v[1]) or 0
  if ew == 0 then ew = latency else ew = ALPHA * latency + (1 - ALPHA) * ew end
  redis.call('HSET', LIVE, f .. 'ew', fmt(ew))
end
local ws = (v[2] or '') .. (success and '0' or '1')
if #ws > ERROR_WINDOW then ws = string.sub(ws, #ws - ERROR_WINDOW + 1) end
local _, wf = string.gsub(ws, '1', '1')
redis.call('HSET', LIVE, f .. 'ws', ws, f .. 'wf', wf, f .. 'wn', #ws)
local b = b_load(sid)
local old = b.st
local nb = b_result(b, success, now)
b_save(sid, nb)
summarize(sid)
return {released, old, nb.st, seq}
"""

# ARGV: now, then either one argument "S1\nS2\n...\nSn" (cheaper to send and parse than n
# arguments; registry ids never contain a newline) or "" followed by S1..Sn.
# Reply: "<sequence number>;" (see tick: the last in-flight change this read holds), then
# rows() for S1..Sn.
VIEW = """
prune(ARGV[1])
local sids = {}
if #ARGV == 2 then
  for sid in string.gmatch(ARGV[2], '[^\\n]+') do sids[#sids + 1] = sid end
else
  for i = 3, #ARGV do sids[i - 2] = ARGV[i] end
end
return (redis.call('HGET', VIEW, '') or '0') .. ';' .. rows(sids)
"""

# ARGV: now. Reply: {rows() for every known service, S1, S2, ...}.
SNAPSHOT = """
prune(ARGV[1])
local sids = redis.call('SMEMBERS', SERVICES)
table.sort(sids)
local reply = {rows(sids)}
for i = 1, #sids do reply[i + 1] = sids[i] end
return reply
"""

# ARGV: now, target state, S. Reply: {old state, new state}.
FORCE = """
local now = tonumber(ARGV[1])
redis.call('SADD', SERVICES, ARGV[3])
local b = b_load(ARGV[3])
local nb = b_force(b, ARGV[2], now)
b_save(ARGV[3], nb)
summarize(ARGV[3])
return {b.st, nb.st}
"""

# ARGV: now. Reply: distinct request ids in flight on any service.
INFLIGHT_REQUESTS = """
prune(ARGV[1])
local seen = {}
local count = 0
for _, m in ipairs(redis.call('ZRANGE', INFLIGHT, 0, -1)) do
  local _, rid = member_service(m)
  if not seen[rid] then
    seen[rid] = true
    count = count + 1
  end
end
return count
"""

# ARGV: S, score (already clamped to [0, 1]).
ANOMALY = """
redis.call('SADD', SERVICES, ARGV[1])
redis.call('HSET', LIVE, ARGV[1] .. '|an', ARGV[2])
summarize(ARGV[1])
return 1
"""

# ARGV: S. Forget the service: its state, its count and its in-flight pairs.
REMOVE = """
local sid = ARGV[1]
local names = {}
for _, name in ipairs(S_FIELDS) do names[#names + 1] = sid .. '|' .. name end
redis.call('HDEL', LIVE, unpack(names))
redis.call('HDEL', COUNT, sid)
redis.call('HDEL', VIEW, sid)
redis.call('SREM', SERVICES, sid)
local prefix = #sid .. ':' .. sid
for _, m in ipairs(redis.call('ZRANGE', INFLIGHT, 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix and (member_service(m)) == sid then
    redis.call('ZREM', INFLIGHT, m)
  end
end
return 1
"""

# KEYS[1]: a rate-limit counter; ARGV: the limit, then commands, each as its argument count
# followed by its arguments. Runs them only while the counter is within the limit. Queued in
# the same MULTI/EXEC as the counter's INCR and the guarded ROUTED call, so a request over the
# limit leaves no trace but its count: the limit check costs no round trip of its own.
# Reply: 1 when the commands ran, 0 when the counter was over the limit.
GUARDED = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > tonumber(ARGV[1]) then return 0 end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""

# ARGV: ttl (seconds), then one blob of entries "<n>:<key><m>:<value>" (n, m: lengths in
# bytes), so keys and values may hold any byte. SET key value EX ttl for each: a batch's
# thousand pending entries in one call, which costs the client a tenth of a thousand
# pipelined SETs (redis-py packs and parses every command in Python).
SCRIPTS = {
    "routed": ROUTED,
    "guarded": GUARDED,
    "outcome": OUTCOME,
    "view": VIEW,
    "snapshot": SNAPSHOT,
    "force": FORCE,
    "inflight_requests": INFLIGHT_REQUESTS,
    "remove": REMOVE,
    "anomaly": ANOMALY,
}


# Scripts that use nothing of the prelude get none: Redis runs a script's whole chunk on every
# call, and creating the prelude's functions and tables costs ~15 us each time (measured with
# INFO commandstats on Redis 7.0), several times what GUARDED itself does.
STANDALONE = frozenset({"guarded"})


def _lua_number(value: float) -> str:
    """A Lua literal for ``value`` that parses back to the same double."""
    text = repr(float(value))
    if text == "inf":
        return "(1/0)"
    if text in ("-inf", "nan"):
        raise ValueError(f"unsupported breaker constant {text}")
    return text


def build_scripts(
    config: BreakerConfig,
    ewma_alpha: float,
    error_window: int,
    lease: LeaseConfig | None = None,
) -> dict[str, str]:
    """Every script's source with this store's constants compiled in.

    Constants are baked in rather than passed per call: fewer bytes per request, and a store
    with another config simply gets scripts with other SHAs.
    """
    lease = lease or LeaseConfig()
    prelude = _PRELUDE.format(
        consecutive_failures=int(config.consecutive_failures),
        window_size=int(config.window_size),
        failure_rate_threshold=_lua_number(config.failure_rate_threshold),
        minimum_calls=int(config.minimum_calls),
        base_open_s=_lua_number(config.base_open_s),
        backoff_multiplier=_lua_number(config.backoff_multiplier),
        max_open_s=_lua_number(config.max_open_s),
        half_open_max_probes=int(config.half_open_max_probes),
        successes_to_close=int(config.successes_to_close),
        probe_timeout_s=_lua_number(config.probe_timeout_s),
        backoff_reset_s=_lua_number(config.backoff_reset_s),
        baseline_min_results=int(config.baseline_min_results),
        baseline_decay=_lua_number(config.baseline_decay),
        surprise=_lua_number(config.surprise),
        baseline_sigmas=_lua_number(config.baseline_sigmas),
        probe_surprise=_lua_number(config.probe_surprise),
        prior_failures=_lua_number(config.prior_failure_share * config.prior_results),
        prior_results=_lua_number(config.prior_results),
        ewma_alpha=_lua_number(ewma_alpha),
        error_window=int(error_window),
        lease_default_s=_lua_number(lease.default_s),
        lease_factor=_lua_number(lease.factor),
        lease_min_s=_lua_number(lease.min_s),
        lease_max_s=_lua_number(lease.max_s),
    )
    return {name: body if name in STANDALONE else prelude + body for name, body in SCRIPTS.items()}
