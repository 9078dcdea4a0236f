-- The HTTP stack's own ceiling: GET /healthz touches neither the database nor a credential.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
done = common.done
