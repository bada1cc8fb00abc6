-- The Redis server process's run_id: it changes with every restart and every failover, so two
-- equal ids mean no write was lost between them (see pace.lua and Store.claim).
return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
