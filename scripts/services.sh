#!/usr/bin/env bash
# Start RabbitMQ and Redis on this machine if they are not answering; wait until they do.
# Elsewhere, run them however you like (`docker compose up -d rabbitmq redis`) and point
# TASKCAST_RABBITMQ_URL / TASKCAST_REDIS_URL at them.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 120); do
    listening "$port" && return 0
    sleep 0.5
  done
  echo "services: $name did not start listening on 127.0.0.1:$port" >&2
  return 1
}

if ! listening 6379; then
  command -v redis-server >/dev/null || { echo "services: Redis is not running and redis-server is not installed" >&2; exit 1; }
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis 6379
fi

if ! listening 5672; then
  command -v rabbitmq-server >/dev/null || { echo "services: RabbitMQ is not running and rabbitmq-server is not installed" >&2; exit 1; }
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached
  wait_for RabbitMQ 5672
fi
