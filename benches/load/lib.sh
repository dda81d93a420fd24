# Shared by the one-process load scripts (ab.sh, profile.sh); source it, do not run it.
# Gives: need CMD PACKAGE; $work (a scratch directory removed on exit, with every pid in
# $pids killed); free_port; nginx_head DIR WORKERS (the start of an nginx.conf); start_origin
# SIZE (an nginx origin serving $origin_path, SIZE random bytes with `Cache-Control: public,
# max-age=3600`, at 127.0.0.1:$origin); edge_config FILE ID PORT ADMIN MEMORY_MAX_OBJECT
# [DISK_DIR] (the edge's YAML; no disk tier without DISK_DIR);
# miss_script FILE [TAG] (a wrk script asking for a new key on every request; TAG keeps the keys
# of one run apart from another's).

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/edge-load.XXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nginx_head DIR WORKERS: an nginx.conf up to the open `http {` block, in the foreground, with its
# pid, error log and temporary files in DIR and no access log.
nginx_head() {
  cat <<EOF
worker_processes $2;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $1; proxy_temp_path $1;
  fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;
EOF
}

origin_path=/f/object
start_origin() {
  need nginx nginx
  origin=$(free_port)
  mkdir -p "$work/www/f" "$work/nginx"
  head -c "$1" /dev/urandom >"$work/www$origin_path"
  # nginx workers run as an unprivileged user when started as root.
  chmod -R a+rX "$work"
  {
    nginx_head "$work/nginx" 1
    cat <<EOF
  server {
    listen 127.0.0.1:$origin;
    root $work/www;
    add_header Cache-Control "public, max-age=3600";
  }
}
EOF
  } >"$work/nginx/nginx.conf"
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  pids+=($!)
}

edge_config() {
  local disk="" rules=""
  [[ -n ${6:-} ]] && disk="disk: { path: $6, max_size: 4GiB, max_object_size: 1GiB }"
  # RULES: the catch-all site's rules, YAML list items one per line (ab.sh's A/B of a rule).
  [[ -n ${RULES:-} ]] && rules="    rules:
$(printf '%s\n' "$RULES" | sed 's/^/      /')"
  cat >"$1" <<EOF
node: { id: $2 }
listen: [{ addr: "127.0.0.1:$3" }]
admin: { addr: "127.0.0.1:$4" }
cache:
  memory: { max_size: 1GiB, max_object_size: $5 }
  $disk
origins:
  origin: { servers: ["127.0.0.1:$origin"] }
sites:
  - hosts: ["*"]
    origin: origin
$rules
EOF
}

miss_script() {
  local tag=${2:-}
  cat >"$1" <<EOF
-- Each wrk thread has its own Lua state with the same random sequence: a table's address
-- tells the threads apart, so no two requests share a key.
local thread = tostring({}):match("0x(%x+)") or tostring(os.clock())
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "$origin_path?m=$tag" .. thread .. "-" .. tostring(n))
end
EOF
}
