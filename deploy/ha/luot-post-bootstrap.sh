#!/bin/sh
# /etc/patroni/luot-post-bootstrap.sh (chmod 750, owner postgres): Patroni runs
# it once, on the machine that makes the cluster, with a superuser connection
# URL as its argument. It creates the role luot, whose password is the first
# line of /etc/patroni/luot-pg-password (the same as each luot server's
# /etc/luot/pg-password), and the database luot it owns.
set -eu
password=$(head -n 1 /etc/patroni/luot-pg-password)
psql -X -q -v ON_ERROR_STOP=1 -v password="$password" "$1" <<'SQL'
CREATE ROLE luot LOGIN PASSWORD :'password';
CREATE DATABASE luot OWNER luot;
SQL
