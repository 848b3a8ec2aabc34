#!/bin/sh
# /etc/patroni/luot-post-bootstrap.sh (chmod 750, owner postgres): Patroni runs
# it once, on the machine that makes the cluster, with a superuser connection
# URL as its argument. It creates the role luot, whose password is the first
# line of /etc/patroni/luot-pg-password (the same as each luot server's
# /etc/luot/pg-password), and the database luot it owns. pg_monitor lets
# luot read pg_stat_replication, for /api/v1/ha's sync_standby.
set -eu
password=$(head -n 1 /etc/patroni/luot-pg-password)
psql -X -q -v ON_ERROR_STOP=1 -v password="$password" "$1" <<'SQL'
CREATE ROLE luot LOGIN PASSWORD :'password';
GRANT pg_monitor TO luot;
CREATE DATABASE luot OWNER luot;
SQL
