#!/bin/sh
# One image, many roles: `headwater-entrypoint ROLE [ARGS...]`. Configuration is the environment
# (docker/compose.yaml sets it; docs/deploy.md lists it). Every server binds 0.0.0.0/[::] inside
# its container; compose publishes only the ports it names.
set -eu

role="${1:-help}"
[ $# -gt 0 ] && shift

write_passwords() {
    # the simple auth manager's users: AIRFLOW_ADMIN_USER / AIRFLOW_ADMIN_PASSWORD
    : "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD}"
    file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/passwords.json}"
    python -c 'import json, os, sys; json.dump({os.environ.get("AIRFLOW_ADMIN_USER", "admin"): os.environ["AIRFLOW_ADMIN_PASSWORD"]}, open(sys.argv[1], "w"))' "$file"
}

case "$role" in
    airflow-init)
        # once per deployment (and after an upgrade): Airflow's metadata DB, then the catalog
        airflow db migrate
        headwater db upgrade
        ;;
    api-server)
        write_passwords
        exec airflow api-server --host 0.0.0.0 --port "${AIRFLOW_API_PORT:-8080}" "$@"
        ;;
    scheduler)
        exec airflow scheduler --skip-serve-logs "$@"
        ;;
    dag-processor)
        exec airflow dag-processor "$@"
        ;;
    triggerer)
        exec airflow triggerer --skip-serve-logs "$@"
        ;;
    celery-worker)
        exec airflow celery worker --skip-serve-logs "$@"
        ;;
    headwater-server)
        exec headwater serve --host 0.0.0.0 --port "${HEADWATER_SERVER_PORT:-8090}" "$@"
        ;;
    beam-job-service)
        exec python -m apache_beam.runners.portability.local_job_service_main \
            --port "${BEAM_JOB_PORT:-8099}" "$@"
        ;;
    beam-worker-pool)
        exec python -m apache_beam.runners.worker.worker_pool_main \
            --service_port "${BEAM_WORKER_POOL_PORT:-50000}" "$@"
        ;;
    beam-reference)
        # the Beam reference pipeline through the job service and worker pool
        exec python -m headwater_beam.pipeline --runner=PortableRunner \
            --job_endpoint="localhost:${BEAM_JOB_PORT:-8099}" \
            --environment_type=EXTERNAL \
            --environment_config="localhost:${BEAM_WORKER_POOL_PORT:-50000}" "$@"
        ;;
    headwater)
        exec headwater "$@"
        ;;
    airflow)
        exec airflow "$@"
        ;;
    help|*)
        echo "usage: headwater-entrypoint ROLE [ARGS...]"
        echo "roles: airflow-init api-server scheduler dag-processor triggerer celery-worker"
        echo "       headwater-server beam-job-service beam-worker-pool beam-reference"
        echo "       headwater ARGS | airflow ARGS"
        [ "$role" = help ] || exit 2
        ;;
esac
