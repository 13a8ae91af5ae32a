#!/usr/bin/env bash
# Deploys MetaChat to the Kubernetes cluster of kubectl's current context (`make deploy`):
#   1. the namespace, then the Secret metachat-secrets from the environment (never from a file
#      in the repository): AUTH_TOKEN_SECRET (at least 32 bytes), SERVICE_TOKEN (at least 16),
#      DB_PASSWORD;
#   2. the manifests of this directory (kubectl apply -k), with the images
#      ${IMAGE_REGISTRY:-metachat}/{api-gateway,user-service,diary-service}:${VERSION}, and a
#      checksum of the configuration and secrets on the pods, so that a change of either
#      restarts them;
#   3. waits until every Deployment has rolled out (ROLLOUT_TIMEOUT, default 300s).
#
#   deploy/k8s/deploy.sh            deploy
#   deploy/k8s/deploy.sh render     print the manifests that step 2 would apply (no cluster, no
#                                   secrets needed; kubectl's built-in kustomize)
#
# VERSION defaults to the workspace version in Cargo.toml. PostgreSQL, Kafka and Cassandra must
# exist already (configmap.yaml). docs/deployment.md has the whole procedure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
namespace=metachat
kubectl=${KUBECTL:-kubectl}
# The keys of the Secret; the Deployments read these and no others.
SECRET_KEYS=(AUTH_TOKEN_SECRET SERVICE_TOKEN DB_PASSWORD)
IMAGES=(api-gateway user-service diary-service)

die() { echo "deploy: $*" >&2; exit 1; }

mode=${1:-deploy}
case $mode in deploy|render) ;; *) die "usage: $0 [deploy|render]" ;; esac

command -v "$kubectl" >/dev/null 2>&1 \
  || die "kubectl not found: install it (https://kubernetes.io/docs/tasks/tools/) or set KUBECTL"

version=${VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)}
[ -n "$version" ] || die "VERSION is not set and Cargo.toml has no workspace version"
registry=${IMAGE_REGISTRY:-metachat}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

# The secrets, as an env file (kept out of the command line, where other users could see them).
checksum_input=$(cat "$here/configmap.yaml")
if [ "$mode" = deploy ]; then
  missing=()
  for key in "${SECRET_KEYS[@]}"; do
    [ -n "${!key:-}" ] || missing+=("$key")
  done
  [ "${#missing[@]}" = 0 ] || die "set ${missing[*]} (e.g. export AUTH_TOKEN_SECRET=\$(openssl rand -hex 32) SERVICE_TOKEN=\$(openssl rand -hex 16); DB_PASSWORD is the PostgreSQL password of DB_USER)"
  [ "${#AUTH_TOKEN_SECRET}" -ge 32 ] || die "AUTH_TOKEN_SECRET must be at least 32 bytes"
  [ "${#SERVICE_TOKEN}" -ge 16 ] || die "SERVICE_TOKEN must be at least 16 bytes"
  for key in "${SECRET_KEYS[@]}"; do
    case ${!key} in *$'\n'*) die "$key must be one line" ;; esac
    printf '%s=%s\n' "$key" "${!key}" >>"$work/secrets.env"
  done
  checksum_input+=$(cat "$work/secrets.env")
fi
checksum=$(printf '%s' "$checksum_input" | sha256sum | cut -d' ' -f1)

# An overlay of this directory: the images and the checksum.
mkdir "$work/overlay"
base=$(realpath --relative-to="$work/overlay" "$here")
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - $base"
  echo "commonAnnotations:"
  echo "  metachat/configuration-sha256: \"$checksum\""
  echo "images:"
  for image in "${IMAGES[@]}"; do
    echo "  - name: metachat/$image"
    echo "    newName: $registry/$image"
    echo "    newTag: \"$version\""
  done
} >"$work/overlay/kustomization.yaml"

if [ "$mode" = render ]; then
  "$kubectl" kustomize "$work/overlay"
  exit 0
fi

context=$("$kubectl" config current-context 2>/dev/null) \
  || die "kubectl has no current context: point it at the cluster first (kubectl config use-context NAME)"
echo "deploy: MetaChat $version ($registry/*) to context $context, namespace $namespace"

"$kubectl" apply -f "$here/namespace.yaml"
"$kubectl" create secret generic metachat-secrets --namespace "$namespace" \
  --from-env-file="$work/secrets.env" --dry-run=client -o yaml \
  | "$kubectl" apply -f -
"$kubectl" apply -k "$work/overlay"

for deployment in "${IMAGES[@]}"; do
  "$kubectl" --namespace "$namespace" rollout status "deployment/$deployment" \
    --timeout="${ROLLOUT_TIMEOUT:-300s}"
done
echo "deploy: done; the gateway is the Service api-gateway:8080 in namespace $namespace"
