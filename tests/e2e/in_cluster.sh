#!/usr/bin/env bash
# Shipyard inside a real cluster (kind in .github/workflows/e2e.yml):
#   1. the README's "On Kubernetes" install, run as written;
#   2. this checkout's controller image (loaded into the cluster as shipyard:e2e) and an
#      agents repository served inside the cluster (tests/e2e/in-cluster);
#   3. a push to main must deploy production and a pushed branch must get a preview,
#      both seen through the API behind `kubectl port-forward` with the README's token;
#   4. the controller's probes turned Ready, and its log has no "forbidden" (RBAC).
# Needs kubectl on a cluster, git, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

agent_image="${SHIPYARD_E2E_IMAGE:-shipyard-example-agent:e2e}"
work="$(mktemp -d)"
forwards=()
finish() {
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "--- failed; the cluster as it stands"
    kubectl get pods -A -o wide || true
    kubectl -n shipyard-system describe deploy/shipyard-controller || true
    kubectl -n shipyard-system logs deploy/shipyard-controller --tail=200 || true
  fi
  for pid in "${forwards[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  exit "$status"
}
trap finish EXIT

# Waits until `$@` succeeds, at most $1 seconds.
retry() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "gave up waiting for: $*" >&2
      return 1
    fi
    sleep 2
  done
}

# Forwards 127.0.0.1:$2 to a Service in shipyard-system, once it answers.
forward() {
  kubectl -n shipyard-system port-forward "svc/$1" "$2:$3" >"$work/forward-$1.log" 2>&1 &
  forwards+=($!)
  retry 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2>/dev/null
}

agent() {
  cat <<EOF
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: $1
spec:
  image: $agent_image
  port: 8080
  model: {provider: fake, name: echo, parameters: {temperature: $2}}
  prompt: {system: You are $1.}
  rollout: {progressDeadlineSeconds: 120}
EOF
}

commit_and_push() {
  git -C "$work/agents" add --all
  git -C "$work/agents" -c user.name=e2e -c user.email=e2e@e2e.invalid commit --quiet -m "$1"
  git -C "$work/agents" push --quiet git://127.0.0.1:19418/agents.git "HEAD:refs/heads/$2"
}

# Whether the API lists an environment named $1 (or starting with it, for previews)
# whose agents are all ready.
environment_ready() {
  curl -fsS -H "Authorization: Bearer $token" http://127.0.0.1:18080/api/v1/environments |
    python3 -c '
import json, sys
wanted = sys.argv[1]
for environment in json.load(sys.stdin)["items"]:
    if environment["name"].startswith(wanted) and environment["agents"]:
        if all(agent["ready"] for agent in environment["agents"]):
            print(environment["name"], "ready")
            sys.exit(0)
sys.exit(1)
' "$1"
}

echo "--- 1. README: On Kubernetes, as written"
install="$(python3 tests/readme_commands.py kubernetes-install)"
echo "$install"
bash -euo pipefail -c "$install"

echo "--- 2. this checkout's image, and an agents repository in the cluster"
kubectl apply -k tests/e2e/in-cluster
kubectl -n shipyard-system rollout status deploy/agents-git --timeout=180s
forward agents-git 19418 9418
git init --quiet --initial-branch=main "$work/agents"
mkdir -p "$work/agents/agents"
agent alpha 0.2 >"$work/agents/agents/alpha.yaml"
commit_and_push "Add alpha" main

echo "--- 3. the controller turns Ready, deploys production, and previews a branch"
kubectl -n shipyard-system rollout status deploy/shipyard-controller --timeout=300s
token="$(kubectl -n shipyard-system get secret shipyard-secrets \
  -o jsonpath='{.data.SHIPYARD_WRITE_TOKENS}' | base64 -d)"
forward shipyard-controller 18080 80
curl -fsS http://127.0.0.1:18080/readyz
echo
retry 300 environment_ready production

git -C "$work/agents" checkout --quiet -b feature/e2e
agent alpha 0.9 >"$work/agents/agents/alpha.yaml"
commit_and_push "A warmer alpha" feature/e2e
retry 300 environment_ready preview-feature-e2e
kubectl get namespaces | grep preview-feature-e2e

echo "--- 4. RBAC was enough"
if kubectl -n shipyard-system logs deploy/shipyard-controller | grep -i forbidden; then
  echo "the controller was refused an API call: manifests/rbac.yaml lacks a permission" >&2
  exit 1
fi
echo "in-cluster e2e passed"
