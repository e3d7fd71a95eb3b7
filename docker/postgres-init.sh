#!/bin/sh
# First start of the PostgreSQL volume: two roles and two databases, Airflow's metadata DB and
# the Headwater catalog (docs/deploy.md: the connection budget is per database).
set -eu
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE ROLE airflow LOGIN PASSWORD '${AIRFLOW_DB_PASSWORD}';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE headwater LOGIN PASSWORD '${HEADWATER_DB_PASSWORD}';
CREATE DATABASE headwater OWNER headwater;
SQL
