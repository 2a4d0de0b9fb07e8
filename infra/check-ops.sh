#!/usr/bin/env bash
# Checks what operators load next to the service: the Prometheus alert rules
# (syntax, and promtool's unit tests of each alert), the Grafana dashboard
# (valid JSON whose every query names a metric the service exports), and the
# Kubernetes manifests (kubernetes-validate, strict: no unknown field).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh
ensure_package promtool prometheus
ensure_pip_tool kubernetes-validate kubernetes-validate 1.37.0
kubernetes-validate --strict --quiet infra/kubernetes/*.yaml

promtool check rules infra/prometheus/alerts.yml
(cd infra/prometheus && promtool test rules alerts_test.yml)

python3 - <<'PY'
import json, re, pathlib, sys
exported = set(re.findall(r'metrics::(?:counter|gauge|histogram)!\(\s*"([a-z_]+)"', "".join(
    p.read_text() for p in pathlib.Path("src").rglob("*.rs"))))
# Histograms are read through their _bucket, _count and _sum series.
known = exported | {f"{m}_{s}" for m in exported for s in ("bucket", "count", "sum")}
dashboard = json.loads(pathlib.Path("infra/grafana/anteroom.json").read_text())
queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
rules = pathlib.Path("infra/prometheus/alerts.yml").read_text()
used = set(re.findall(r"\banteroom_[a-z_]+", " ".join(queries) + rules))
unknown = sorted(used - known)
if unknown:
    sys.exit(f"the dashboard or the alerts read metrics the service does not export: {unknown}")
print(f"dashboard: {len(dashboard['panels'])} panels; {len(used)} metrics, all exported")
PY
