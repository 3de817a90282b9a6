#!/usr/bin/env bash
# System packages the tests drive for real: Java + Maven (the Kafka broker),
# Debian's Chromium (Playwright's browser), a PostgreSQL server and the Mosquitto MQTT
# broker (the inspection line's MQTT reject signal), and systemd-analyze (Debian's systemd
# package: tests/deploy verifies the units in deploy/systemd), and Debian's prometheus
# (the server and promtool: deploy/prometheus rules are tested with `promtool test rules`).  helm is not a system package
# here: deploy/install-helm.sh builds it once from its Go module (Go must be on the machine).
# Installs only what is missing, and only when it can (root with apt-get).
set -euo pipefail
need=()
command -v java >/dev/null || need+=(default-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v chromium >/dev/null || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v promtool >/dev/null && command -v prometheus >/dev/null || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${need[*]} (install them, or run as root on Debian/Ubuntu)" >&2
  exit 1
fi
echo "installing system packages: ${need[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian postgresql package starts a cluster on port 5432; the tests run their own.
