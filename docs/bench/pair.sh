#!/bin/sh
# pair.sh DAEMONS N PORT: DAEMONS daemons on one PostgreSQL queue deliver N addresses dropped into the first one's directory; returns when all are delivered
# A PostgreSQL server on 127.0.0.1:$PGPORT whose user postgres may log in without a password (trust on loopback), a simulator on PORT (tc-ingest sim --listen 127.0.0.1:PORT [--latency-ms 50]).
set -e
k=$1; n=$2; port=$3
psql -q -h 127.0.0.1 -p ${PGPORT:-5432} -U postgres -c "drop database if exists b_pair" -c "create database b_pair" >/dev/null 2>&1
pids=""
for i in $(seq 1 $k); do
  d=${BENCH_DIR:-/tmp/tc-bench}/pair$i; rm -rf $d; mkdir -p $d/incoming
  cat > $d/tc.toml <<EOT
[api]
base_url = "http://127.0.0.1:$port"
access_id = "sim-access-id"
secret_key = "sim-secret-key"
owner = "Common Community"
[watch]
dir = "$d/incoming"
[queue]
url = "postgres://postgres@127.0.0.1:${PGPORT:-5432}/b_pair"
[delivery]
rate_per_second = 0
workers = 8
mode = "v2"
EOT
  ${TC_INGEST:-target/release/tc-ingest} run -c $d/tc.toml 2>/dev/null & pids="$pids $!"
done
seq 0 $((n-1)) | awk '{printf "10.%d.%d.%d\n", int($1/65536)%256, int($1/256)%256, $1%256}' > ${BENCH_DIR:-/tmp/tc-bench}/pair1/incoming/.f
mv ${BENCH_DIR:-/tmp/tc-bench}/pair1/incoming/.f ${BENCH_DIR:-/tmp/tc-bench}/pair1/incoming/feed.txt
while :; do
  c=$(psql -tA -h 127.0.0.1 -p ${PGPORT:-5432} -U postgres b_pair -c "select count(*) from jobs where state='delivered'" 2>/dev/null || echo 0)
  [ "$c" = "$n" ] && break
  sleep 0.1
done
kill $pids; wait
