"""CustomResourceDefinitions tests commonly want installed, ready to pass to the server.

Only the Prometheus Operator's ServiceMonitor for now (Shipyard's optional
ServiceMonitor): served at `monitoring.coreos.com/v1`, namespaced, short name `smon`,
with the list types of the real CRD's `endpoints` (atomic) and a schema that keeps
unknown fields, so applies behave as against a cluster running the operator.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

SERVICE_MONITOR: Json = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "plural": "servicemonitors",
            "singular": "servicemonitor",
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
            "shortNames": ["smon"],
            "categories": ["prometheus-operator"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                                "properties": {
                                    "endpoints": {"type": "array", "items": {"type": "object"}},
                                    "selector": {
                                        "type": "object",
                                        "x-kubernetes-map-type": "atomic",
                                    },
                                },
                            }
                        },
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}
