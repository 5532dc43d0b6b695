#!/usr/bin/env bash
# Builds the container image with the real recipe (deploy/build-image.sh, deploy/Containerfile)
# and tests it with podman, on loopback only:
#
#   1. the image: exactly the binary, the libraries `ldd` lists, the CA bundle, passwd, group,
#      nsswitch.conf and mcpauth.toml; user 10001, the /data volume, port 3000, a HEALTHCHECK; size
#   2. a container on a new named volume, port 3000 published on 127.0.0.1, the issuer from
#      MCPAUTH_ISSUER: /healthz and /readyz answer, `podman healthcheck run` is healthy, the
#      process runs as uid 10001, discovery names that issuer, the admin CLI works inside it
#      (`podman exec … mcpauth user create`), and the Better Auth peer's flow.mjs (shared/peers/
#      better-auth: discovery, sign-up, DCR, authorize + consent, code exchange, bearer, refresh)
#      completes against it
#   3. SIGTERM (`podman stop`): exit code 0 well within the stop timeout, the log says `stopped`
#   4. a new container on the same volume with a mounted /etc/mcpauth/mcpauth.toml: the file is
#      read (its [metadata] shows in discovery), and both users of step 2 sign in (a lost
#      database would answer 401), the flow's user completes the flow again
#   5. two containers (--network host, ports of their own) on the host's PostgreSQL (a fresh
#      database) and Redis (a key prefix of their own), one issuer, a round-robin proxy in front
#      (Node, below; the nginx of deploy/compose.yaml cannot be pulled here): flow.mjs across both
#      instances, every request alternating between them; both announce the Redis rate limits
#   6. deploy/compose.yaml parses and names what the README says (deploy/check-compose.py)
#
#   deploy/test-image.sh                 # after `cargo build -p mcpauth-server` (scripts/test.sh step 3)
#
# Environment:
#   IMAGE_BINARY  the binary that goes in the image (default: $MCPAUTH_BIN, else target/debug/mcpauth)
#   IMAGE_MAX_MB  fail when the image is larger (default: none; the release image is measured in
#                 the README, see below)
#   KEEP_IMAGE=1  keep the image localhost/mcpauth-test:<pid> afterwards
#   SHARED_DIR    the shared/ folder with peers/better-auth/flow.mjs (default: ../shared, /work/shared)
#   PGHOST_URL    PostgreSQL server for step 5 (default postgres://postgres@127.0.0.1:5432)
#   REDIS_URL     Redis for step 5 (default redis://127.0.0.1:6379)
#
# Why the debug binary: CI builds it anyway (scripts/test.sh step 3), while a fresh release build
# (thin LTO) costs 760 s of CPU time: 8-10 more minutes of CI's two cores (measured: 27 minutes
# wall with other builds on the same two cores), against a CI run of 25-35 minutes that must stay
# under 50. This step itself takes under a minute (image built in 10-25 s). The image recipe
# is the same for any binary (same Containerfile, same ldd-listed libraries, same user, volume,
# configuration and healthcheck), so everything above is what users get; only the image size is
# not the release one. The README's size comes from `deploy/build-image.sh` (release), measured
# by hand; IMAGE_BINARY=target/release/mcpauth IMAGE_MAX_MB=40 checks it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
binary="${IMAGE_BINARY:-${MCPAUTH_BIN:-$target_dir/debug/mcpauth}}"
[[ -x "$binary" ]] || { echo "test-image: no binary at $binary (cargo build -p mcpauth-server)" >&2; exit 2; }
for tool in podman node curl psql redis-cli python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "test-image: $tool is not installed (.ci/run installs it)" >&2; exit 2; }
done
flow=""
for shared in "${SHARED_DIR:-}" "$root/../shared" /work/shared; do
  if [[ -n "$shared" && -f "$shared/peers/better-auth/flow.mjs" ]]; then
    flow="$shared/peers/better-auth/flow.mjs"
    break
  fi
done
[[ -n "$flow" ]] || { echo "test-image: peers/better-auth/flow.mjs not found (set SHARED_DIR)" >&2; exit 2; }
pg_server="${PGHOST_URL:-postgres://postgres@127.0.0.1:5432}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"

work="$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-image-test.XXXXXX")"
id="$$"
image="localhost/mcpauth-test:$id"
volume="mcpauth-test-data-$id"
single="mcpauth-test-$id"
restarted="mcpauth-test-restarted-$id"
node_a="mcpauth-test-a-$id"
node_b="mcpauth-test-b-$id"
database="mcpauth_image_test_$id"
proxy_pid=""
# Podman schedules a HEALTHCHECK with a systemd timer: without systemd (CI) it logs "unable to get
# systemd connection to add healthchecks" at start and stop of the container of steps 2 and 3,
# which keep the check for `podman healthcheck run`; the others leave it out.
run_args=(--no-healthcheck)

# Podman as root in a sandbox like CI's: runc with cgroupfs (crun's cgroup setup is refused) and
# no default rlimits (the sandbox refuses podman's), events to a file (no journald). Harmless on
# an ordinary machine too; an explicit CONTAINERS_CONF wins.
if [[ -z "${CONTAINERS_CONF:-}" ]]; then
  cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  export CONTAINERS_CONF="$work/containers.conf"
fi

cleanup() {
  local rc=$?
  set +e
  if [[ $rc -ne 0 ]]; then
    for c in "$single" "$restarted" "$node_a" "$node_b"; do
      if podman container exists "$c" 2>/dev/null; then
        echo "---- podman logs $c (last 40 lines) ----"
        podman logs --tail 40 "$c" 2>&1
      fi
    done
  fi
  [[ -n "$proxy_pid" ]] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
  # -v: the anonymous /data volumes of the containers that mount none (step 5)
  podman rm -f -i -v -t 0 "$single" "$restarted" "$node_a" "$node_b" >/dev/null 2>&1
  podman volume rm -f "$volume" >/dev/null 2>&1
  [[ "${KEEP_IMAGE:-}" == 1 ]] || podman rmi -f "$image" >/dev/null 2>&1
  psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1
  redis-cli -u "$redis_url" --scan --pattern "mcpauth-image-test-$id:*" 2>/dev/null \
    | xargs -r redis-cli -u "$redis_url" del >/dev/null 2>&1
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "test-image: FAILED: $*" >&2
  exit 1
}
step() { printf '\n-- %s\n' "$*"; }

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# wait_ok URL: waits (30 s at most) for a 200 from URL.
wait_ok() {
  for _ in $(seq 1 60); do
    curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.5
  done
  fail "no 200 from $1 within 30 s"
}

# sign_in ISSUER EMAIL PASSWORD: prints the HTTP status of an email sign-in.
sign_in() {
  curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X POST "$1/api/auth/sign-in/email" \
    -H 'content-type: application/json' -H "origin: $1" \
    --data "{\"email\":\"$2\",\"password\":\"$3\"}"
}

# logs_of CONTAINER: its output so far, in a file (grep reads the file: no pipe to break).
logs_of() {
  podman logs "$1" >"$work/$1.log" 2>&1
  echo "$work/$1.log"
}

# run_flow ISSUER EMAIL PASSWORD REPORT: the peer's full authorization-code flow (core steps must pass).
run_flow() {
  node --dns-result-order=ipv4first "$flow" "$1" /api/auth --protected /api/auth/mcp/get-session \
    --email "$2" --password "$3" --no-probes --quiet --json "$4" \
    || fail "flow.mjs against $1 (report: $(cat "$4" 2>/dev/null | head -c 4000))"
}

# ---- 1. the image ---------------------------------------------------------------------------
step "1. build the image from $binary"
build_started=$SECONDS
"$here/build-image.sh" --binary "$binary" --tag "$image"
echo "image built in $((SECONDS - build_started)) s"
inspect() { podman image inspect --format "$1" "$image"; }
[[ "$(inspect '{{.Config.User}}')" == "10001:10001" ]] || fail "image user is $(inspect '{{.Config.User}}')"
inspect '{{json .Config.Volumes}}' | grep -q '"/data"' || fail "no /data volume"
inspect '{{json .Config.ExposedPorts}}' | grep -q '"3000/tcp"' || fail "port 3000 not exposed"
inspect '{{json .Config.Healthcheck}}' | grep -q 'healthcheck' || fail "no HEALTHCHECK: $(inspect '{{json .Config.Healthcheck}}')"
# Nothing but the binary, the libraries it links, the CA bundle and four small files in /etc.
{
  printf '%s\n' /usr/local/bin/mcpauth /etc/passwd /etc/group /etc/nsswitch.conf \
    /etc/ssl/certs/ca-certificates.crt /etc/mcpauth/mcpauth.toml
  ldd "$binary" | grep -o '/[^ ]*' || true
} | sort -u >"$work/files.expected"
mounted=$(podman image mount "$image")
(cd "$mounted" && find . ! -type d | sed 's|^\.||' | sort) >"$work/files.actual"
podman image unmount "$image" >/dev/null
diff -u "$work/files.expected" "$work/files.actual" || fail "the image holds other files than the expected ones (diff above)"
size=$(inspect '{{.Size}}')
echo "image $image: $((size / 1024 / 1024)) MB ($size bytes), user 10001, volume /data, port 3000, healthcheck"
if [[ -n "${IMAGE_MAX_MB:-}" ]] && ((size > IMAGE_MAX_MB * 1024 * 1024)); then
  fail "the image is $((size / 1024 / 1024)) MB, over IMAGE_MAX_MB=$IMAGE_MAX_MB"
fi

# ---- 2. one container on a volume -----------------------------------------------------------
port=$(free_port)
issuer="http://127.0.0.1:$port"
step "2. run it: volume $volume, 127.0.0.1:$port -> 3000, MCPAUTH_ISSUER=$issuer"
podman volume create "$volume" >/dev/null
podman run -d --name "$single" -p "127.0.0.1:$port:3000" -v "$volume:/data" \
  -e MCPAUTH_ISSUER="$issuer" -e MCPAUTH_RATE_LIMITS__ENABLED=false "$image" >/dev/null
wait_ok "$issuer/healthz"
[[ "$(curl -fsS --max-time 5 "$issuer/healthz")" == ok ]] || fail "/healthz does not say ok"
wait_ok "$issuer/readyz"
podman healthcheck run "$single" || fail "podman healthcheck run: not healthy"
echo "healthz, readyz: 200; HEALTHCHECK (mcpauth healthcheck inside): healthy"
pid=$(podman inspect --format '{{.State.Pid}}' "$single")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[[ "$uid" == 10001 ]] || fail "the server runs as uid $uid, not 10001"
curl -fsS --max-time 5 "$issuer/.well-known/oauth-authorization-server" >"$work/metadata.json"
python3 - "$work/metadata.json" "$issuer" <<'EOF' || fail "discovery does not name $issuer"
import json, sys
metadata = json.load(open(sys.argv[1]))
assert metadata["issuer"] == sys.argv[2], metadata["issuer"]
assert metadata["token_endpoint"].startswith(sys.argv[2] + "/"), metadata["token_endpoint"]
EOF
grep -q 'Database:.*sqlite:///data/mcpauth.db' "$(logs_of "$single")" || fail "the database is not /data/mcpauth.db"
admin_email="admin-$id@example.com"
admin_password="container-admin-$id-Passw0rd"
podman exec "$single" mcpauth user create --email "$admin_email" \
  --password "$admin_password" --name Admin || fail "mcpauth user create inside the container"
[[ "$(sign_in "$issuer" "$admin_email" "$admin_password")" == 200 ]] || fail "the CLI-created user cannot sign in"
flow_email="flow-$id@example.com"
flow_password="container-flow-$id-Passw0rd"
run_flow "$issuer" "$flow_email" "$flow_password" "$work/flow-1.json"
echo "flow.mjs: complete (user $flow_email signed up through it)"

# ---- 3. SIGTERM ------------------------------------------------------------------------------
step "3. podman stop (SIGTERM, 20 s before SIGKILL)"
stop_started=$SECONDS
podman stop -t 20 "$single" >/dev/null
stop_took=$((SECONDS - stop_started))
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$single")
[[ "$exit_code" == 0 ]] || fail "exit code $exit_code after SIGTERM"
((stop_took < 15)) || fail "stopping took $stop_took s"
tail -n 3 "$(logs_of "$single")" | grep -q 'stopped' || fail "the log does not end with 'stopped'"
echo "stopped in ${stop_took} s, exit code 0, last log line: $(tail -n 1 "$work/$single.log")"
podman rm "$single" >/dev/null

# ---- 4. a new container on the same volume, with a mounted configuration file ---------------
step "4. a new container on $volume with /etc/mcpauth/mcpauth.toml mounted"
cat >"$work/mcpauth.toml" <<EOF
# no database_url: the default (relative to the working directory /data) is the same file
[metadata]
service_documentation = "https://example.com/mcpauth-image-test-$id"
EOF
chmod 0644 "$work/mcpauth.toml"
podman run -d "${run_args[@]}" --name "$restarted" -p "127.0.0.1:$port:3000" -v "$volume:/data" \
  -v "$work/mcpauth.toml:/etc/mcpauth/mcpauth.toml:ro" \
  -e MCPAUTH_ISSUER="$issuer" -e MCPAUTH_RATE_LIMITS__ENABLED=false "$image" >/dev/null
wait_ok "$issuer/readyz"
curl -fsS --max-time 5 "$issuer/.well-known/oauth-authorization-server" >"$work/metadata-2.json"
grep -q "mcpauth-image-test-$id" "$work/metadata-2.json" || fail "the mounted mcpauth.toml was not read"
[[ "$(sign_in "$issuer" "$admin_email" "$admin_password")" == 200 ]] || fail "the CLI-created user is gone after the restart"
[[ "$(sign_in "$issuer" "$flow_email" "$flow_password")" == 200 ]] || fail "the flow's user is gone after the restart"
[[ "$(sign_in "$issuer" "$flow_email" "wrong-$flow_password")" == 401 ]] || fail "a wrong password does not get 401"
run_flow "$issuer" "$flow_email" "$flow_password" "$work/flow-2.json"
echo "mounted config read; both users sign in after the restart; flow.mjs complete again"
podman stop -t 20 "$restarted" >/dev/null
podman rm "$restarted" >/dev/null

# ---- 5. two instances on PostgreSQL and Redis behind a proxy ---------------------------------
step "5. two instances on PostgreSQL ($database) and Redis, a round-robin proxy in front"
psql "$pg_server/postgres" -qc "CREATE DATABASE $database" || fail "could not create database $database"
port_a=$(free_port)
port_b=$(free_port)
proxy_port=$(free_port)
public="http://127.0.0.1:$proxy_port"
for node in "$node_a:$port_a" "$node_b:$port_b"; do
  podman run -d "${run_args[@]}" --name "${node%%:*}" --network host \
    -e MCPAUTH_BIND="127.0.0.1:${node##*:}" -e MCPAUTH_ISSUER="$public" \
    -e MCPAUTH_DATABASE_URL="$pg_server/$database" -e MCPAUTH_REDIS_URL="$redis_url" \
    -e MCPAUTH_REDIS_KEY_PREFIX="mcpauth-image-test-$id:" -e MCPAUTH_TRUST_PROXY=true \
    "$image" >/dev/null
done
cat >"$work/proxy.mjs" <<'EOF'
// Round robin over the backends, one request at a time (no stickiness): the load balancer's part.
import http from "node:http";
import fs from "node:fs";
const [port, countsFile, ...backends] = process.argv.slice(2);
const counts = backends.map(() => 0);
let next = 0;
http.createServer((req, res) => {
  const i = next++ % backends.length;
  counts[i]++;
  fs.writeFileSync(countsFile, counts.join(" ") + "\n");
  const [host, backendPort] = backends[i].split(":");
  const headers = { ...req.headers, "x-forwarded-for": req.socket.remoteAddress };
  const upstream = http.request({ host, port: backendPort, method: req.method, path: req.url, headers }, (answer) => {
    res.writeHead(answer.statusCode, answer.headers);
    answer.pipe(res);
  });
  upstream.on("error", (error) => { res.writeHead(502); res.end(String(error)); });
  req.pipe(upstream);
}).listen(Number(port), "127.0.0.1", () => console.log(`proxy on ${port}`));
EOF
node "$work/proxy.mjs" "$proxy_port" "$work/counts" "127.0.0.1:$port_a" "127.0.0.1:$port_b" &
proxy_pid=$!
wait_ok "http://127.0.0.1:$port_a/readyz"
wait_ok "http://127.0.0.1:$port_b/readyz"
wait_ok "$public/healthz"
for node in "$node_a" "$node_b"; do
  grep -q 'Rate limits:   redis at' "$(logs_of "$node")" || fail "$node does not count rate limits in Redis"
done
run_flow "$public" "cluster-$id@example.com" "container-cluster-$id-Passw0rd" "$work/flow-3.json"
read -r served_a served_b <"$work/counts"
((served_a > 5 && served_b > 5)) || fail "the requests did not go to both instances: $served_a, $served_b"
echo "flow.mjs across both instances: $served_a requests to one, $served_b to the other"
for node in "$node_a" "$node_b"; do
  podman stop -t 20 "$node" >/dev/null
  [[ "$(podman inspect --format '{{.State.ExitCode}}' "$node")" == 0 ]] || fail "$node did not exit 0"
done

# ---- 6. the compose file -----------------------------------------------------------------------
step "6. deploy/compose.yaml"
# Debian's python3-yaml (.ci/run) is for /usr/bin/python3; another python3 may have PyYAML too.
python=""
for candidate in /usr/bin/python3 python3; do
  if "$candidate" -c 'import yaml' 2>/dev/null; then python="$candidate"; break; fi
done
[[ -n "$python" ]] || fail "no python3 with PyYAML (apt-get install python3-yaml)"
"$python" "$here/check-compose.py" "$here/compose.yaml" "$root/README.md"

echo
echo "test-image: ok (image $((size / 1024 / 1024)) MB from $binary)"
