#!/usr/bin/env bash
# Makes sure Redis, RabbitMQ and PostgreSQL answer on 127.0.0.1 with their
# standard ports. A server that already answers is left alone; one that does
# not is started, and installed first with apt-get (as root) if it is missing.
set -euo pipefail

source "$(dirname "$0")/lib.sh"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # port, name, seconds
  for _ in $(seq 1 "$3"); do answers "$1" && return 0; sleep 1; done
  say "$2 did not start listening on port $1 within $3 s"; return 1
}

if answers 6379; then say "redis is up"; else
  ensure_package redis-server redis-server
  say "starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/anteroom-ci.log
  wait_for 6379 redis 30
fi

if answers 5672; then say "rabbitmq is up"; else
  ensure_package rabbitmq-server rabbitmq-server
  say "starting rabbitmq"
  rabbitmq-server -detached
  wait_for 5672 rabbitmq 120
  rabbitmqctl await_startup >/dev/null 2>&1 || true
fi

if answers 5432; then say "postgresql is up"; else
  ensure_package pg_ctlcluster postgresql
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  say "starting postgresql $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for 5432 postgresql 60
  # Password auth over TCP for a fresh cluster; where trust auth is set, the password is ignored.
  su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" || true
fi
say "all three servers answer"
