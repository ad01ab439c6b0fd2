"""The Kubernetes target: agent versions as Deployments, previews as namespaces.

`rendering` turns small, already-resolved value types (`Workload`, `EnvironmentSettings`)
into plain Kubernetes objects without a client, so the same objects back the controller,
`shipyard render` (the eject path) and the schema tests. `permissions` declares every API
call the target makes, so the install's RBAC can be checked against it. Only this
package may import the `kubernetes` library, and only the modules that talk to a cluster
do.
"""
