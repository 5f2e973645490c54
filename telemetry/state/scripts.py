"""Lua scripts of the Redis live-state backend.

Why Lua and not WATCH/MULTI: a routed request must cost at most one pipelined round trip, and
the caller queues our commands on its own pipeline next to its history XADD. An optimistic
WATCH/MULTI transaction needs a read round trip before the write (two at best, more on
contention, and breakers are contended exactly when a service fails), and a WATCH cannot ride
on somebody else's pipeline. A script does read-decide-write in one command that Redis runs
atomically, so "take a half-open probe slot" is a single indivisible step across all workers.

The price is a second copy of the breaker rules: ``b_result``, ``b_allows``, ``b_dispatch`` and
``b_force`` below are line-by-line ports of ``on_result``, ``allows``, ``on_dispatch`` and
``force`` in ``routing/core/breaker.py``. ``tests/state/test_lua_breaker_matches_python.py``
replays random event sequences (random configs too) through both and requires identical
records, so the two cannot drift apart silently.

Numbers: Lua numbers are IEEE doubles like Python floats and the arithmetic is written in the
same order, so results agree bit for bit. Floats are stored with ``%.17g`` (round-trips every
double); Redis turns Lua numbers into integers in replies, so floats leave scripts as strings.

Layout (``P`` = key prefix, ``S`` = service id):

- ``P f:S``: sorted set of request ids in flight on S, scored by deadline (wall clock).
  Members with a deadline <= now are expired: never counted, pruned on the next write.
- ``P h:S``: hash. ``ew`` EWMA latency, ``ws`` error window as a string of ``0``/``1``
  (oldest first), ``wf`` failures in it, ``an`` anomaly score, and the breaker record:
  ``st`` state, ``cf`` consecutive failures, ``bw`` breaker window, ``oc`` open count,
  ``ou`` open until, ``ca`` closed at, ``pi`` probes in flight, ``ps`` probe successes,
  ``lp`` last probe at. A missing field is the default (closed breaker, zeros).
- ``P services``: set of every service id that has state, for listings.
"""

from __future__ import annotations

from routing.core.breaker import BreakerConfig

# Breaker state <-> small code in view replies.
STATE_CODES = {"closed": 0, "open": 1, "half_open": 2}

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
local ALPHA = {ewma_alpha}
local ERROR_WINDOW = {error_window}

local function fmt(x) return string.format('%.17g', x) end

local function b_load(key)
  local v = redis.call('HMGET', key, 'st', 'cf', 'bw', 'oc', 'ou', 'ca', 'pi', 'ps', 'lp')
  return {{st = v[1] or 'closed', cf = tonumber(v[2]) or 0, bw = v[3] or '',
          oc = tonumber(v[4]) or 0, ou = tonumber(v[5]) or 0, ca = tonumber(v[6]) or 0,
          pi = tonumber(v[7]) or 0, ps = tonumber(v[8]) or 0, lp = tonumber(v[9]) or 0}}
end

local function b_save(key, b)
  redis.call('HSET', key, 'st', b.st, 'cf', fmt(b.cf), 'bw', b.bw, 'oc', fmt(b.oc),
             'ou', fmt(b.ou), 'ca', fmt(b.ca), 'pi', fmt(b.pi), 'ps', fmt(b.ps),
             'lp', fmt(b.lp))
end

-- breaker._open
local function b_open(b, now)
  local in_a_row = b.st == 'half_open' or (now - b.ca < BACKOFF_RESET)
  local oc = 1
  if in_a_row then oc = b.oc + 1 end
  local duration = math.min(MAX_OPEN, BASE_OPEN * MULTIPLIER ^ (oc - 1))
  return {{st = 'open', cf = 0, bw = '', oc = oc, ou = now + duration, ca = b.ca,
          pi = 0, ps = 0, lp = 0}}
end

-- breaker._close
local function b_close(b, now)
  return {{st = 'closed', cf = 0, bw = '', oc = b.oc, ou = 0, ca = now, pi = 0, ps = 0, lp = 0}}
end

-- breaker.on_result
local function b_result(b, success, now)
  if b.st == 'closed' then
    local w = b.bw .. (success and '0' or '1')
    if #w > WINDOW then w = string.sub(w, #w - WINDOW + 1) end
    local cf = 0
    if not success then cf = b.cf + 1 end
    local _, failures = string.gsub(w, '1', '1')
    if cf >= CF_LIMIT or (#w >= MIN_CALLS and failures >= RATE * #w) then
      return b_open(b, now)
    end
    b.bw = w
    b.cf = cf
    return b
  elseif b.st == 'half_open' then
    if not success then return b_open(b, now) end
    local successes = b.ps + 1
    if successes >= TO_CLOSE then return b_close(b, now) end
    b.ps = successes
    b.pi = math.max(0, b.pi - 1)
    return b
  end
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
            pi = 1, ps = 0, lp = now}}
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
          pi = 0, ps = 0, lp = now}}
end
"""

# KEYS: f:S1, h:S1, ..., f:Sn, h:Sn, services.
# ARGV: now, deadline, n, S1..Sn, m, then m pairs (request id, service index 1..n).
# Every dispatch atomically asks the breaker (allows) and takes a probe slot (on_dispatch);
# a dispatch the breaker refuses is not counted in flight and is reported back.
# Reply: "r:<pair index>:<service index>" per refusal, "t:<service index>:<old>:<new>" per
# breaker transition (1-based indices).
ROUTED = """
local now = tonumber(ARGV[1])
local deadline = ARGV[2]
local n = tonumber(ARGV[3])
local services = KEYS[2 * n + 1]
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[2 * i - 1], '-inf', ARGV[1])
  redis.call('SADD', services, ARGV[3 + i])
end
local base = 4 + n
local m = tonumber(ARGV[base])
local states = {}
local out = {}
for j = 1, m do
  local rid = ARGV[base + 2 * j - 1]
  local i = tonumber(ARGV[base + 2 * j])
  local hkey = KEYS[2 * i]
  local st = states[i]
  if st == nil then
    st = redis.call('HGET', hkey, 'st') or 'closed'
    states[i] = st
  end
  local accepted = true
  if st ~= 'closed' then
    local b = b_load(hkey)
    if b_allows(b, now) then
      local old = b.st
      local nb = b_dispatch(b, now)
      b_save(hkey, nb)
      states[i] = nb.st
      if nb.st ~= old then out[#out + 1] = 't:' .. i .. ':' .. old .. ':' .. nb.st end
    else
      accepted = false
      out[#out + 1] = 'r:' .. j .. ':' .. i
    end
  end
  if accepted then redis.call('ZADD', KEYS[2 * i - 1], deadline, rid) end
end
return out
"""

# KEYS: f:S, h:S, services. ARGV: now, request id, success (1/0), latency ('' = none), S.
# Reply: {released (0/1), old breaker state, new breaker state}.
OUTCOME = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local released = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[5])
local success = ARGV[3] == '1'
local h = KEYS[2]
local v = redis.call('HMGET', h, 'ew', 'ws')
if ARGV[4] ~= '' then
  local latency = tonumber(ARGV[4])
  local ew = tonumber(v[1]) or 0
  if ew == 0 then ew = latency else ew = ALPHA * latency + (1 - ALPHA) * ew end
  redis.call('HSET', h, 'ew', fmt(ew))
end
local ws = (v[2] or '') .. (success and '0' or '1')
if #ws > ERROR_WINDOW then ws = string.sub(ws, #ws - ERROR_WINDOW + 1) end
local _, wf = string.gsub(ws, '1', '1')
redis.call('HSET', h, 'ws', ws, 'wf', wf)
local b = b_load(h)
local old = b.st
local nb = b_result(b, success, now)
b_save(h, nb)
return {released, old, nb.st}
"""

# KEYS: f:S1, h:S1, ..., f:Sn, h:Sn. ARGV: now.
# Reply: one string, 6 comma-separated numbers per service in KEYS order: in flight, EWMA
# latency, error rate, anomaly, breaker allows (1/0), breaker state code (STATE_CODES).
VIEW = """
local now = tonumber(ARGV[1])
local live = '(' .. ARGV[1]
local codes = {closed = 0, open = 1, half_open = 2}
local parts = {}
for i = 1, #KEYS / 2 do
  local count = redis.call('ZCOUNT', KEYS[2 * i - 1], live, '+inf')
  local v = redis.call('HMGET', KEYS[2 * i], 'ew', 'ws', 'wf', 'an', 'st', 'ou', 'pi', 'lp')
  local rate = '0'
  if v[2] and #v[2] > 0 then rate = fmt((tonumber(v[3]) or 0) / #v[2]) end
  local b = {st = v[5] or 'closed', ou = tonumber(v[6]) or 0, pi = tonumber(v[7]) or 0,
             lp = tonumber(v[8]) or 0}
  local allows = '0'
  if b_allows(b, now) then allows = '1' end
  parts[#parts + 1] = count .. ',' .. (v[1] or '0') .. ',' .. rate .. ',' .. (v[4] or '0')
    .. ',' .. allows .. ',' .. codes[b.st]
end
return table.concat(parts, ',')
"""

# KEYS: h:S, services. ARGV: now, target state, S. Reply: {old state, new state}.
FORCE = """
local now = tonumber(ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
local b = b_load(KEYS[1])
local nb = b_force(b, ARGV[2], now)
b_save(KEYS[1], nb)
return {b.st, nb.st}
"""

# KEYS: f:S1, ..., f:Sn. ARGV: now. Reply: distinct request ids in flight on any of them.
INFLIGHT_REQUESTS = """
local live = '(' .. ARGV[1]
local seen = {}
local count = 0
for i = 1, #KEYS do
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], live, '+inf')) do
    if not seen[rid] then
      seen[rid] = true
      count = count + 1
    end
  end
end
return count
"""

SCRIPTS = {
    "routed": ROUTED,
    "outcome": OUTCOME,
    "view": VIEW,
    "force": FORCE,
    "inflight_requests": INFLIGHT_REQUESTS,
}


def _lua_number(value: float) -> str:
    """A Lua literal for ``value`` that parses back to the same double."""
    text = repr(float(value))
    if text == "inf":
        return "(1/0)"
    if text in ("-inf", "nan"):
        raise ValueError(f"unsupported breaker constant {text}")
    return text


def build_scripts(config: BreakerConfig, ewma_alpha: float, error_window: int) -> dict[str, str]:
    """Every script's source with this store's constants compiled in.

    Constants are baked in rather than passed per call: fewer bytes per request, and a store
    with another config simply gets scripts with other SHAs.
    """
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
        ewma_alpha=_lua_number(ewma_alpha),
        error_window=int(error_window),
    )
    return {name: prelude + body for name, body in SCRIPTS.items()}
