#!/usr/bin/env bash
# Install the Debian packages the tests use: parity oracles (bcftools, tabix, plink2) and a
# real PostgreSQL server for the registry (started by scripts/postgres.sh), and a headless Java
# runtime for Spark local mode (curation's scale-out engine).
set -euo pipefail
needed=()
command -v bcftools >/dev/null || needed+=(bcftools)
command -v tabix >/dev/null || needed+=(tabix)
command -v plink2 >/dev/null || needed+=(plink2)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || needed+=(postgresql)
command -v java >/dev/null || needed+=(openjdk-17-jre-headless)
[ ${#needed[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${needed[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${needed[@]}"
