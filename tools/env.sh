# Source me:  source tools/env.sh [--keep-kubeconfig]
# Puts the pinned, cached toolchain (built by tools/bootstrap.sh) first on PATH and sets the
# environment the bundle's tests and scripts expect. Safe to source more than once; sets no shell options.
# KUBECONFIG: see below; it is REPLACED by the local kwok cluster's unless --keep-kubeconfig is given.

_bundle_tools_src="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
# shellcheck source=tools/versions.env
. "$_bundle_tools_src/versions.env"

export BUNDLE_TOOLS_DIR="${BUNDLE_TOOLS_DIR:-$HOME/.cache/jina-embeddings-bundle/tools}"
case ":$PATH:" in
  *":$BUNDLE_TOOLS_DIR/bin:"*) ;;
  *) export PATH="$BUNDLE_TOOLS_DIR/bin:$PATH" ;;
esac

# local kwok cluster (tools/cluster.sh)
export BUNDLE_CLUSTER_NAME="${BUNDLE_CLUSTER_NAME:-jina-local}"
export KWOK_WORKDIR="${KWOK_WORKDIR:-$BUNDLE_TOOLS_DIR/kwok}"
# KUBECONFIG is the local cluster's (BUNDLE_KUBECONFIG, else one file per cluster name) and replaces one
# already set, so that the make targets (demo, cluster-up), tools/cluster.sh, the e2e tests and a `kubectl`
# after `source tools/env.sh` never reach a real cluster by accident. For the pinned tools against a real
# cluster (README.md, "On a real cluster"): `source tools/env.sh --keep-kubeconfig` leaves KUBECONFIG as it
# is (set or unset), or export KUBECONFIG after sourcing this file. Only an explicit argument keeps it (no
# environment variable does), so nothing in the environment can point the local flows elsewhere.
if [ "${1:-}" != --keep-kubeconfig ]; then
  export KUBECONFIG="${BUNDLE_KUBECONFIG:-$BUNDLE_TOOLS_DIR/kubeconfig-$BUNDLE_CLUSTER_NAME}"
fi

# Pulumi: no update checks, no plugin downloads, local state, local plugins only
export PULUMI_HOME="${PULUMI_HOME:-$BUNDLE_TOOLS_DIR/pulumi-home}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# use the version-keyed plugin cache (bootstrap.sh installs the provider there), not whatever is on PATH
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
# No PULUMI_CONFIG_PASSPHRASE here: `python -m infra engine` sets the public one for the `local` stack
# only (Pulumi.local.yaml holds its salt); every other stack needs its team's own passphrase.
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$BUNDLE_TOOLS_DIR/pulumi-state}"
mkdir -p "$BUNDLE_TOOLS_DIR/pulumi-state" 2>/dev/null || true

# CRD sources for tests (copied out of the Go module cache by `bootstrap.sh crds`)
export BUNDLE_CRDS_DIR="$BUNDLE_TOOLS_DIR/crds"
export BUNDLE_METRICS_SERVER_MANIFESTS="$BUNDLE_TOOLS_DIR/metrics-server-manifests"

# mypy's incremental cache beside the toolchain, not in the checkout, so a clean clone (CI) reuses it: the type gate
# took 47 s of CPU with an empty cache and 4.8 s in another clone with this one. An entry whose source's mtime or
# path differ is still used when the source's size and content hash match (`validate_meta` in
# https://github.com/python/mypy/blob/v2.4.1/mypy/build.py).
export MYPY_CACHE_DIR="${MYPY_CACHE_DIR:-$BUNDLE_TOOLS_DIR/cache/mypy}"

unset _bundle_tools_src
