#!/bin/sh
# Runs the Sluice process named by SLUICE_SERVICE. `exec` makes node the direct child of tini,
# so SIGTERM reaches it and runService can drain before the container stops.
#
#   SLUICE_SERVICE=ingress|limiter|cache|router|invoker|ledger|degrader   a service (compiled)
#   SLUICE_SERVICE=sim      the OpenAI-compatible upstream simulator (compiled)
#   SLUICE_SERVICE=config   loads a config into the sluice_control bucket and exits;
#                           arguments go to scripts/config.ts (through tsx), default
#                           `apply ${SLUICE_CONFIG_FILE:-config/sluice.json}`
#   SLUICE_SERVICE unset    runs the arguments as a command (e.g. `docker run --rm -it sluice sh`)
set -eu

# the repository root, wherever the image put it: `--import` resolves its packages from here
cd "$(dirname "$0")/.."

service="${SLUICE_SERVICE:-}"
case "$service" in
  ingress | limiter | cache | router | invoker | ledger | degrader)
    # the telemetry preload starts tracing before the service imports what it instruments
    # (a no-op without OTEL_EXPORTER_OTLP_ENDPOINT)
    exec node --import @sluice/telemetry/register "services/$service/dist/main.js" "$@"
    ;;
  sim)
    exec node libs/openai-sim/dist/main.js "$@"
    ;;
  config)
    if [ "$#" -eq 0 ]; then
      set -- apply "${SLUICE_CONFIG_FILE:-config/sluice.json}"
    fi
    # the scripts are not built: tsx runs config.ts, whose @sluice imports resolve to the build
    exec node --import tsx scripts/config.ts "$@"
    ;;
  "")
    if [ "$#" -gt 0 ]; then
      exec "$@"
    fi
    echo "entrypoint: set SLUICE_SERVICE to one of ingress limiter cache router invoker ledger degrader sim config" >&2
    exit 64
    ;;
  *)
    echo "entrypoint: unknown SLUICE_SERVICE '$service' (expected ingress limiter cache router invoker ledger degrader sim config)" >&2
    exit 64
    ;;
esac
