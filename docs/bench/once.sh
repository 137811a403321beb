#!/bin/sh
# once.sh sqlite|postgres N PORT: a fresh queue, N addresses, run --once (v2, 8 workers, no rate limit)
# A PostgreSQL server on 127.0.0.1:$PGPORT whose user postgres may log in without a password (trust on loopback), a simulator on PORT (tc-ingest sim --listen 127.0.0.1:PORT [--latency-ms 50]).
set -e
kind=$1; n=$2; port=$3
d=${BENCH_DIR:-/tmp/tc-bench}/$kind; rm -rf $d; mkdir -p $d/incoming
if [ $kind = postgres ]; then
  psql -q -h 127.0.0.1 -p ${PGPORT:-5432} -U postgres -c "drop database if exists b_$kind" -c "create database b_$kind" >/dev/null 2>&1
  q="url = \"postgres://postgres@127.0.0.1:${PGPORT:-5432}/b_postgres\""
else
  q="path = \"$d/queue.db\""
fi
cat > $d/tc.toml <<EOT
[api]
base_url = "http://127.0.0.1:$port"
access_id = "sim-access-id"
secret_key = "sim-secret-key"
owner = "Common Community"
[watch]
dir = "$d/incoming"
[queue]
$q
[delivery]
rate_per_second = 0
workers = 8
mode = "v2"
EOT
seq 0 $((n-1)) | awk '{printf "10.%d.%d.%d\n", int($1/65536)%256, int($1/256)%256, $1%256}' > $d/incoming/feed.txt
exec ${TC_INGEST:-target/release/tc-ingest} run --once -c $d/tc.toml 2>/dev/null
